#!/usr/bin/env bash
# bench/all.sh: every bench of bench/ in one command, then one numbers table.
#
#   bench/all.sh                      every bench, in sequence (about an hour on 2 cores)
#   bench/all.sh --only router,auth   a subset; the other areas keep their rows
#                                     from the previous summary (bench/results/summary.json)
#
# Areas and the bench each one runs (its whole output goes to
# bench/results/<area>.log; a bench that fails is reported and the next one runs):
#   auth       build/bench/auth_bench       authorization cost per request
#   functions  bench/fn_bench.sh            cold start, warm overhead, invokes/s
#   router     bench/router_bench.sh        invoke through the daemon vs direct
#   memory     bench/weights_share.sh       1 vs 3 instances, PSS
#   serve      bench/serve_bench.sh         model server under wrk
#   engine     bench/run.sh                 inference vs ONNX Runtime and PyTorch
#   training   bench/train_run.sh           training vs PyTorch
#   tuning     bench/tune_bench.sh          tuning job vs PyTorch (hpo.py logic)
# then bench/summary.py writes bench/results/summary.{md,json} and the block
# between <!-- bench:begin --> and <!-- bench:end --> in README.md.
#
# Knobs (environment) pass through to every bench: ROUNDS, DURATION, TRIALS,
# REPS, EPOCHS, MODELS, BATCHES, CASES, HEAD_EPOCHS, STEPS, SKIP_RESNET, ...
# (see each script); a knob one bench does not read is ignored by it, and
# any that is set marks that area's rows as a reduced run in the table.
# Own knobs: BENCH_BUILD (build-bench: the Release build that run.sh also
# uses; kennel, auth_bench and fn_bench come from it), KN_BIN (default
# $BENCH_BUILD/kennel), AUTH_ITERS (auth_bench --iters), FN_ARGS (extra
# fn_bench arguments, e.g. "--cold 10 --seconds 2").
# Exit status: 0 when every bench ran (or skipped itself, status 77), 1 otherwise.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
all_areas="auth functions router memory serve engine training tuning"
only=""
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=${2:-}; shift 2 || { echo "all.sh: --only needs a list, e.g. --only router,auth" >&2; exit 2; } ;;
    --only=*) only=${1#--only=}; shift ;;
    -h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "all.sh: unknown argument '$1' (bench/all.sh [--only area,area...])" >&2; exit 2 ;;
  esac
done
areas=$all_areas
if [ -n "$only" ]; then
  areas=""
  for a in ${only//,/ }; do
    case " $all_areas " in
      *" $a "*) areas="$areas $a" ;;
      *) echo "all.sh: --only: unknown area '$a' (one of: $all_areas)" >&2; exit 2 ;;
    esac
  done
fi

res=$here/results
mkdir -p "$res"
build=${BENCH_BUILD:-$root/build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
export KN_BIN=${KN_BIN:-$build/kennel}
load() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(load)
echo "bench/all.sh: areas:$areas; load average $load_start; commit $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo '?')"

echo "== build: $build (Release unless already configured), log $res/build-all.log"
t=$SECONDS
if { [ -f "$build/CMakeCache.txt" ] || cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release; } \
  > "$res/build-all.log" 2>&1 && cmake --build "$build" -j2 >> "$res/build-all.log" 2>&1; then
  echo "   built in $((SECONDS - t)) s"
else
  echo "   BUILD FAILED after $((SECONDS - t)) s (last lines below); the benches that need it will fail"
  tail -5 "$res/build-all.log" | sed 's/^/   | /'
fi

step() { # area command...
  case $1 in
    auth) "$build/bench/auth_bench" ${AUTH_ITERS:+--iters "$AUTH_ITERS"} ;;
    functions) # FN_ARGS is a list of arguments
      # shellcheck disable=SC2086
      "$here/fn_bench.sh" "$build" ${FN_ARGS:-} ;;
    router) "$here/router_bench.sh" ;;
    memory) "$here/weights_share.sh" ;;
    serve) "$here/serve_bench.sh" ;;
    engine) # run.sh builds kn_bench in Release; a build of another type is used as it is
      if [ -z "${KN_BENCH:-}" ] && ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$build/CMakeCache.txt" 2> /dev/null; then
        KN_BENCH=$build/bench/kn_bench BUILD_DIR=$build "$here/run.sh"
      else
        BUILD_DIR=$build "$here/run.sh"
      fi ;;
    training) "$here/train_run.sh" ;;
    tuning) "$here/tune_bench.sh" "$build" ;;
  esac
}

ran=() failed=""
n=0 total=$(wc -w <<< "$areas")
for a in $areas; do
  n=$((n + 1))
  log=$res/$a.log
  echo "== [$n/$total] $a (log $log)"
  load > "$res/$a.load"
  t=$SECONDS
  (cd "$root" && step "$a") > "$log" 2>&1 < /dev/null
  rc=$?
  load >> "$res/$a.load"
  case $rc in
    0) echo "   ok in $((SECONDS - t)) s" ;;
    77) echo "   skipped itself: $(grep -m1 -i skip "$log" || tail -1 "$log")" ;;
    *) echo "   FAILED with exit status $rc after $((SECONDS - t)) s; going on. Last lines:"
       tail -5 "$log" | sed 's/^/   | /'
       failed="$failed $a" ;;
  esac
  ran+=(--ran "$a=$rc")
done

echo "== summary: bench/summary.py"
/usr/bin/python3 "$here/summary.py" --results "$res" --load-start "$load_start" --load-end "$(load)" "${ran[@]}" \
  > "$res/summary.log" 2>&1
src=$?
cat "$res/summary.log"
[ $src -eq 0 ] || failed="$failed summary"
if [ -n "$failed" ]; then
  echo "bench/all.sh: failed:$failed (logs in $res)"
  exit 1
fi
echo "bench/all.sh: done; table in $res/summary.md and README.md"
