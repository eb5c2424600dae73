#!/usr/bin/env bash
# bench/weights_share.sh: memory of 1 vs 3 instances of one endpoint.
#
# A kennel server runs an endpoint of a random-weights package (resnet50 by
# default) with 1 instance, then one with 3 instances; for each, after a few
# invocations, it sums RSS and PSS (/proc/PID/smaps_rollup) over the instance
# processes, and the PSS of the shared weights mapping. For comparison, the
# same package is served by standalone `kennel model-server` processes
# without --weights-cache (each reorders the weights into its own private
# copy), 1 then 3 of them. RSS counts a shared page in every process; PSS
# divides it among them, so the sum of PSS is what the instances cost.
#
# Knobs (environment): KN_BIN (kennel binary; default build-bench/kennel, else
# build/kennel), ARCH (resnet50), INSTANCE_TYPE (ml.m5.large: 2 threads).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
ARCH=${ARCH:-resnet50}
INSTANCE_TYPE=${INSTANCE_TYPE:-ml.m5.large}
kennel=${KN_BIN:-}
if [ -z "$kennel" ]; then
  for b in "$root/build-bench/kennel" "$root/build/kennel"; do
    [ -x "$b" ] && kennel=$b && break
  done
fi
[ -n "$kennel" ] && [ -x "$kennel" ] || { echo "weights_share: no kennel binary (set KN_BIN)" >&2; exit 1; }
kennel=$(cd "$(dirname "$kennel")" && pwd)/$(basename "$kennel")

tmp=$(mktemp -d)
server_pid=
solo_pids=()
cleanup() {
  for p in "${solo_pids[@]}"; do kill "$p" 2> /dev/null || true; done
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2> /dev/null || true; wait "$server_pid" 2> /dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

export AWS_ACCESS_KEY_ID=AKIDWEIGHTSBENCH AWS_SECRET_ACCESS_KEY=weights-bench-secret
export KENNEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID KENNEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
"$kennel" model package --arch "$ARCH" --init random --classes 10 --seed 1 --out "$tmp/pkg" > /dev/null
/usr/bin/python3 -c "
import struct, zlib
w, h = 64, 48
rows = b''.join(b'\0' + bytes((x * 7 + y * 3 + c * 40) % 256 for x in range(w) for c in range(3)) for y in range(h))
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
open('$tmp/img.png', 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))"

# "RSS_KB PSS_KB WEIGHTS_PSS_KB" summed over the pids
measure() {
  /usr/bin/python3 - "$@" <<'EOF'
import sys
rss = pss = wpss = 0
for pid in sys.argv[1:]:
    for ln in open(f"/proc/{pid}/smaps_rollup"):
        k, v = ln.split()[:2]
        if k == "Rss:": rss += int(v)
        elif k == "Pss:": pss += int(v)
    cur = False
    for ln in open(f"/proc/{pid}/smaps"):
        parts = ln.split()
        if len(parts) >= 5 and "-" in parts[0] and ":" in parts[3]:
            cur = len(parts) >= 6 and parts[5].endswith(".weights")
        elif cur and parts[0] == "Pss:":
            wpss += int(parts[1])
print(rss, pss, wpss)
EOF
}
instances() { cat /proc/"$server_pid"/task/*/children 2> /dev/null | tr ' ' '\n' | grep -E '^[0-9]+$' | sort -u; }

"$kennel" server --data-dir "$tmp/data" --port 0 --ready-file "$tmp/ready" > /dev/null 2> "$tmp/server.err" &
server_pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
export KENNEL_ENDPOINT="http://$(cat "$tmp/ready")"

declare -A res
for n in 1 3; do
  "$kennel" deploy --model "$tmp/pkg" --name "w$n" --instances "$n" --instance-type "$INSTANCE_TYPE" \
    --wait > "$tmp/deploy.out" 2>&1 || { cat "$tmp/deploy.out" >&2; exit 1; }
  for _ in $(seq 1 $((2 * n))); do "$kennel" invoke "w$n" "$tmp/img.png" > /dev/null; done
  sleep 1
  mapfile -t pids < <(instances)
  [ "${#pids[@]}" -eq "$n" ] || { echo "weights_share: expected $n instances, found ${#pids[@]}" >&2; exit 1; }
  res[shared$n]=$(measure "${pids[@]}")
  "$kennel" undeploy "w$n" > /dev/null
done
wfile=$(ls -l "$tmp"/data/weights/*.weights | awk '{print $5}')
kill -TERM "$server_pid"
wait "$server_pid" 2> /dev/null || true
server_pid=

for n in 1 3; do
  solo_pids=()
  for i in $(seq 1 "$n"); do
    OMP_NUM_THREADS=2 "$kennel" model-server --model "$tmp/pkg" --port 0 --threads 2 \
      --ready-file "$tmp/solo$i.ready" > /dev/null 2> "$tmp/solo$i.err" &
    solo_pids+=($!)
  done
  for i in $(seq 1 "$n"); do
    for _ in $(seq 1 2400); do [ -s "$tmp/solo$i.ready" ] && break; sleep 0.05; done
    [ -s "$tmp/solo$i.ready" ] || { cat "$tmp/solo$i.err" >&2; exit 1; }
    for _ in 1 2; do
      curl -s -o /dev/null -H 'Content-Type: image/png' --data-binary @"$tmp/img.png" \
        "http://$(cat "$tmp/solo$i.ready")/invocations"
    done
  done
  sleep 1
  res[private$n]=$(measure "${solo_pids[@]}")
  for p in "${solo_pids[@]}"; do kill "$p"; wait "$p" 2> /dev/null || true; done
  solo_pids=()
  rm -f "$tmp"/solo*.ready
done

/usr/bin/python3 - "$ARCH" "$wfile" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "${res[shared1]}" "${res[shared3]}" "${res[private1]}" "${res[private3]}" <<'EOF'
import sys
arch, wfile, l0, l1 = sys.argv[1:5]
v = [list(map(int, s.split())) for s in sys.argv[5:9]]
mib = lambda kb: kb / 1024
print(f"## {arch}: memory of 1 vs 3 instances (weights file {int(wfile) / 2**20:.1f} MiB)\n")
print("| instances | weights | sum RSS MiB | sum PSS MiB | PSS of weights mapping MiB |")
print("|---|---|---:|---:|---:|")
for (name, n), (rss, pss, wpss) in zip([("shared (kennel server)", 1), ("shared (kennel server)", 3),
                                        ("private (model-server, no --weights-cache)", 1),
                                        ("private (model-server, no --weights-cache)", 3)], v):
    print(f"| {n} | {name} | {mib(rss):.1f} | {mib(pss):.1f} | {mib(wpss):.1f} |")
s1, s3, p1, p3 = (x[1] for x in v)
print()
print(f"- 3 vs 1 instances, sum of PSS: shared {s3 / s1:.2f}x, private {p3 / p1:.2f}x")
print(f"- 3 instances, shared vs private: {s3 / p3:.2f}x the memory ({mib(p3 - s3):.0f} MiB saved)")
print(f"- each added instance costs {mib(s3 - s1) / 2:.1f} MiB shared, {mib(p3 - p1) / 2:.1f} MiB private")
print(f"- load average at start {l0}, at end {l1}")
EOF
