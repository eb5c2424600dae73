#!/usr/bin/env bash
# bench/run.sh: kennel's CNN inference against PyTorch and ONNX Runtime, side
# by side, in one run on this machine. See bench/README.md.
#
# Sets up what is missing (kennel Release build in build-bench, the pinned
# onnxruntime-node in bench/node_modules, the ONNX/safetensors exports in
# bench/results), measures the sgemm peak, then runs every engine x model x
# batch in its own process, in interleaved rounds (each round runs the three
# engines back to back per cell, starting with a different engine each
# round), and hands the per-process JSON to report.py for the closing table
# (bench/results/latest.md and latest.json).
#
# Knobs (environment): ROUNDS (3), MODELS ("resnet50 mobilenet_v2"),
# BATCHES ("1 8 32"), THREADS (2), ENGINES ("kennel onnxruntime pytorch"),
# KN_BACKEND (dnnl), KN_WEIGHTS (file: the references' weights; init: kennel's
# seeded init), TORCH_MODE (ofi | freeze | eager), BUILD_DIR (build-bench),
# KN_BENCH (path of a prebuilt kn_bench: skips the build, e.g. to time another
# checkout).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
res=$here/results
build=${BUILD_DIR:-$root/build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
ROUNDS=${ROUNDS:-3}
MODELS=${MODELS:-"resnet50 mobilenet_v2"}
BATCHES=${BATCHES:-"1 8 32"}
THREADS=${THREADS:-2}
ENGINES=${ENGINES:-"kennel onnxruntime pytorch"}
KN_BACKEND=${KN_BACKEND:-dnnl}
KN_WEIGHTS=${KN_WEIGHTS:-file}
TORCH_MODE=${TORCH_MODE:-ofi}
PY=/usr/bin/python3 # Debian's python3-torch lives here, not in pyenv's python
start=$(date +%s)
notes=()

say() { printf 'run.sh: %s\n' "$*"; }

# Warm-up and timed runs per process, by batch size. Batch 1 needs >= 20
# timed runs for a meaningful p90; big batches take ~1 s per run for resnet50.
warmup_for() { case $1 in 1) echo 10 ;; 8) echo 2 ;; *) echo 1 ;; esac; }
iters_for() { case $1 in 1) echo 30 ;; 8) echo 8 ;; *) echo 5 ;; esac; }

# ---- environment -------------------------------------------------------------
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set on this machine for old
# OpenBLAS builds; they pick slower kernels. They are unset for every process
# this benchmark starts (only this command: tests and CI keep them), and the
# output says so. OMP_NUM_THREADS pins every OpenMP pool to THREADS.
ob_note="OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>} in the caller's environment; both unset for every benchmark process"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OMP_NUM_THREADS=$THREADS
say "$ob_note"
notes+=("$ob_note; OMP_NUM_THREADS=$THREADS")
notes+=("load average at start: $(cut -d' ' -f1-3 /proc/loadavg)")

mkdir -p "$res"

# ---- kennel ------------------------------------------------------------------
kn=""
kn_label=""
kennel_failed=0
if [[ " $ENGINES " == *" kennel "* && -n ${KN_BENCH:-} ]]; then
    kn=$(realpath "$KN_BENCH")
    say "using prebuilt $kn (KN_BENCH); not building"
    notes+=("kennel binary: $kn (prebuilt, KN_BENCH)")
    kn_label="kennel (prebuilt)"
elif [[ " $ENGINES " == *" kennel "* ]]; then
    say "building kennel (Release) in $build"
    if cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$res/build.log" 2>&1 &&
        cmake --build "$build" -j2 --target kn_bench >>"$res/build.log" 2>&1; then
        kn=$build/bench/kn_bench
    else
        say "kennel build FAILED (tail of $res/build.log below); continuing with the references"
        tail -n 15 "$res/build.log" | sed 's/^/  | /'
        notes+=("kennel build failed: no kennel numbers in this run")
        ENGINES=${ENGINES//kennel/}
        kennel_failed=1
    fi
fi

# ---- ONNX Runtime ------------------------------------------------------------
if [[ " $ENGINES " == *" onnxruntime "* ]]; then
    want=$(sed -n 's/.*"onnxruntime-node": *"\([^"]*\)".*/\1/p' "$here/package.json")
    have=$(node -p "require('$here/node_modules/onnxruntime-node/package.json').version" 2>/dev/null || true)
    if [[ "$have" != "$want" ]]; then
        say "installing onnxruntime-node $want into bench/node_modules (npm install --ignore-scripts)"
        # --ignore-scripts: the CPU library ships inside the package; the
        # postinstall script only fetches GPU providers.
        (cd "$here" && npm install --ignore-scripts --no-audit --no-fund)
    fi
fi

# ---- model exports -------------------------------------------------------------
for arch in $MODELS; do
    if [[ ! -s "$res/$arch.onnx" || ! -s "$res/$arch.safetensors" ]]; then
        say "exporting $arch (ONNX + safetensors) from torchvision"
        "$PY" "$here/export_onnx.py" --outdir "$res" --arch "$arch"
    fi
done

# ---- sgemm peak ------------------------------------------------------------------
sg=$res/sgemm_peak
if [[ ! -x "$sg" || "$here/sgemm_peak.c" -nt "$sg" ]]; then
    cc -O2 -std=c17 -D_GNU_SOURCE "$here/sgemm_peak.c" -o "$sg" -ldl -lm
fi
rm -rf "$res/runs" "$res"/sgemm_*.json
mkdir -p "$res/runs"
say "sgemm peak (OpenBLAS and oneDNN via dlopen, $THREADS threads)"
for eng in openblas dnnl; do
    "$sg" --engine $eng --threads "$THREADS" >"$res/sgemm_${eng}_start.json" ||
        say "sgemm_peak --engine $eng failed (exit $?)"
    cat "$res/sgemm_${eng}_start.json"
done

# ---- timed runs ------------------------------------------------------------------
read -r -a engines <<<"$ENGINES"
n_eng=${#engines[@]}
(( n_eng > 0 )) || { say "no engine to run"; exit 1; }

run_cell() { # engine arch batch round
    local e=$1 arch=$2 b=$3 r=$4
    local w i out err cmd t0
    w=$(warmup_for "$b")
    i=$(iters_for "$b")
    out=$res/runs/r${r}_${e}_${arch}_b${b}.json
    err=${out%.json}.err
    case $e in
    kennel)
        cmd=("$kn" --arch "$arch" --batch "$b" --threads "$THREADS" --warmup "$w"
            --iters "$i" --backend "$KN_BACKEND")
        [[ $KN_WEIGHTS == file ]] && cmd+=(--weights "$res/$arch.safetensors")
        ;;
    onnxruntime)
        cmd=(node "$here/ref_ort.js" --model "$res/$arch.onnx" --arch "$arch" --batch "$b"
            --threads "$THREADS" --warmup "$w" --iters "$i")
        ;;
    pytorch)
        cmd=("$PY" "$here/ref_torch.py" --arch "$arch" --batch "$b" --threads "$THREADS"
            --warmup "$w" --iters "$i" --mode "$TORCH_MODE")
        ;;
    esac
    t0=$(date +%s.%N)
    if (cd "$here" && timeout 600 "${cmd[@]}") >"$out" 2>"$err"; then
        local m hwm
        m=$(sed -n 's/.*"median_ms": *\([0-9.]*\).*/\1/p' "$out")
        hwm=$(sed -n 's/.*"vmhwm_kb": *\([0-9]*\).*/\1/p' "$out")
        awk -v r="$r" -v e="$e" -v a="$arch" -v b="$b" -v m="$m" -v h="$hwm" \
            -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN {
            printf "  r%s %-12s %-13s b%-3s median %8.2f ms %7.1f img/s  peak RSS %5d MB  (%.0f s)\n",
                   r, e, a, b, m, b * 1000 / m, h / 1024, t1 - t0 }'
    else
        printf '  r%s %-13s %-12s b%-3s FAILED: %s\n' "$r" "$e" "$arch" "$b" \
            "$(tail -n 1 "$err")"
    fi
}

say "timing: ${ROUNDS} rounds x models [$MODELS] x batches [$BATCHES] x engines [${engines[*]}]"
for ((r = 1; r <= ROUNDS; r++)); do
    for arch in $MODELS; do
        for b in $BATCHES; do
            for ((k = 0; k < n_eng; k++)); do
                run_cell "${engines[$(((k + r - 1) % n_eng))]}" "$arch" "$b" "$r"
            done
        done
    done
done

for eng in openblas dnnl; do
    "$sg" --engine $eng --threads "$THREADS" >"$res/sgemm_${eng}_end.json" ||
        say "sgemm_peak --engine $eng failed (exit $?)"
done
notes+=("load average at end: $(cut -d' ' -f1-3 /proc/loadavg)")
for eng in openblas dnnl; do
    notes+=("sgemm peak, $eng, at start/end: $(sed -n 's/.*"peak_gflops":\([0-9.]*\).*/\1/p' "$res"/sgemm_${eng}_start.json "$res"/sgemm_${eng}_end.json | paste -sd/) GFLOP/s")
done
notes+=("the floor uses the best sgemm peak of the run; both libraries loaded with dlopen by bench/sgemm_peak.c (cc -O2, not via CMake)")
[[ -n $kn ]] && notes+=("kennel: backend $KN_BACKEND, weights $KN_WEIGHTS")

echo
report_args=(--results "$res" --root "$root" --models "$MODELS" --batches "$BATCHES"
    --threads "$THREADS" --elapsed-s "$(($(date +%s) - start))")
[[ -n $kn_label ]] && report_args+=(--kennel-label "$kn_label")
for n in "${notes[@]}"; do report_args+=(--note "$n"); done
rc=0
"$PY" "$here/report.py" "${report_args[@]}" || rc=$?
echo
say "wrote $res/latest.md and $res/latest.json"
if ((kennel_failed)); then
    say "kennel was requested but did not build: exit 3"
    exit 3
fi
exit $rc
