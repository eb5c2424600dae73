#!/usr/bin/env bash
# Training speed, kennel against PyTorch, side by side in one run:
#   features   frozen resnet50 feature extraction, batch 32 (img/s)
#   head       one Adam epoch of the 2048-128-133 head on 6680 cached
#              2048-d features, batch 32 (seconds)
#   finetune1  one --finetune 1 step of resnet50 (layer4 + fc), batch 16 (img/s)
#   full       one full fine-tune step of resnet50, batch 16 (img/s)
# Every measurement runs in its own process; kennel and PyTorch alternate
# (the first engine changes every round) for ROUNDS rounds, and the table
# gives the medians across rounds and the ratios (above 1 = kennel faster).
# Results: bench/results/train_latest.md (+ train_latest.jsonl, the raw
# lines). See bench/README.md, "Training".
#
#   bench/train_run.sh            ROUNDS=3, HEAD_EPOCHS=5, STEPS=3 by default
#   CASES="head full" bench/train_run.sh   a subset
#   ROUNDS=5 BUILD=build-x bench/train_run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build-train-bench}
rounds=${ROUNDS:-3}
epochs=${HEAD_EPOCHS:-5}  # timed head epochs per process (after a warm-up one)
steps=${STEPS:-3}         # timed fine-tune steps per process (after a warm-up one)
cases=${CASES:-features head finetune1 full}
py=/usr/bin/python3
out=$root/bench/results
mkdir -p "$out"
raw=$out/train_latest.jsonl
md=$out/train_latest.md

if ! "$py" -c "import torch, torchvision" 2> /dev/null; then
  echo "train_run.sh: $py cannot import torch/torchvision (Debian python3-torch, python3-torchvision)" >&2
  exit 1
fi
echo "building kennel (Release) in $build ..."
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" -j2 --target train_bench finetune_bench > /dev/null

# Both engines get 2 threads. OpenBLAS overrides set on some machines here
# select slower kernels: unset, as for a user.
export OMP_NUM_THREADS=2
for v in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
  [ -n "${!v:-}" ] && echo "unsetting $v (was ${!v})"
  unset $v
done

: > "$raw"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
t_start=$SECONDS

run() { # engine bench round
  local engine=$1 bench=$2 round=$3 line
  local cmd
  case $engine/$bench in
    kennel/features)  cmd=("$build/bench/train_bench" features --threads 2 --iters 5) ;;
    kennel/head)      cmd=("$build/bench/train_bench" head --threads 2 --epochs "$epochs") ;;
    kennel/finetune1) cmd=("$build/bench/finetune_bench" finetune --finetune 1 --batch 16 --threads 2 --steps "$steps" --warmup 1) ;;
    kennel/full)      cmd=("$build/bench/finetune_bench" full --batch 16 --threads 2 --steps "$steps" --warmup 1) ;;
    pytorch/features) cmd=("$py" "$root/bench/train_torch.py" features 5) ;;
    pytorch/head)     cmd=("$py" "$root/bench/train_torch.py" head "$epochs") ;;
    pytorch/finetune1) cmd=("$py" "$root/bench/finetune_torch.py" finetune --batch 16 --threads 2 --steps "$steps" --warmup 1) ;;
    pytorch/full)     cmd=("$py" "$root/bench/finetune_torch.py" full --batch 16 --threads 2 --steps "$steps" --warmup 1) ;;
  esac
  local log
  log=$("${cmd[@]}" 2>&1) || { echo "$log" >&2; echo "train_run.sh: $engine $bench failed" >&2; exit 1; }
  echo "$log" | grep -v '^{' | sed "s/^/  [round $round] /"
  line=$(echo "$log" | grep '^{' | tail -1)
  echo "$line" | "$py" -c "
import json, sys
d = json.loads(sys.stdin.read())
d.update(round=$round, case='$bench', load=open('/proc/loadavg').read().split()[0])
print(json.dumps(d))" >> "$raw"
}

for r in $(seq 1 "$rounds"); do
  for b in $cases; do
    if [ $((r % 2)) -eq 1 ]; then run kennel $b $r; run pytorch $b $r
    else run pytorch $b $r; run kennel $b $r; fi
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

"$py" - "$raw" "$md" "$load_start" "$load_end" "$started" "$((SECONDS - t_start))" "$rounds" <<'EOF'
import json, statistics, sys
raw, md, load_start, load_end, started, secs, rounds = sys.argv[1:]
rows = [json.loads(l) for l in open(raw) if l.strip()]
def med(case, engine, key):
    v = [r[key] for r in rows if r["case"] == case and r["engine"] == engine]
    return statistics.median(v), v
cases = [("features", "resnet50 feature extraction, batch 32", "img_per_s", "img/s", 1.1),
         ("head", "head epoch, 6680 x 2048-d, batch 32, Adam", "seconds", "s", 3.0),
         ("finetune1", "resnet50 --finetune 1 step, batch 16, Adam", "img_per_s", "img/s", 1.1),
         ("full", "resnet50 full fine-tune step, batch 16, Adam", "img_per_s", "img/s", 1.1)]
out = ["# Training: kennel vs PyTorch", "",
       "%s, %s rounds (medians across rounds), 2 threads each; load average %s at the start, "
       "%s at the end (2 cores); %s s." % (started, rounds, load_start, load_end, secs), "",
       "Load average when each process finished is in train_latest.jsonl (`load`).", "",
       "| measurement | kennel | PyTorch | kennel / PyTorch | target | met |",
       "| --- | --- | --- | --- | --- | --- |"]
cases = [c for c in cases if any(r["case"] == c[0] for r in rows)]
for case, title, key, unit, target in cases:
    k, kv = med(case, "kennel", key)
    p, pv = med(case, "pytorch", key)
    ratio = p / k if unit == "s" else k / p
    fmt = "%.4f" if unit == "s" else "%.2f"
    out.append("| %s | %s %s | %s %s | %.2fx | >= %.1fx | %s |" % (
        title, fmt % k, unit, fmt % p, unit, ratio, target, "yes" if ratio >= target else "NO"))
out += ["", "Per round (kennel; PyTorch):", ""]
for case, title, key, unit, _ in cases:
    _, kv = med(case, "kennel", key)
    _, pv = med(case, "pytorch", key)
    loads = [r["load"] for r in rows if r["case"] == case]
    out.append("- %s: %s; %s (1-min load average after each process: %s)" % (
        case, ", ".join(str(x) for x in kv), ", ".join(str(x) for x in pv), ", ".join(loads)))
modes = sorted({"%s: %s" % (r["case"], r.get("format") or r.get("mode") or r.get("adam"))
                for r in rows if r["engine"] == "pytorch"})
out += ["", "PyTorch's faster mode per round: " + "; ".join(modes) + ".",
        "Ratios: kennel img/s / PyTorch img/s, or PyTorch seconds / kennel seconds for the head "
        "epoch (above 1 = kennel faster)."]
text = "\n".join(out) + "\n"
open(md, "w").write(text)
print()
print(text)
EOF
echo "results: $md"
