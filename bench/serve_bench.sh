#!/usr/bin/env bash
# bench/serve_bench.sh: kennel model-server under load from wrk — requests/s
# and p50/p99 latency of GET /ping (the HTTP floor) and of POST /invocations
# with one small JPEG per request, at 1 connection (latency) and at N
# connections (throughput, with dynamic batching), beside the server's own
# account from /metrics: mean forward-pass time, mean batch size, and the
# share of a request's p50 spent outside the network.
#
# The model is tiny so that the server's overhead is visible: ../shared's
# mobilenet_v1_0.25_224.tflite when present, else a random-weights
# mobilenet_v2 package made on the spot.
#
# Knobs (environment): KN_BIN (kennel binary; default build-bench/kennel,
# else build/kennel), DURATION (10s per run), CONNS (16), THREADS (2, compute
# threads of the server), MAX_BATCH (8), MAX_WAIT_US (1000), WRK_THREADS (2),
# IMAGE (the JPEG posted; default fuzz/corpus/img/baseline420.jpg).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
MAX_BATCH=${MAX_BATCH:-8}
MAX_WAIT_US=${MAX_WAIT_US:-1000}
WRK_THREADS=${WRK_THREADS:-2}
IMAGE=${IMAGE:-$root/fuzz/corpus/img/baseline420.jpg}
kennel=${KN_BIN:-}
if [ -z "$kennel" ]; then
  for b in "$root/build-bench/kennel" "$root/build/kennel"; do
    [ -x "$b" ] && kennel=$b && break
  done
fi
[ -n "$kennel" ] && [ -x "$kennel" ] || { echo "serve_bench: no kennel binary (set KN_BIN)" >&2; exit 1; }
command -v wrk > /dev/null || { echo "serve_bench: wrk is not installed (Debian: wrk)" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2> /dev/null && wait "$pid" 2> /dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

shared=$root/../shared/data/models
if [ -f "$shared/mobilenet_v1_0.25_224.tflite" ]; then
  model=$shared/mobilenet_v1_0.25_224.tflite
  model_args=(--model "$model" --labels "$shared/imagenet_labels.txt")
  model_name="mobilenet_v1_0.25_224 (tflite)"
else
  "$kennel" model package --arch mobilenet_v2 --init random --classes 10 --seed 1 \
    --out "$tmp/pkg" > /dev/null
  model_args=(--model "$tmp/pkg")
  model_name="mobilenet_v2 (random weights)"
fi

OMP_NUM_THREADS=$THREADS "$kennel" model-server "${model_args[@]}" --listen 127.0.0.1 --port 0 \
  --ready-file "$tmp/ready" --threads "$THREADS" --max-batch "$MAX_BATCH" \
  --max-wait-us "$MAX_WAIT_US" > /dev/null 2> "$tmp/server.log" &
pid=$!
for _ in $(seq 600); do
  [ -f "$tmp/ready" ] && break
  kill -0 "$pid" 2> /dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$tmp/ready" ] || { echo "serve_bench: the server did not start" >&2; exit 1; }
url=http://$(cat "$tmp/ready")
curl -sf "$url/ping" > /dev/null

# wrk's numbers in microseconds / per second; /metrics counters as raw sums
to_us() { # 1.23ms -> 1230
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : 1;
    printf "%.0f", n * f }'
}
scrape() { # prints: model_seconds_sum model_count batch_sum batch_count
  curl -sf "$url/metrics" | awk '
    $1 == "kennel_model_latency_seconds_sum" { a = $2 }
    $1 == "kennel_model_latency_seconds_count" { b = $2 }
    $1 == "kennel_batch_size_sum" { c = $2 }
    $1 == "kennel_batch_size_count" { d = $2 }
    END { print a + 0, b + 0, c + 0, d + 0 }'
}

cat > "$tmp/post.lua" << 'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
wrk.headers["Accept"] = "application/json"
local f = assert(io.open(os.getenv("KN_BENCH_IMAGE"), "rb"))
wrk.body = f:read("*a")
f:close()
EOF

rows=()
run() { # run NAME CONNECTIONS PATH [lua script]
  local name=$1 c=$2 path=$3 script=${4:-}
  local t=$WRK_THREADS
  [ "$c" -lt "$t" ] && t=$c
  local before after out
  before=$(scrape)
  if [ -n "$script" ]; then
    out=$(KN_BENCH_IMAGE=$IMAGE wrk -t "$t" -c "$c" -d "$DURATION" --latency -s "$script" "$url$path")
  else
    out=$(wrk -t "$t" -c "$c" -d "$DURATION" --latency "$url$path")
  fi
  after=$(scrape)
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<< "$out")
  p50=$(to_us "$(awk '$1 == "50%" { print $2 }' <<< "$out")")
  p99=$(to_us "$(awk '$1 == "99%" { print $2 }' <<< "$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<< "$out")
  read -r ms0 mc0 bs0 bc0 <<< "$before"
  read -r ms1 mc1 bs1 bc1 <<< "$after"
  local model_us batch outside
  model_us=$(awk -v s="$ms0" -v S="$ms1" -v c="$mc0" -v C="$mc1" \
    'BEGIN { printf (C > c) ? "%.0f" : "-", (S - s) / (C - c) * 1e6 }')
  batch=$(awk -v s="$bs0" -v S="$bs1" -v c="$bc0" -v C="$bc1" \
    'BEGIN { printf (C > c) ? "%.2f" : "-", (S - s) / (C - c) }')
  outside=$(awk -v p="$p50" -v m="$model_us" \
    'BEGIN { if (m == "-" || p == 0) print "-"; else printf "%.0f%%", (p - m) / p * 100 }')
  rows+=("| $name | $c | $rps | $p50 | $p99 | $model_us | $batch | $outside | ${non2xx:-0} |")
}

run "GET /ping" "$CONNS" /ping
run "POST /invocations" 1 /invocations "$tmp/post.lua"
run "POST /invocations" "$CONNS" /invocations "$tmp/post.lua"

echo
echo "kennel model-server, $model_name, $THREADS compute threads, max batch $MAX_BATCH," \
  "max wait ${MAX_WAIT_US} us, wrk $DURATION per row, image $(basename "$IMAGE")" \
  "($(stat -c %s "$IMAGE") bytes); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| request | connections | req/s | p50 us | p99 us | forward pass us (mean) | images per pass | p50 outside the network | non-2xx |"
echo "| --- | --: | --: | --: | --: | --: | --: | --: | --: |"
printf '%s\n' "${rows[@]}"
