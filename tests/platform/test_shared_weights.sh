#!/usr/bin/env bash
# Instances of one model share one read-only mapped weights file: a real
# kennel server runs an endpoint of 3 instances (kennel model-server
# processes); each maps the same file (same device and inode) from the data
# directory's weights/ cache, read-only and shared ("r--s"), with no private
# pages in that mapping (Private_Dirty 0, Private_Clean ~0 in
# /proc/PID/smaps); there is one such file; the endpoint still answers with
# kennel predict's scores. Then a second endpoint of the same package maps
# the same file without writing a new one. (Memory figures: bench/weights_share.sh.)
set -u
. "$(dirname "$0")/../kn_testlib.sh"

kn_client_env AKIDSHAREDWEIGHTS shared-weights-test-secret

"$kennel" model package --arch resnet18 --init random --classes 4 --seed 5 --out "$tmp/pkg" > /dev/null
kn_start_server
export KENNEL_ENDPOINT=$url

"$kennel" deploy --model "$tmp/pkg" --name shw --instances 3 --instance-type ml.m5.large \
  --wait > "$tmp/deploy.out" 2>&1
check "deploy 3 instances" grep -q "endpoint shw is InService" "$tmp/deploy.out" || cat "$tmp/deploy.out"

# the daemon's children are its instances
instances() { cat /proc/"$server_pid"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+$' | sort -u; }

# For each pid: "DEV:INODE PRIVATE_CLEAN_KB PRIVATE_DIRTY_KB RSS_KB PERMS" of its
# mapping of a file under $tmp/data/weights (one line per pid, or "none").
weights_maps() {
  /usr/bin/python3 - "$tmp/data/weights/" "$@" <<'EOF'
import sys
prefix, pids = sys.argv[1], sys.argv[2:]
for pid in pids:
    found = None
    cur = None
    try:
        lines = open(f"/proc/{pid}/smaps").read().splitlines()
    except OSError:
        print("none"); continue
    for ln in lines:
        parts = ln.split()
        if len(parts) >= 5 and "-" in parts[0] and ":" in parts[3]:
            cur = None
            if len(parts) >= 6 and parts[5].startswith(prefix):
                cur = {"id": parts[3] + ":" + parts[4], "perms": parts[1]}
                found = cur if found is None else found
            continue
        if cur is not None and len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
            cur[parts[0][:-1]] = int(parts[1])
    if found is None:
        print("none")
    else:
        print(found["id"], found.get("Private_Clean", -1), found.get("Private_Dirty", -1),
              found.get("Rss", -1), found["perms"])
EOF
}

mapfile -t pids < <(instances)
check "3 instance processes" test "${#pids[@]}" -eq 3
weights_maps "${pids[@]}" > "$tmp/maps.txt"
cat "$tmp/maps.txt"
check "every instance maps a weights file" test "$(grep -c -v '^none' "$tmp/maps.txt")" -eq 3
check "the same file (device and inode)" test "$(awk '{print $1}' "$tmp/maps.txt" | sort -u | wc -l)" -eq 1
check "mapped read-only and shared" test "$(awk '$5 == "r--s"' "$tmp/maps.txt" | wc -l)" -eq 3
check "no private dirty pages in the mapping" test "$(awk '$3 == 0' "$tmp/maps.txt" | wc -l)" -eq 3
# resident pages of the mapping are shared with the other instances (a page
# only this process has would be Private_Clean)
check "no private clean pages to speak of" test \
  "$(awk '$4 > 0 && $2 * 20 <= $4' "$tmp/maps.txt" | wc -l)" -eq 3
check "one weights file" test "$(ls "$tmp/data/weights" | grep -c '\.weights$')" -eq 1

/usr/bin/python3 -c "
import struct, zlib
w, h = 40, 30
rows = b''.join(b'\0' + bytes((x * 7 + y * 3 + c * 40) % 256 for x in range(w) for c in range(3)) for y in range(h))
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
open('$tmp/img.png', 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))"
"$kennel" invoke shw "$tmp/img.png" > "$tmp/inv.json"
check "invoke" test $? -eq 0
"$kennel" predict --model "$tmp/pkg" --json "$tmp/img.png" > "$tmp/pred.json" 2> /dev/null
check "same scores as predict" /usr/bin/python3 -c "
import json
a = json.load(open('$tmp/inv.json'))[0]; c = json.load(open('$tmp/pred.json'))[0]
assert len(a) == 4 and max(abs(x - y) for x, y in zip(a, c)) < 1e-4, (a, c)"

# a second endpoint of the same package: the same file, not a new one
before=$(stat -c %i "$tmp"/data/weights/*.weights)
"$kennel" deploy --model "$tmp/pkg" --name shw2 --instances 1 --instance-type ml.m5.large \
  --wait > "$tmp/deploy2.out" 2>&1
check "deploy a second endpoint" grep -q "endpoint shw2 is InService" "$tmp/deploy2.out"
mapfile -t pids2 < <(instances)
weights_maps "${pids2[@]}" > "$tmp/maps2.txt"
check "4 instances map the same file" test \
  "$(grep -v '^none' "$tmp/maps2.txt" | awk '{print $1}' | sort | uniq -c | awk '{print $1}')" = 4
check "the file was not rewritten" test "$(stat -c %i "$tmp"/data/weights/*.weights)" = "$before"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
