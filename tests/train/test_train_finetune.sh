#!/usr/bin/env bash
# kennel train --finetune through the real binary, on a synthetic data set at
# a small image size (random-init resnet18, so it is fast also under ASan):
#  - a head-only run writes a package whose backbone is the seeded random
#    initialisation; it becomes the --weights of the fine-tuning runs;
#  - --finetune 1 for two steps: the losses are finite, every layer4 tensor
#    (conv weights, batch-norm affine and running statistics) and the head
#    changed, every tensor before layer4 is bitwise unchanged;
#  - --finetune all: the stem (conv1, bn1) changes too;
#  - both packages predict with kennel predict;
#  - bad values of --finetune and --image-size are refused, naming the field.
set -u
py=/usr/bin/python3
if [ ! -x "$py" ]; then
  echo "SKIP: $py is absent (used to compare safetensors files)"
  exit 77
fi
. "$(dirname "$0")/../kn_testlib.sh"

"$kennel" dataset synth "$tmp/data" --classes 3 --per-class 8 --seed 5 > /dev/null
check "synth wrote a data set" test -d "$tmp/data/train"

common=(--data "$tmp/data" --arch resnet18 --image-size 64 --head 16 --batch-size 4
        --learning-rate 0.01 --seed 3 --threads 2 --cache-dir none --no-progress)

# the starting point: a package whose backbone is the random initialisation
"$kennel" train "${common[@]}" --epochs 1 --max-steps 1 --model-dir "$tmp/m0" > "$tmp/m0.log" 2>&1
check "head-only run exit 0" test $? -eq 0
check "head-only package" test -s "$tmp/m0/model.safetensors"

# finetune 1: two optimiser steps over layer4 + head
"$kennel" train "${common[@]}" --weights "$tmp/m0/model.safetensors" --finetune 1 \
  --epochs 1 --max-steps 2 --patience -1 --model-dir "$tmp/m1" > "$tmp/m1.log" 2>&1
rc=$?
check "finetune 1 exit 0" test $rc -eq 0
[ $rc -eq 0 ] || cat "$tmp/m1.log"
check "finetune 1 says what it trains" grep -q "last 1 stage trainable" "$tmp/m1.log"
check "finetune 1 losses are finite" grep -qE '^Epoch 1/1: train loss [0-9]+\.[0-9]+ .* valid loss [0-9]+\.[0-9]+ ' "$tmp/m1.log"
check "finetune 1 Testing Loss is finite" grep -qE '^Testing Loss: [0-9]+\.[0-9]+$' "$tmp/m1.log"

# compare two packages tensor by tensor; prints the names that differ
cat > "$tmp/diff.py" <<'EOF'
import json, struct, sys
def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8:8 + n])
    return {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
            for k, v in head.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), load(sys.argv[2])
if sorted(a) != sorted(b):
    print("tensor names differ")
    sys.exit(1)
for k in sorted(a):
    if a[k] != b[k]:
        print(k)
EOF
"$py" "$tmp/diff.py" "$tmp/m0/model.safetensors" "$tmp/m1/model.safetensors" > "$tmp/changed1.txt"
check "packages have the same tensors" test $? -eq 0
# what must have changed, what must not
check "layer4 conv weights changed" grep -qx 'layer4.0.conv1.weight' "$tmp/changed1.txt"
check "layer4 downsample changed" grep -qx 'layer4.0.downsample.0.weight' "$tmp/changed1.txt"
check "layer4 batch-norm scale changed" grep -qx 'layer4.1.bn2.weight' "$tmp/changed1.txt"
check "layer4 running mean updated" grep -qx 'layer4.1.bn2.running_mean' "$tmp/changed1.txt"
check "layer4 running var updated" grep -qx 'layer4.0.bn1.running_var' "$tmp/changed1.txt"
check "head changed" grep -q '^fc\.' "$tmp/changed1.txt"
check "nothing before layer4 changed" bash -c "! grep -vE '^(layer4\\.|fc\\.)' '$tmp/changed1.txt'"
n4=$("$py" -c "
import json, struct
raw = open('$tmp/m0/model.safetensors', 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
print(sum(1 for k in json.loads(raw[8:8 + n]) if k.startswith('layer4.') and 'num_batches' not in k))")
c4=$(grep -c '^layer4\.' "$tmp/changed1.txt")
check "every layer4 tensor changed ($c4 of $n4)" test "$c4" -eq "$n4"

img=$(find "$tmp/data/test" -type f | head -1)
"$kennel" predict --model "$tmp/m1/model.tar.gz" --topk 1 "$img" > "$tmp/pred1.txt"
check "predict loads the fine-tuned package" test $? -eq 0
check "predict prints a synthetic class" grep -qE '^  1\. [a-z]+_[a-z]+ ' "$tmp/pred1.txt"

# finetune all: the stem trains too
"$kennel" train "${common[@]}" --weights "$tmp/m0/model.safetensors" --finetune all \
  --epochs 1 --max-steps 2 --patience -1 --model-dir "$tmp/ma" > "$tmp/ma.log" 2>&1
rc=$?
check "finetune all exit 0" test $rc -eq 0
[ $rc -eq 0 ] || cat "$tmp/ma.log"
check "finetune all says so" grep -q "every layer trainable" "$tmp/ma.log"
check "finetune all Testing Loss is finite" grep -qE '^Testing Loss: [0-9]+\.[0-9]+$' "$tmp/ma.log"
"$py" "$tmp/diff.py" "$tmp/m0/model.safetensors" "$tmp/ma/model.safetensors" > "$tmp/changeda.txt"
check "finetune all: stem conv changed" grep -qx 'conv1.weight' "$tmp/changeda.txt"
check "finetune all: stem running stats updated" grep -qx 'bn1.running_mean' "$tmp/changeda.txt"
check "finetune all: layer1 changed" grep -qx 'layer1.0.conv1.weight' "$tmp/changeda.txt"
"$kennel" predict --model "$tmp/ma/model.tar.gz" --topk 1 "$img" > /dev/null
check "predict loads the fully fine-tuned package" test $? -eq 0

# bad values
"$kennel" train "${common[@]}" --finetune some --model-dir "$tmp/x" 2> "$tmp/bad1.err"
check "bad finetune exit 2" test $? -eq 2
check "bad finetune named" grep -q "finetune" "$tmp/bad1.err"
"$kennel" train "${common[@]}" --image-size 8 --model-dir "$tmp/x" 2> "$tmp/bad2.err"
check "bad image size exit 2" test $? -eq 2
check "bad image size named" grep -q "image-size" "$tmp/bad2.err"

kn_done
