#!/usr/bin/env bash
# Data-parallel training under mpirun equals single-process training on the
# same global batches, within 1e-5 relative on every step's loss and on the
# final weights (tests/train/mpi_compare.py):
#  - frozen backbone (features in memory): SGD with momentum, batch 8 over 2
#    ranks; Adam, batch 7 over 2 ranks (shards of 4 and 3); batch 2 over 3
#    ranks (one rank has an empty shard every step);
#  - the image path (augmentation, so images go through the backbone each
#    step): batch 7 over 2 ranks;
#  - the feature cache filled by 2 ranks (rank 0 writes it) is read whole by
#    a later single-process run with the same result;
#  - fine-tuning through batch norm over 2 ranks (shard batch statistics,
#    running statistics averaged every step): the ranks' weights agree bit
#    for bit (checked by kennel itself), the package loads in kennel predict;
#  - a different seed is caught by the comparison; a failing rank ends the
#    run with an error instead of a hang.
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
command -v mpirun > /dev/null || { echo "SKIP: mpirun not installed (apt-get install openmpi-bin)"; exit 77; }
$py -c 'import numpy' 2> /dev/null || { echo "SKIP: numpy missing for $py"; exit 77; }
. "$(dirname "$0")/../kn_testlib.sh"
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
"$kennel" train --mpi --data "$tmp/none" --model-dir "$tmp/none-m" > /dev/null 2> "$tmp/probe.err"
if grep -q "built without MPI" "$tmp/probe.err"; then
  echo "SKIP: this kennel was built without MPI"; exit 77
fi
mpi=(mpirun --oversubscribe --bind-to none --mca btl self,vader)
compare() { # DIR_A DIR_B
  $py "$here/mpi_compare.py" "$1" "$2" 1e-5
}

"$kennel" dataset synth "$tmp/data" --classes 3 --per-class 12 --seed 3 > /dev/null
frozen=(--data "$tmp/data" --arch resnet18 --image-size 64 --head 16 --epochs 2 --seed 7
        --threads 1 --cache-dir "$tmp/cache" --no-progress --patience -1)
"$kennel" train "${frozen[@]}" --model-dir "$tmp/warm" > /dev/null 2>&1 # fills the cache

run_pair() { # NAME NP ARGS...: 1 process vs NP ranks
  local name=$1 np=$2
  shift 2
  "$kennel" train "$@" --model-dir "$tmp/$name-1" > "$tmp/$name-1.log" 2>&1
  check "$name: single process exit 0" test $? -eq 0
  "${mpi[@]}" -np "$np" "$kennel" train "$@" --model-dir "$tmp/$name-$np" > "$tmp/$name-$np.log" 2>&1
  check "$name: $np ranks exit 0" test $? -eq 0
  check "$name: $np ranks said so" grep -q "^data parallel: $np ranks" "$tmp/$name-$np.log"
  check "$name: one set of metric lines (rank 0 only)" \
    test "$(grep -c '^Testing Loss: ' "$tmp/$name-$np.log")" -eq 1
  echo "$name (1 vs $np ranks):"
  compare "$tmp/$name-1" "$tmp/$name-$np"
  check "$name: $np ranks equal one process within 1e-5" test $? -eq 0
}

run_pair sgd8 2 "${frozen[@]}" --batch-size 8 --optimizer sgd --momentum 0.9 --learning-rate 0.05
check "metrics.json records the ranks" $py -c "
import json, sys
sys.exit(0 if json.load(open('$tmp/sgd8-2/metrics.json')).get('ranks') == 2 else 1)"
run_pair adam7 2 "${frozen[@]}" --batch-size 7 --optimizer adam --learning-rate 0.01
run_pair sgd2 3 "${frozen[@]}" --batch-size 2 --optimizer sgd --learning-rate 0.05 --epochs 1
run_pair augment 2 --data "$tmp/data" --arch tiny --image-size 32 --augment random --head 16 \
  --epochs 2 --batch-size 7 --optimizer sgd --momentum 0.9 --learning-rate 0.05 --seed 7 \
  --threads 1 --no-progress --patience -1

# the comparison can fail: another seed is not within 1e-5
"$kennel" train "${frozen[@]}" --batch-size 8 --optimizer sgd --momentum 0.9 \
  --learning-rate 0.05 --seed 8 --model-dir "$tmp/seed8" > /dev/null 2>&1
check "another seed is told apart" bash -c "! $py '$here/mpi_compare.py' '$tmp/sgd8-1' '$tmp/seed8' 1e-5 > /dev/null"

# the feature cache computed by two ranks
cold=(--data "$tmp/data" --arch resnet18 --image-size 64 --head 16 --epochs 1 --seed 7
      --threads 1 --cache-dir "$tmp/cache2" --no-progress --patience -1 --batch-size 5)
"${mpi[@]}" -np 2 "$kennel" train "${cold[@]}" --model-dir "$tmp/cold-2" > "$tmp/cold-2.log" 2>&1
check "cold cache over 2 ranks exit 0" test $? -eq 0
check "2 ranks computed every feature" grep -qE "features: 0 from cache, [1-9][0-9]* computed" "$tmp/cold-2.log"
check "one cache file" test "$(find "$tmp/cache2" -type f | wc -l)" -eq 1
"$kennel" train "${cold[@]}" --model-dir "$tmp/cold-1" > "$tmp/cold-1.log" 2>&1
check "the ranks' cache serves a single process whole" grep -qE "features: [1-9][0-9]* from cache, 0 computed" "$tmp/cold-1.log"
compare "$tmp/cold-1" "$tmp/cold-2"
check "cache-fed single process equals the 2 ranks" test $? -eq 0

# fine-tuning through batch norm
"${mpi[@]}" -np 2 "$kennel" train --data "$tmp/data" --arch tiny --image-size 32 --finetune all \
  --epochs 2 --batch-size 8 --optimizer sgd --learning-rate 0.05 --seed 7 --threads 1 \
  --no-progress --patience -1 --model-dir "$tmp/bn-2" > "$tmp/bn-2.log" 2>&1
check "batch-norm fine-tuning over 2 ranks exit 0 (ranks agree)" test $? -eq 0
check "no disagreement reported" bash -c "! grep -q 'weights differ' '$tmp/bn-2.log'"
check "running statistics moved and are finite" $py - "$tmp/bn-2/model.safetensors" <<'PY'
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
ok = False
for k, t in json.loads(raw[8:8 + n]).items():
    if k.endswith('running_var'):
        s, e = t['data_offsets']
        v = np.frombuffer(raw[8 + n + s:8 + n + e], dtype='<f4')
        ok = bool(np.all(np.isfinite(v)) and np.any(v != 1.0))
sys.exit(0 if ok else 1)
PY
img=$(find "$tmp/data/test" -type f | head -1)
"$kennel" predict --model "$tmp/bn-2/model.tar.gz" --topk 1 "$img" > "$tmp/pred.txt" 2>&1
check "predict loads the 2-rank package" test $? -eq 0

# a failing rank ends the run
timeout 120 "${mpi[@]}" -np 2 "$kennel" train --data "$tmp/nowhere" --model-dir "$tmp/x" \
  --no-progress > "$tmp/bad.log" 2>&1
rc=$?
check "a failing run exits non-zero, no hang" bash -c "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
check "the failure names the data directory" grep -q "nowhere" "$tmp/bad.log"

kn_done
