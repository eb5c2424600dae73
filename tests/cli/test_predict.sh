#!/usr/bin/env bash
# kennel predict and kennel model, through the real binary:
#  - a package made from random weights predicts the same from its directory,
#    its model.tar.gz and the bare .safetensors with --arch;
#  - --json prints one [[s0, ..., sN]] row per image with N = classes;
#  - corrupt, truncated, empty and non-image files each get one stderr line
#    naming the file, the other images are still classified, exit code 1;
#  - an image declaring more pixels than --max-pixels is refused;
#  - model inspect reports parameters and FLOPs; usage errors exit 2.
set -u
. "$(dirname "$0")/../kn_testlib.sh"

# images: a generated PNG and JPEG-free inputs so the test runs on a bare clone
/usr/bin/python3 - "$tmp" <<'PY'
import struct, sys, zlib
d = sys.argv[1]
def png(path, w, h, seed):
    rows = b"".join(b"\0" + bytes(((x * 7 + y * 3 + seed) * 5) % 256 for x in range(w) for _ in range(3)) for y in range(h))
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))
    blob = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    open(path, "wb").write(blob)
    return blob
a = png(d + "/a.png", 40, 30, 1)
png(d + "/b.png", 33, 51, 2)
open(d + "/truncated.png", "wb").write(a[: len(a) // 2])
open(d + "/empty.jpg", "wb").write(b"")
open(d + "/notes.txt", "wb").write(b"these are not pixels\n")
open(d + "/corrupt.png", "wb").write(a[:40] + bytes(200) + a[240:])
# a PNG header declaring 20000 x 20000 (400 megapixels)
def chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))
open(d + "/huge.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)) + chunk(b"IEND", b""))
PY
printf 'cat\ndog\nbird\nfish\nfrog\n' > "$tmp/labels.txt"

# a package from seeded random weights, with a hidden layer in the head
"$kennel" model package --arch resnet18 --hidden 16 --init random --classes 5 --seed 7 \
  --labels "$tmp/labels.txt" --out "$tmp/pkg" --tar "$tmp/model.tar.gz" > "$tmp/pkg.out"
check "package written" test -f "$tmp/pkg/model.json" -a -f "$tmp/pkg/model.safetensors" -a -f "$tmp/model.tar.gz"
check "model.json has classes" grep -q '"fish"' "$tmp/pkg/model.json"

"$kennel" predict --model "$tmp/pkg" --json "$tmp/a.png" "$tmp/b.png" > "$tmp/dir.json"
check "json exit 0" test $? -eq 0
check "json one row per image" test "$(wc -l < "$tmp/dir.json")" -eq 2
check "json row shape" /usr/bin/python3 -c "
import json, sys
rows = [json.loads(l) for l in open('$tmp/dir.json')]
sys.exit(0 if all(len(r) == 1 and len(r[0]) == 5 and all(isinstance(v, float) for v in r[0]) for r in rows) else 1)"
"$kennel" predict --model "$tmp/model.tar.gz" --json "$tmp/a.png" "$tmp/b.png" > "$tmp/tar.json"
check "tar.gz predicts the same" cmp -s "$tmp/dir.json" "$tmp/tar.json"
"$kennel" predict --model "$tmp/pkg/model.safetensors" --arch resnet18 --hidden 16 --json \
  "$tmp/a.png" "$tmp/b.png" > "$tmp/st.json"
check "bare safetensors predicts the same" cmp -s "$tmp/dir.json" "$tmp/st.json"
"$kennel" predict --model "$tmp/pkg" --backend ref --json "$tmp/a.png" > "$tmp/ref.json"
check "reference backend agrees" /usr/bin/python3 -c "
import json, sys
a = json.loads(open('$tmp/ref.json').readline())[0]
b = json.loads(open('$tmp/dir.json').readline())[0]
sys.exit(0 if max(abs(x - y) for x, y in zip(a, b)) < 1e-4 else 1)"

# top-k output uses the class names
"$kennel" predict --model "$tmp/pkg" --topk 2 "$tmp/a.png" > "$tmp/top.txt"
check "topk prints 2 ranked names" test "$(grep -cE '^  [12]\. (cat|dog|bird|fish|frog) ' "$tmp/top.txt")" -eq 2

# bad inputs among good ones
"$kennel" predict --model "$tmp/pkg" --topk 1 "$tmp/a.png" "$tmp/truncated.png" "$tmp/empty.jpg" \
  "$tmp/notes.txt" "$tmp/corrupt.png" "$tmp/missing.jpg" "$tmp/b.png" > "$tmp/mixed.out" 2> "$tmp/mixed.err"
code=$?
check "mixed exit 1" test $code -eq 1
check "good images still classified" test "$(grep -c '^  1\. ' "$tmp/mixed.out")" -eq 2
check "one error line per bad file" test "$(wc -l < "$tmp/mixed.err")" -eq 5
for f in truncated.png empty.jpg notes.txt corrupt.png missing.jpg; do
  check "error names $f" grep -q "$f" "$tmp/mixed.err"
done
check "empty file reason" grep -q "empty.jpg.*empty" "$tmp/mixed.err"

"$kennel" predict --model "$tmp/pkg" "$tmp/huge.png" 2> "$tmp/huge.err" > /dev/null
check "huge image exit 1" test $? -eq 1
check "huge image refused with its size" grep -q "20000" "$tmp/huge.err"
"$kennel" predict --model "$tmp/pkg" --max-pixels 1000 "$tmp/a.png" 2> "$tmp/limit.err" > /dev/null
check "--max-pixels applies" test $? -eq 1

# model inspect
"$kennel" model inspect "$tmp/model.tar.gz" > "$tmp/inspect.txt"
check "inspect exit 0" test $? -eq 0
check "inspect parameters" grep -q "^parameters:" "$tmp/inspect.txt"
check "inspect FLOPs" grep -q "^FLOPs:        3\.6" "$tmp/inspect.txt"
check "inspect lists graph" grep -q "conv2d" "$tmp/inspect.txt"

# usage errors and bad models
"$kennel" predict "$tmp/a.png" 2> /dev/null
check "missing --model exit 2" test $? -eq 2
"$kennel" predict --model "$tmp/pkg" --topk zero "$tmp/a.png" 2> /dev/null
check "bad --topk exit 2" test $? -eq 2
"$kennel" predict --model "$tmp/notes.txt" "$tmp/a.png" 2> "$tmp/badmodel.err"
check "not a model exit 1" test $? -eq 1
check "not a model says so" grep -q "not a model" "$tmp/badmodel.err"
"$kennel" predict --model "$tmp/pkg/model.safetensors" "$tmp/a.png" 2> "$tmp/noarch.err"
check "bare weights need --arch" grep -q -- "--arch" "$tmp/noarch.err"
"$kennel" predict --model "$tmp/pkg/model.safetensors" --arch resnet34 --hidden 16 "$tmp/a.png" 2> "$tmp/wrongarch.err"
check "wrong arch names the missing tensor" grep -q "layer1.2.conv1.weight is missing" "$tmp/wrongarch.err"
"$kennel" predict --model "$tmp/pkg/model.safetensors" --arch resnet18 "$tmp/a.png" 2> "$tmp/nohead.err"
check "wrong head names the head tensor" grep -q "fc.weight" "$tmp/nohead.err"
"$kennel" frobnicate 2> /dev/null
check "unknown command exit 2" test $? -eq 2

kn_done
