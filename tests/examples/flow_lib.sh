# Runs one of examples/reference_flow.{py,sh} against its own kennel server
# (a free loopback port, a temporary data directory, a known administrator
# key) on ../shared's pets-cats and MobileNet backbone, then checks what it
# printed. Sourced by test_reference_flow_*.sh with run_flow CMD...
set -u
src=${KN_SOURCE_DIR:?KN_SOURCE_DIR not set}
shared=${KN_SHARED:-$src/../shared}
data=$shared/data/pets-cats
backbone=$shared/data/models/mobilenet_v1_0.25_224.tflite
photo=$shared/data/images/cats_and_dogs.jpg
if [ ! -d "$data" ] || [ ! -f "$backbone" ] || [ ! -f "$photo" ]; then
  echo "skip: ../shared/data (pets-cats, the MobileNet backbone, images) is absent"
  exit 77
fi
if [ "${KN_SANITIZE:-0}" = 1 ]; then
  echo "skip: training jobs run under RLIMIT_DATA, where ASan cannot reserve its shadow memory"
  exit 77
fi
/usr/bin/python3 -c "import boto3" 2> /dev/null || {
  echo "skip: /usr/bin/python3 has no boto3 (python3-boto3)"
  exit 77
}
. "$(dirname "${BASH_SOURCE[0]}")/../kn_testlib.sh"
unset KENNEL_ENDPOINT
kn_client_env AKIDEXAMPLEFLOW kennel-examples-secret
export AWS_DEFAULT_REGION=us-east-1
export XDG_CACHE_HOME=$tmp/cache
kn_start_server
[ -n "$port" ] || { echo "the server did not start:"; cat "$tmp/server.err"; exit 1; }
mkdir -p "$tmp/out"
has() { grep -qE -- "$2" "$1"; }

# check_flow OUTPUT: the lines both flows print
check_flow() {
  local o=$1
  check "tuning completed" has "$o" '^status: Completed$'
  check "two trials" test "$(grep -c '^trial ' "$o")" -eq 2
  check "best job and its model" has "$o" '^best: dog-hpo-[0-9]+-[0-9a-f]+ file://.*/output/model\.tar\.gz$'
  check "endpoint in service" has "$o" '^endpoint: InService$'
  check "endpoint scores: one row of 12" /usr/bin/python3 -c "
import json, sys
l = [x for x in open(sys.argv[1]) if x.startswith('scores: ')][0]
s = json.loads(l[len('scores: '):]); assert len(s) == 1 and len(s[0]) == 12, s" "$o"
  check "scaling policy" has "$o" '^policy: arn:aws:autoscaling:'
  check "scalable target 1..3" has "$o" '^scalable target: 1\.+3$'
  check "concurrency" has "$o" '^reserved: 5 provisioned: READY'
  check "function answered 200" has "$o" '^statusCode: 200$'
  check "function body: one row of 12" /usr/bin/python3 -c "
import json, sys
l = [x for x in open(sys.argv[1]) if x.startswith('body: ')][0]
s = json.loads(l[len('body: '):]); assert len(s) == 1 and len(s[0]) == 12, s" "$o"
}

finish() {
  kill "$server_pid"
  wait "$server_pid"
  check "server exits cleanly" test $? -eq 0
  server_pid=
  if [ "$fail" -ne 0 ]; then
    echo "--- flow output"; cat "$tmp/flow.out"
    echo "--- server log (last 30 lines)"; tail -30 "$tmp/server.err"
  fi
  kn_done
}
