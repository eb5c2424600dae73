#!/usr/bin/env bash
# bench/router_bench.sh: what the daemon's router adds to an invocation.
#
# A kennel server runs an endpoint; wrk (Debian) drives POST
# /endpoints/NAME/invocations through the daemon (src/api -> fleet_router.c ->
# a kept-alive connection to an instance) and, in the same round, POST
# /invocations on that instance directly. Reported: p50/p99 latency at 1
# connection, requests/s at CONNS connections, the added p50 (router minus
# direct) and the daemon's CPU time per routed request.
#
# 1. tiny: a random-weights "tiny" network (one 3x3 conv, 16x16 input) so
#    that HTTP and routing, not compute, dominate; one 16x16 PNG per request.
#    Targets: added p50 < 0.3 ms; >= 10,000 req/s through the router.
# 2. resnet50 at saturation (CONNS connections): 1 instance (direct and routed)
#    vs 3 instances (routed) of one endpoint.
#
# Rounds alternate which side runs first; tables give medians over ROUNDS.
# The machine is shared: compare ratios within a run; the load average at
# start and end is printed.
#
# Routed requests are signed (SigV4, service sagemaker, botocore from
# /usr/bin/python3) with the key the daemon seeds its administrator from;
# every request of one wrk run carries the same valid signature (a run is
# seconds, well inside the 15-minute window), so the router figures include
# SigV4 verification and IAM authorization as a client would meet them.
#
# Knobs (environment): KN_BIN (kennel binary; default build-bench/kennel, else
# build/kennel), ROUNDS (3), DURATION (5s per wrk run), CONNS (32), BIG_CONNS
# (16, resnet50), WRK_THREADS (1), INSTANCE_TYPE (ml.m5.large: 2 threads per
# instance), SKIP_RESNET (1 skips part 2).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
BIG_CONNS=${BIG_CONNS:-16}
WRK_THREADS=${WRK_THREADS:-1}
INSTANCE_TYPE=${INSTANCE_TYPE:-ml.m5.large}
SKIP_RESNET=${SKIP_RESNET:-0}
kennel=${KN_BIN:-}
if [ -z "$kennel" ]; then
  for b in "$root/build-bench/kennel" "$root/build/kennel"; do
    [ -x "$b" ] && kennel=$b && break
  done
fi
[ -n "$kennel" ] && [ -x "$kennel" ] || { echo "router_bench: no kennel binary (set KN_BIN)" >&2; exit 1; }
kennel=$(cd "$(dirname "$kennel")" && pwd)/$(basename "$kennel")
if ! command -v wrk > /dev/null; then
  echo "router_bench: installing wrk (Debian)" >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y wrk > /dev/null; else sudo apt-get install -y wrk > /dev/null; fi
fi

tmp=$(mktemp -d)
server_pid=
open_pid=
cleanup() {
  for p in $server_pid $open_pid; do kill -TERM "$p" 2> /dev/null || true; wait "$p" 2> /dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

export AWS_ACCESS_KEY_ID=AKIDROUTERBENCH AWS_SECRET_ACCESS_KEY=router-bench-secret
export KENNEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID KENNEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
/usr/bin/python3 -c 'import botocore.auth' 2> /dev/null ||
  { echo "router_bench: /usr/bin/python3 has no botocore (Debian: python3-botocore) to sign requests" >&2; exit 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
"$kennel" model package --arch tiny --init random --classes 10 --image-size 16 --seed 1 \
  --out "$tmp/tiny" > /dev/null
if [ "$SKIP_RESNET" != 1 ]; then
  "$kennel" model package --arch resnet50 --init random --classes 10 --seed 1 --out "$tmp/r50" > /dev/null
fi
/usr/bin/python3 - "$tmp" <<'EOF'
import struct, sys, zlib
def png(path, w, h):
    rows = b''.join(b'\0' + bytes((x * 7 + y * 3 + c * 40) % 256 for x in range(w) for c in range(3)) for y in range(h))
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
                           + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))
png(sys.argv[1] + "/img16.png", 16, 16)
png(sys.argv[1] + "/img224.png", 224, 224)
EOF
cat > "$tmp/post.lua" <<'EOF'
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
wrk.headers["Accept"] = "application/json"
local a = os.getenv("WRK_AUTH")
if a and a ~= "" then
  wrk.headers["Authorization"] = a
  wrk.headers["X-Amz-Date"] = os.getenv("WRK_DATE")
end
EOF

# The daemon as deployed (SigV4 + IAM + audit log on every call), and one
# with --insecure-no-auth, to tell the router's cost from the front door's.
"$kennel" server --data-dir "$tmp/data" --port 0 --ready-file "$tmp/ready" > /dev/null 2> "$tmp/server.err" &
server_pid=$!
"$kennel" server --data-dir "$tmp/data-open" --port 0 --ready-file "$tmp/ready-open" \
  --insecure-no-auth > /dev/null 2> "$tmp/server-open.err" &
open_pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/ready" ] && [ -s "$tmp/ready-open" ] && break; sleep 0.05; done
daemon=$(cat "$tmp/ready")
daemon_open=$(cat "$tmp/ready-open")
export KENNEL_ENDPOINT="http://$daemon"

cpu_pid=$server_pid
cpu_ticks() { awk '{print $14 + $15}' /proc/"$cpu_pid"/stat; }

# sign URL BODY: "X-Amz-Date Authorization" for POST URL with BODY, as the
# AWS CLI signs InvokeEndpoint (host, content-type, accept, x-amz-date)
sign() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import os, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url, body = sys.argv[1], open(sys.argv[2], "rb").read()
r = AWSRequest(method="POST", url=url, data=body,
               headers={"Content-Type": "image/png", "Accept": "application/json"})
SigV4Auth(Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]),
          "sagemaker", "us-east-1").add_auth(r)
print(r.headers["X-Amz-Date"], r.headers["Authorization"])
EOF
}

# run NAME URL BODY CONNS [signed]: one wrk run; appends a JSON line to results
run() {
  local name=$1 url=$2 body=$3 conns=$4 a="" d="" t0 t1 sig
  if [ -n "${5:-}" ]; then
    sig=$(sign "$url" "$body")
    d=${sig%% *}
    a=${sig#* }
  fi
  t0=$(cpu_ticks)
  WRK_BODY=$body WRK_AUTH=$a WRK_DATE=$d wrk -t "$WRK_THREADS" -c "$conns" -d "$DURATION" --latency \
    -s "$tmp/post.lua" "$url" > "$tmp/wrk.out" 2>&1 || true
  t1=$(cpu_ticks)
  /usr/bin/python3 - "$name" "$conns" "$((t1 - t0))" "$(getconf CLK_TCK)" "$tmp/wrk.out" >> "$tmp/results.jsonl" <<'EOF'
import json, re, sys
name, conns, ticks, hz, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
out = open(path).read()
def ms(s):
    v, u = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s).groups()
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[u]
r = {"name": name, "conns": conns}
for p in ("50", "99"):
    m = re.search(r"^\s+%s%%\s+(\S+)" % p, out, re.M)
    r["p" + p] = ms(m.group(1)) if m else None
m = re.search(r"Requests/sec:\s+([\d.]+)", out)
r["rps"] = float(m.group(1)) if m else 0.0
m = re.search(r"(\d+) requests in", out)
r["requests"] = int(m.group(1)) if m else 0
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
r["errors"] = int(m.group(1)) if m else 0
m = re.search(r"Socket errors: (.*)", out)
r["socket_errors"] = m.group(1) if m else ""
r["daemon_cpu_us_per_req"] = ticks / hz * 1e6 / r["requests"] if r["requests"] else None
if r["errors"] or r["requests"] == 0:
    print(f"router_bench: {name}: {r['errors']} non-2xx of {r['requests']}\n{out}", file=sys.stderr)
print(json.dumps(r))
EOF
}

# instance_urls EP [DATA]: "http://ADDR:PORT/invocations" of each ready instance
instance_urls() {
  for f in "${2:-$tmp/data}/instances/$1"/*.ready; do
    [ -s "$f" ] && echo "http://$(cat "$f")/invocations"
  done
}

deploy() { # NAME PKG N [DAEMON]
  KENNEL_ENDPOINT=http://${4:-$daemon} "$kennel" deploy --model "$2" --name "$1" --instances "$3" \
    --instance-type "$INSTANCE_TYPE" --wait > "$tmp/deploy.out" 2>&1 || { cat "$tmp/deploy.out" >&2; exit 1; }
}

: > "$tmp/results.jsonl"
# ---- 1. tiny ----
deploy tiny "$tmp/tiny" 1
deploy tiny "$tmp/tiny" 1 "$daemon_open"
direct=$(instance_urls tiny | head -1)
routed="http://$daemon/endpoints/tiny/invocations"
routed_open="http://$daemon_open/endpoints/tiny/invocations"
# warm every path (connections, first-touch)
DURATION=1s run warm "$direct" "$tmp/img16.png" 4 > /dev/null
DURATION=1s run warm "$routed" "$tmp/img16.png" 4 signed > /dev/null
cpu_pid=$open_pid DURATION=1s run warm "$routed_open" "$tmp/img16.png" 4 > /dev/null
sides=(direct routed open)
for r in $(seq 1 "$ROUNDS"); do
  k=$(( (r - 1) % 3 ))
  for side in "${sides[@]:k}" "${sides[@]:0:k}"; do
    case $side in
    direct)
      run tiny_direct_c1 "$direct" "$tmp/img16.png" 1
      run tiny_direct_cN "$direct" "$tmp/img16.png" "$CONNS" ;;
    routed)
      run tiny_routed_c1 "$routed" "$tmp/img16.png" 1 signed
      run tiny_routed_cN "$routed" "$tmp/img16.png" "$CONNS" signed ;;
    open)
      cpu_pid=$open_pid run tiny_open_c1 "$routed_open" "$tmp/img16.png" 1
      cpu_pid=$open_pid run tiny_open_cN "$routed_open" "$tmp/img16.png" "$CONNS" ;;
    esac
  done
done
"$kennel" undeploy tiny > /dev/null
kill -TERM "$open_pid"
wait "$open_pid" 2> /dev/null || true
open_pid=

# ---- 2. resnet50 at saturation, 1 vs 3 instances ----
if [ "$SKIP_RESNET" != 1 ]; then
  deploy r50 "$tmp/r50" 1
  direct=$(instance_urls r50 | head -1)
  routed="http://$daemon/endpoints/r50/invocations"
  DURATION=2s run warm "$routed" "$tmp/img224.png" 4 signed > /dev/null
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="direct routed"; else order="routed direct"; fi
    for side in $order; do
      if [ "$side" = direct ]; then
        run r50_1_direct "$direct" "$tmp/img224.png" "$BIG_CONNS"
      else
        run r50_1_routed "$routed" "$tmp/img224.png" "$BIG_CONNS" signed
      fi
    done
  done
  "$kennel" undeploy r50 --keep-model > /dev/null
  deploy r50x3 "$tmp/r50" 3
  routed="http://$daemon/endpoints/r50x3/invocations"
  DURATION=2s run warm "$routed" "$tmp/img224.png" 4 signed > /dev/null
  for r in $(seq 1 "$ROUNDS"); do
    run r50_3_routed "$routed" "$tmp/img224.png" "$BIG_CONNS" signed
  done
  "$kennel" undeploy r50x3 > /dev/null
fi

/usr/bin/python3 - "$tmp/results.jsonl" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$ROUNDS" "$DURATION" "$CONNS" "$BIG_CONNS" "$(nproc)" <<'EOF'
import json, statistics, sys
path, l0, l1, rounds, dur, conns, big, cpus = sys.argv[1:9]
rows = [json.loads(l) for l in open(path) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["name"], []).append(r)
def med(name, key):
    v = [r[key] for r in by.get(name, []) if r.get(key) is not None]
    return statistics.median(v) if v else float("nan")
def errs(name):
    return sum(r["errors"] for r in by.get(name, []))
print(f"## Router bench: {rounds} rounds of {dur} per wrk run, medians; {cpus} CPUs\n")
print("### tiny network (16x16 PNG, one 3x3 conv): overhead of the router\n")
print("| path | p50 ms (1 conn) | p99 ms (1 conn) | req/s (1 conn) | req/s (%s conns) | p50 ms (%s conns) | p99 ms (%s conns) | daemon CPU us/req | non-2xx |" % (conns, conns, conns))
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
labels = {"direct": "direct to the instance", "routed": "daemon, signed (SigV4 + IAM + audit)",
          "open": "daemon, --insecure-no-auth (router only)"}
for side in ("direct", "routed", "open"):
    c1, cN = f"tiny_{side}_c1", f"tiny_{side}_cN"
    cpu = med(cN, "daemon_cpu_us_per_req") if side != "direct" else float("nan")
    print(f"| {labels[side]} | {med(c1, 'p50'):.3f} | {med(c1, 'p99'):.3f} | {med(c1, 'rps'):.0f} | "
          f"{med(cN, 'rps'):.0f} | {med(cN, 'p50'):.3f} | {med(cN, 'p99'):.3f} | "
          + ("-" if side == "direct" else f"{cpu:.0f}") + f" | {errs(c1) + errs(cN)} |")
print()
rps_d = med("tiny_direct_cN", "rps")
for side in ("routed", "open"):
    add = [r["p50"] - d["p50"] for r, d in zip(by.get(f"tiny_{side}_c1", []), by.get("tiny_direct_c1", []))]
    rps = med(f"tiny_{side}_cN", "rps")
    if add:
        print(f"- {labels[side]}: added p50 at 1 connection {statistics.median(add):.3f} ms (per round: "
              + ", ".join(f"{a:.3f}" for a in add) + "; target < 0.3 ms: "
              + ("met" if statistics.median(add) < 0.3 else "missed") + f"); {rps:.0f} req/s at {conns} "
              f"connections = {rps / rps_d:.2f}x direct ({rps_d:.0f}) (target >= 10,000: "
              + ("met" if rps >= 10000 else "missed") + ")")
if "r50_1_routed" in by:
    print(f"\n### resnet50 at saturation ({big} connections, 224x224 PNG)\n")
    print("| instances | path | req/s | p50 ms | p99 ms | non-2xx |")
    print("|---:|---|---:|---:|---:|---:|")
    for n, side, name in ((1, "direct", "r50_1_direct"), (1, "routed", "r50_1_routed"),
                          (3, "routed", "r50_3_routed")):
        print(f"| {n} | {side} | {med(name, 'rps'):.1f} | {med(name, 'p50'):.1f} | "
              f"{med(name, 'p99'):.1f} | {errs(name)} |")
    r1, r3, d1 = med("r50_1_routed", "rps"), med("r50_3_routed", "rps"), med("r50_1_direct", "rps")
    print(f"\n- 1 instance: routed/direct throughput {r1 / d1:.2f}x; 3 vs 1 instances: {r3 / r1:.2f}x "
          f"(each instance runs 2 compute threads; {cpus} CPUs are shared by all of them)")
print(f"- load average at start {l0}, at end {l1}")
EOF
