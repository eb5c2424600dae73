#!/usr/bin/env bash
# kennel demo (what `make demo` runs) end to end, both ways: as on a bare
# clone (the executable copied where no ../shared is found, --download with
# the network unreachable: it must say so and fall back to the synthetic data
# set and random weights, labelled as such) and, when ../shared is present,
# on pets-cats with the MobileNet backbone. Each run must exit 0, print every
# step's result line, scale dog-ep out under the load and remove its
# temporary directory. Then the first-run mistakes: a busy --port, a --keep
# directory that is not writable, a data set with one class; each must fail
# with exit 2 and a message that says what to do.
set -u
kennel=${KN_BIN:?KN_BIN not set}
shared=${KN_SHARED:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
check() { # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}
has() { grep -qE -- "$2" "$1"; }
count() { grep -cE -- "$2" "$1"; }

common_checks() { # common_checks LABEL OUTPUT
  local l=$1 o=$2
  check "$l: two trials" test "$(count "$o" '^\[ *[0-9.]+ s\] trial dog-hpo-[0-9]+-[0-9a-f]+: learning_rate [0-9.e-]+, batch_size (32|64|128|256|512) -> Test Loss [0-9.]+$')" -eq 2
  check "$l: best job" has "$o" '\] best: dog-hpo-'
  check "$l: retrained" has "$o" '\] dog-best Completed: Test Loss [0-9.]+, Test Accuracy [0-9.]+'
  check "$l: endpoint" has "$o" '\] dog-ep InService'
  check "$l: autoscaling" has "$o" '1\.\.3 instances, .*cooldowns in 300 s / out 30 s'
  check "$l: lint clean" has "$o" 'kennel iam lint: no findings'
  check "$l: role" has "$o" 'created arn:aws:iam::[0-9]+:role/dog-fn-role'
  if [ -x "$fn" ]; then
    check "$l: provisioned READY" has "$o" 'provisioned concurrency on live: READY'
    check "$l: function answered" has "$o" 'photo .* -> statusCode 200; top 5:'
    check "$l: burst throttled with the reason" \
      has "$o" '\] [0-9]+ answered, [1-9][0-9]* throttled \(TooManyRequestsException, Reason ReservedFunctionConcurrentInvocationLimitExceeded\)'
  else
    check "$l: functions step said what happened" \
      has "$o" '(functions are not available in this build|dog-breed function is not built)'
  fi
  check "$l: clock said" has "$o" 'runs 10x faster'
  check "$l: console url" has "$o" 'console: http://127\.0\.0\.1:[0-9]+/console/'
  check "$l: top 5" has "$o" '^\[ *[0-9.]+ s\]   1\. '
  check "$l: response body" has "$o" '^response: '
  check "$l: scaled out" has "$o" 'scaling: Successful Setting desired instance count to [23]'
  check "$l: latency" has "$o" 'p50 [0-9.]+ ms, p99 [0-9.]+ ms over [0-9]+ invocations'
  check "$l: cost" has "$o" 'cost: [0-9]+ instance-minutes of ml\.m5\.large at \$'
  check "$l: done" has "$o" '^kennel demo done in [0-9.]+ s$'
}

# Training jobs run under RLIMIT_DATA (src/jobs/training.c), where ASan
# cannot reserve its shadow memory: in a sanitizer build every trial would
# die at start, so the end-to-end runs are the optimised build's.
if [ "${KN_SANITIZE:-0}" = 1 ]; then
  echo "SKIP part: the end-to-end runs (training jobs cannot start under ASan's shadow memory with RLIMIT_DATA)"
else
# --- as on a bare clone, with --download and no network
fn=$(dirname "$kennel")/functions/dog-breed/bootstrap
mkdir -p "$tmp/bare/a/b/bin" "$tmp/t1"
cp "$kennel" "$tmp/bare/a/b/bin/kennel"
if [ -x "$fn" ]; then
  mkdir -p "$tmp/bare/a/b/bin/functions/dog-breed"
  cp "$fn" "$tmp/bare/a/b/bin/functions/dog-breed/"
fi
(cd "$tmp/bare/a/b" && TMPDIR="$tmp/t1" https_proxy=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 \
  ./bin/kennel demo --download --load-seconds 25) > "$tmp/bare.out" 2>&1
check "bare: exit 0" test $? -eq 0
check "bare: no network said in one line" has "$tmp/bare.out" '^--download: no network .* falling back'
check "bare: synthetic said" has "$tmp/bare.out" 'data: SYNTHETIC data .* RANDOM-WEIGHT backbone'
common_checks bare "$tmp/bare.out"
check "bare: temporary directory removed" test -z "$(ls -A "$tmp/t1")"

# --- with ../shared
if [ -n "$shared" ] && [ -d "$shared/data/pets-cats" ] && [ -f "$shared/data/models/mobilenet_v1_0.25_224.tflite" ]; then
  mkdir -p "$tmp/t2"
  TMPDIR="$tmp/t2" "$kennel" demo > "$tmp/shared.out" 2>&1
  check "shared: exit 0" test $? -eq 0
  check "shared: pets-cats said" has "$tmp/shared.out" 'data: .*pets-cats \(12 cat breeds'
  common_checks shared "$tmp/shared.out"
  check "shared: five classes named" test "$(count "$tmp/shared.out" '^\[ *[0-9.]+ s\]   [1-5]\. [A-Z][A-Za-z_]+ +-?[0-9.]+$')" -eq 5
  check "shared: 12 scores" /usr/bin/python3 -c "
import json, sys
rows = [l for l in open(sys.argv[1]) if l.startswith('response: ')]
body = json.loads(rows[0][len('response: '):])
if isinstance(body, dict): body = json.loads(body['body'])
assert len(body[0]) == 12, body" "$tmp/shared.out"
  check "shared: temporary directory removed" test -z "$(ls -A "$tmp/t2")"
else
  echo "SKIP part: ../shared/data/pets-cats or the MobileNet backbone is absent"
fi

fi

# --- first-run mistakes
/usr/bin/python3 -c "
import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
open(sys.argv[1], 'w').write(str(s.getsockname()[1])); time.sleep(30)" "$tmp/port" &
holder=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
"$kennel" demo --port "$(cat "$tmp/port")" > "$tmp/busy.out" 2>&1
check "busy port: exit 2" test $? -eq 2
check "busy port: says --port" has "$tmp/busy.out" "port $(cat "$tmp/port") on 127.0.0.1 is busy: pick another with --port"
kill "$holder" 2> /dev/null
wait "$holder" 2> /dev/null

mkdir -p "$tmp/one/Beagle"
printf 'not really a photo' > "$tmp/one/Beagle/x.jpg"
"$kennel" demo --data "$tmp/one" > "$tmp/one.out" 2>&1
check "one class: exit 2" test $? -eq 2
check "one class: says what to do" has "$tmp/one.out" "has 1 class \(Beagle\): a classifier needs at least two; give it one directory of images per class"

if [ "$(id -u)" != 0 ]; then
  mkdir -p "$tmp/ro"
  chmod 500 "$tmp/ro"
  "$kennel" demo --keep "$tmp/ro" > "$tmp/ro.out" 2>&1
  check "read-only --keep: exit 2" test $? -eq 2
  check "read-only --keep: says what to do" has "$tmp/ro.out" "is not writable: chmod u\+w it or give another directory"
  chmod 700 "$tmp/ro"
  "$kennel" demo --keep / > "$tmp/root.out" 2>&1
  check "--keep owned by root: exit 2" test $? -eq 2
  check "--keep owned by root: says whose" has "$tmp/root.out" "is owned by uid 0, not you"
else
  # as root, permissions do not stop writes: check the owner instead
  mkdir -p "$tmp/theirs"
  chown 65534 "$tmp/theirs"
  "$kennel" demo --keep "$tmp/theirs" > "$tmp/root.out" 2>&1
  check "--keep owned by another user: exit 2" test $? -eq 2
  check "--keep owned by another user: says whose" has "$tmp/root.out" "is owned by uid 65534, not you \(uid 0\): give a directory of your own"
fi

if [ "$fail" -ne 0 ]; then
  for f in bare shared busy one ro root; do
    [ -f "$tmp/$f.out" ] && { echo "--- $f output"; cat "$tmp/$f.out"; }
  done
fi
echo "$pass passed, $fail failed"
test "$fail" -eq 0
