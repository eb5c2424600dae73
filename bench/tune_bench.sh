#!/usr/bin/env bash
# Wall time of the reference project's tuning job on this machine:
# learning_rate 0.001..0.1 x batch_size {32..512}, "Test Loss" minimised,
# frozen mobilenet_v1_0.25_224 on ../shared/data/pets-cats (one seeded 7/3 split for both,
# EPOCHS epochs), MaxParallelTrainingJobs 2, for 2 trials and for 20 trials:
#   kennel, feature cache on  (empty at the start of the tuning job: the
#                              first trials extract, the others reuse)
#   kennel, feature cache off (cache_dir=none: every trial extracts once)
#   PyTorch, the reference hpo.py logic (bench/tune_torch.py) on the same
#                              trials (kennel's hyperparameters), one after the
#                              other on 2 threads: backbone forward every epoch
# kennel's time is the tuning job's own (HyperParameterTuningEndTime -
# CreationTime); PyTorch's is the script's wall time. Medians over REPS runs
# (default 3). Prints the load average before and after.
#   bench/tune_bench.sh [BUILD_DIR]     knobs: TRIALS ("2 20"), REPS, EPOCHS (5),
#                                       CACHE_OFF (1; 0 skips the cache-off runs)
# Run r (1..REPS) seeds both engines' head initialisation and batch order
# with r-1, so the best-loss comparison is over seeds, not one draw: the
# table gives each run's best Test Loss and their median for both sides.
# tune_torch.py draws the head's initial weights and the batch order as
# kennel does, so each trial's Test Loss can be compared one to one: the
# largest difference over all trials of a run is printed with it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
kennel=$build/kennel
shared=${KN_SHARED:-$here/../../shared}
data=$shared/data/pets-cats
backbone=$shared/data/models/mobilenet_v1_0.25_224.tflite
[ -d "$data" ] && [ -f "$backbone" ] || { echo "SKIP: $data or $backbone absent"; exit 77; }
TRIALS=${TRIALS:-"2 20"}
EPOCHS=${EPOCHS:-5}
tmp=$(mktemp -d)
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=kennel-bench-secret
export KENNEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID KENNEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_DEFAULT_REGION=us-east-1
srv=""
cleanup() { [ -n "$srv" ] && kill "$srv" 2> /dev/null; wait 2> /dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
# Both engines train and test on the same images: one seeded 7/3 split per
# class, written as train/ and test/ folders of links, which kennel takes as
# they are and tune_torch.py reads as they are.
/usr/bin/python3 - "$data" "$tmp/split" << 'PY'
import os, random, sys
src, dst = sys.argv[1:]
rng = random.Random(0)
for c in sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d))):
    files = sorted(os.listdir(os.path.join(src, c)))
    rng.shuffle(files)
    k = round(len(files) * 0.7)
    for part, names in (("train", files[:k]), ("test", files[k:])):
        os.makedirs(os.path.join(dst, part, c), exist_ok=True)
        for f in names:
            os.symlink(os.path.abspath(os.path.join(src, c, f)), os.path.join(dst, part, c, f))
PY
data=$tmp/split
echo "load before: $(cat /proc/loadavg)"
echo "cpu: $(nproc) cores; $(uname -r)"

# run_kennel NAME N CACHE(on|off) SEED: prints "seconds best_loss"
run_kennel() {
  local name=$1 n=$2 cache=$3 seed=${4:-0} run=$tmp/$1
  mkdir -p "$run"
  XDG_CACHE_HOME=$run/cache "$kennel" server --data-dir "$run/data" --port 0 \
    --ready-file "$run/ready" > /dev/null 2> "$run/server.err" &
  srv=$!
  for _ in $(seq 200); do [ -s "$run/ready" ] && break; sleep 0.05; done
  export KENNEL_ENDPOINT=http://$(cat "$run/ready")
  /usr/bin/python3 - "$name" "$n" "$cache" "$backbone" "$data" "$EPOCHS" "$run" "$seed" > "$run/tuning.json" << 'PY'
import json, sys
name, n, cache, backbone, data, epochs, run, seed = sys.argv[1:]
static = {"backbone": backbone, "epochs": epochs, "seed": seed}
if cache == "off":
    static["cache_dir"] = "none"
print(json.dumps({"HyperParameterTuningJobName": name,
  "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "RandomSeed": 7,
    "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "Test Loss"},
    "ResourceLimits": {"MaxNumberOfTrainingJobs": int(n), "MaxParallelTrainingJobs": 2},
    "ParameterRanges": {"ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.1"}],
      "CategoricalParameterRanges": [{"Name": "batch_size", "Values": ["32", "64", "128", "256", "512"]}]}},
  "TrainingJobDefinition": {"StaticHyperParameters": static,
    "AlgorithmSpecification": {"TrainingImage": "kennel", "TrainingInputMode": "File",
      "MetricDefinitions": [{"Name": "Test Loss", "Regex": "Testing Loss: ([0-9\\.]+)"}]},
    "RoleArn": "arn:aws:iam::123456789012:role/bench",
    "InputDataConfig": [{"ChannelName": "training", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "file://" + data}}}],
    "OutputDataConfig": {"S3OutputPath": "file://" + run + "/out"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
    "StoppingCondition": {"MaxRuntimeInSeconds": 36000}}}))
PY
  "$kennel" tune --config "$run/tuning.json" > "$run/tune.out"
  "$kennel" tune results "$name" --json > "$run/results.json"
  /usr/bin/python3 - "$run/results.json" "$run/trials.json" << 'PY'
import json, sys
r = json.load(open(sys.argv[1]))
json.dump([k["TunedHyperParameters"] for k in r], open(sys.argv[2], "w"))
obj = lambda k: k.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
json.dump([obj(k) for k in r], open(sys.argv[2].replace("trials", "losses"), "w"))
PY
  local desc
  desc=$("$kennel" tune best "$name" 2> /dev/null | sed -n 's/^Test Loss: //p')
  /usr/bin/python3 - "$run/results.json" "$desc" << 'PY'
import json, sys
r = json.load(open(sys.argv[1]))
start = min(k["CreationTime"] for k in r)
end = max(k["TrainingEndTime"] for k in r if "TrainingEndTime" in k)
print(f"{end - start:.2f} {sys.argv[2] or 'nan'}")
PY
  kill "$srv"; wait "$srv" 2> /dev/null || true; srv=""
}

median() { /usr/bin/python3 -c "import statistics,sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.4f}')" "$@"; }

for n in $TRIALS; do
  reps=${REPS:-3}
  on=() off=() pt=() lon=() loff=() lpt=()
  for r in $(seq "$reps"); do
    seed=$((r - 1))
    read -r s l < <(run_kennel "on$n-$r" "$n" on "$seed"); on+=("$s"); lon+=("$l")
    if [ "${CACHE_OFF:-1}" != 0 ]; then
      read -r s l < <(run_kennel "off$n-$r" "$n" off "$seed"); off+=("$s"); loff+=("$l")
    fi
    out=$(/usr/bin/python3 "$here/tune_torch.py" "$data" "$backbone" "$tmp/on$n-$r/trials.json" "$EPOCHS" "$seed" | tail -1)
    pt+=("$(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')")
    echo "$out" | /usr/bin/python3 -c '
import json, sys
pt, kn = json.load(sys.stdin)["losses"], json.load(open(sys.argv[1]))
d = [abs(a - b) for a, b in zip(pt, kn) if a is not None and b is not None]
print(f"  run {sys.argv[2]}: {len(d)} trials compared one to one, largest |kennel - PyTorch| Test Loss {max(d):.2g}"
      f" (largest relative {max(abs(a - b) / abs(b) for a, b in zip(pt, kn) if a is not None and b):.2g})" if d else
      f"  run {sys.argv[2]}: no trial to compare")' "$tmp/on$n-$r/losses.json" "$n-$r"
    lpt+=("$(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(round(json.load(sys.stdin)["best_test_loss"], 4))')")
  done
  [ ${#off[@]} -gt 0 ] || { off=(nan); loff=(nan); }
  mon=$(median "${on[@]}"); moff=$(median "${off[@]}"); mpt=$(median "${pt[@]}")
  echo "== $n trials, $EPOCHS epochs, MaxParallel 2, $reps run(s) (seeds 0..$((reps - 1))), median seconds"
  printf "  %-34s %8s s  best Test Loss per run %s, median %s\n" "kennel, feature cache on" "$mon" "${lon[*]}" "$(median "${lon[@]}")"
  printf "  %-34s %8s s  best Test Loss per run %s, median %s\n" "kennel, feature cache off" "$moff" "${loff[*]}" "$(median "${loff[@]}")"
  printf "  %-34s %8s s  best Test Loss per run %s, median %s\n" "PyTorch hpo.py logic (same trials)" "$mpt" "${lpt[*]}" "$(median "${lpt[@]}")"
  /usr/bin/python3 -c "import sys; a,b,c=map(float,sys.argv[1:]); print(f'  cache saves {b/a:.2f}x; kennel (cache) vs PyTorch {c/a:.1f}x, kennel (no cache) vs PyTorch {c/b:.1f}x')" "$mon" "$moff" "$mpt"
done
echo "load after: $(cat /proc/loadavg)"
