#!/usr/bin/env bash
# kennel train through the real binary, on a synthetic data set (bare clone):
#  - a run writes the package (model.json, model.safetensors, model.tar.gz,
#    metrics.json), prints per-epoch lines and the Testing Loss/Accuracy lines
#    a tuning regex matches, and kennel predict loads the result unchanged;
#  - the same seed and thread count give bitwise-identical weights;
#  - a second run reuses the feature cache;
#  - the SageMaker contract: hyperparameters.json with string values
#    (learning_rate and learning-rate both), SM channel layout, model to
#    SM_MODEL_DIR; a bad value writes output/failure and exits non-zero;
#  - bad settings get a one-line error naming the field.
set -u
. "$(dirname "$0")/../kn_testlib.sh"

"$kennel" dataset synth "$tmp/data" --classes 3 --per-class 12 --seed 3 > /dev/null
check "synth wrote a data set" test -d "$tmp/data/train"

# a small random-weight backbone: resnet18 at 224 is quick enough here
common=(--data "$tmp/data" --arch resnet18 --head 16 --epochs 3 --batch-size 8
        --learning-rate 0.01 --seed 7 --threads 2 --cache-dir "$tmp/cache" --no-progress)
"$kennel" train "${common[@]}" --model-dir "$tmp/m1" > "$tmp/run1.log" 2>&1
check "train exit 0" test $? -eq 0
check "epoch lines" test "$(grep -c '^Epoch [0-9]/3: train loss' "$tmp/run1.log")" -ge 1
check "Testing Loss line matches the tuning regex" grep -qE '^Testing Loss: [0-9.]+$' "$tmp/run1.log"
check "Testing Accuracy line" grep -qE '^Testing Accuracy: [0-9.]+$' "$tmp/run1.log"
check "random backbone is labelled" grep -q "RANDOM weights" "$tmp/run1.log"
for f in model.json model.safetensors model.tar.gz metrics.json; do
  check "package has $f" test -s "$tmp/m1/$f"
done
check "metrics.json has epochs" /usr/bin/python3 -c "
import json, sys
m = json.load(open('$tmp/m1/metrics.json'))
sys.exit(0 if len(m['epochs']) >= 1 and 'test_loss' in m and 'valid_loss' in m['epochs'][0] else 1)"
check "cache computed on the first run" grep -q "0 from cache" "$tmp/run1.log"

img=$(find "$tmp/data/test" -type f | head -1)
"$kennel" predict --model "$tmp/m1/model.tar.gz" --topk 1 "$img" > "$tmp/pred.txt"
check "predict loads the trained package" test $? -eq 0
check "predict prints a synthetic class" grep -qE '^  1\. [a-z]+_[a-z]+ ' "$tmp/pred.txt"

"$kennel" train "${common[@]}" --model-dir "$tmp/m2" > "$tmp/run2.log" 2>&1
check "second run exit 0" test $? -eq 0
check "second run reads every feature from the cache" grep -qE "features: [1-9][0-9]* from cache, 0 computed" "$tmp/run2.log"
check "same seed, same weights (bitwise)" cmp -s "$tmp/m1/model.safetensors" "$tmp/m2/model.safetensors"
"$kennel" train "${common[@]}" --seed 8 --model-dir "$tmp/m3" > /dev/null 2>&1
check "another seed, other weights" bash -c "! cmp -s '$tmp/m1/model.safetensors' '$tmp/m3/model.safetensors'"

# SageMaker training contract
sm="$tmp/opt_ml"
mkdir -p "$sm/input/config" "$sm/input/data"
ln -s "$tmp/data" "$sm/input/data/training"
cat > "$sm/input/config/hyperparameters.json" <<'EOF'
{"epochs": "2", "batch_size": "8", "learning_rate": "0.01", "arch": "resnet18",
 "head": "16", "seed": "7", "_tuning_objective_metric": "Test Loss",
 "sagemaker_program": "train.py"}
EOF
"$kennel" train --sm-root "$sm" --cache-dir "$tmp/cache" > "$tmp/sm.log" 2>&1
check "SM run exit 0" test $? -eq 0
check "SM model in model/" test -s "$sm/model/model.tar.gz"
check "SM run has the metric line" grep -qE '^Testing Loss: ' "$tmp/sm.log"
check "SM run leaves no failure" test ! -e "$sm/output/failure"

cat > "$sm/input/config/hyperparameters.json" <<'EOF'
{"epochs": "2", "learning-rate": "fast", "arch": "resnet18"}
EOF
"$kennel" train --sm-root "$sm" --cache-dir "$tmp/cache" > "$tmp/smbad.log" 2>&1
check "SM bad value exit non-zero" test $? -ne 0
check "SM failure file names the field" grep -q "learning-rate" "$sm/output/failure"

rm -f "$sm/output/failure"
cat > "$sm/input/config/hyperparameters.json" <<'EOF'
{"epochs": "2", "batch_size": "0", "arch": "resnet18"}
EOF
"$kennel" train --sm-root "$sm" > /dev/null 2>&1
check "SM out-of-range batch size fails" grep -q "batch_size" "$sm/output/failure"

# bad settings on the command line
"$kennel" train --data "$tmp/data" --model-dir "$tmp/x" --epochs zero 2> "$tmp/bad1.err"
check "bad epochs exit 2" test $? -eq 2
check "bad epochs named" grep -q "epochs" "$tmp/bad1.err"
"$kennel" train --data "$tmp/nowhere" --arch resnet18 --model-dir "$tmp/x" --no-progress > /dev/null 2> "$tmp/bad2.err"
check "missing data exit 1" test $? -eq 1
check "missing data named" grep -q "nowhere" "$tmp/bad2.err"
"$kennel" train --data "$tmp/data" --arch resnet18 --weights "$tmp/m1/model.json" --model-dir "$tmp/x" --no-progress > /dev/null 2> "$tmp/bad3.err"
check "bad weights file exit 1" test $? -eq 1
"$kennel" train --data "$tmp/data" --arch resnet18 --finetune 9 --model-dir "$tmp/x" --no-progress > /dev/null 2> "$tmp/bad4.err"
check "finetune beyond the stages is refused" grep -q "stages" "$tmp/bad4.err"

# Missing parent directories of the cache and the model directory are made,
# as a user's first run (no ~/.cache yet) needs.
"$kennel" train "${common[@]}" --epochs 1 --cache-dir "$tmp/new/a/cache" \
  --model-dir "$tmp/new/b/model" > "$tmp/mkdirs.log" 2>&1
check "missing parents: exit 0" test $? -eq 0
check "missing parents: cache made" test -d "$tmp/new/a/cache"
check "missing parents: package written" test -f "$tmp/new/b/model/model.tar.gz"
touch "$tmp/afile"
"$kennel" train "${common[@]}" --epochs 1 --model-dir "$tmp/afile/model" > /dev/null 2> "$tmp/mkbad.err"
check "model dir under a file: refused" test $? -ne 0
check "model dir under a file: named" grep -q "afile" "$tmp/mkbad.err"

kn_done
