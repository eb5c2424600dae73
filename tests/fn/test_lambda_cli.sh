#!/usr/bin/env bash
# Lambda functions on a kennel server, driven by the real AWS CLI v2
# (/usr/bin/aws) on a free loopback port, in a fresh data dir:
#  - `kennel function package` zips the C test function (kn_runtime);
#    create-function, get-function, list-functions, publish-version,
#    create-alias live, put-function-concurrency 5,
#    put-provisioned-concurrency-config 2 on live, polled until READY;
#  - invoke of live runs on a provisioned environment
#    (AWS_LAMBDA_INITIALIZATION_TYPE), with a Tail log holding START, END and
#    REPORT without Init Duration; a $LATEST invoke has Init Duration; the
#    environment holds temporary credentials (ASIA...) of the execution
#    role made with `aws iam create-role` (a role Lambda cannot assume is
#    refused at create-function);
#  - validation messages: provisioned on $LATEST, reserved below the
#    provisioned total, unreserved below 100, provisioned 0;
#  - faults, each followed by a working invoke: timeout (Sandbox.Timedout,
#    "Task timed out after 1.00 seconds"), crash (Runtime.ExitError),
#    oversized response (Function.ResponseSizeTooLarge), a handler error,
#    bad JSON event (InvalidRequestContentException), unknown function
#    (ResourceNotFoundException), bootstrap missing and not executable
#    (Runtime.InvalidEntrypoint), a failed init (Runtime.InitError);
#  - Event (202, run from the durable queue: its log line appears) and
#    DryRun (204); get-account-settings; delete-function.
set -u
kennel=${KN_BIN:?KN_BIN not set}
build=${KN_BUILD_DIR:?KN_BUILD_DIR not set}
aws=/usr/bin/aws
if [ ! -x "$aws" ]; then
  echo "skip: /usr/bin/aws (Debian awscli) is not installed"
  exit 77
fi
testfn=$build/functions/testfn/bootstrap
[ -x "$testfn" ] || { echo "FAIL: $testfn not built"; exit 1; }
tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
pass=0
fail=0
check() { # check NAME COMMAND...
  local name=$1
  shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}
field() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }
b64log() { /usr/bin/python3 -c "import json,sys,base64; print(base64.b64decode(json.load(open(sys.argv[1]))['LogResult']).decode())" "$1"; }

export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
export KENNEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID KENNEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER= AWS_MAX_ATTEMPTS=1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

mkdir -p "$tmp/fn" && cp "$testfn" "$tmp/fn/bootstrap"
check "package" "$kennel" function package "$tmp/fn" --out "$tmp/fn.zip"
mkdir -p "$tmp/nobs" && echo hi > "$tmp/nobs/readme.txt"
"$kennel" function package "$tmp/nobs" --out "$tmp/nobs.zip" > /dev/null 2>&1
mkdir -p "$tmp/noexec" && printf '#!/bin/sh\necho hi\n' > "$tmp/noexec/bootstrap" && chmod 644 "$tmp/noexec/bootstrap"
"$kennel" function package "$tmp/noexec" --out "$tmp/noexec.zip" > /dev/null 2>&1

"$kennel" server --data-dir "$tmp/data" --port 0 --ready-file "$tmp/ready" --function-idle-ms 1500 \
  > "$tmp/server.out" 2>> "$tmp/server.err" &
server_pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
port=$(cut -d: -f2 "$tmp/ready")
check "server ready" test -n "$port"
A=("$aws" --endpoint-url "http://127.0.0.1:$port" --region us-east-1 --output json)
L=("${A[@]}" lambda)
trust='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
"${A[@]}" iam create-role --role-name dog-role --assume-role-policy-document "$trust" > "$tmp/role.json"
role=$(field "$tmp/role.json" "d['Role']['Arn']")
check "execution role" test -n "$role"
"${L[@]}" create-function --function-name no-role --runtime provided.al2023 \
  --role "${role%dog-role}missing-role" --handler bootstrap --zip-file "fileb://$tmp/fn.zip" > /dev/null 2> "$tmp/e"
check "a role Lambda cannot assume is refused" grep -q "cannot be assumed by Lambda" "$tmp/e"

"${L[@]}" create-function --function-name dog-fn --runtime provided.al2023 --role "$role" \
  --handler bootstrap --timeout 1 --zip-file "fileb://$tmp/fn.zip" > "$tmp/c.json"
check "create-function" test "$(field "$tmp/c.json" "d['FunctionArn']")" = \
  "arn:aws:lambda:us-east-1:123456789012:function:dog-fn"
"${L[@]}" create-function --function-name dog-fn --runtime provided.al2023 --role "$role" \
  --handler bootstrap --zip-file "fileb://$tmp/fn.zip" > /dev/null 2> "$tmp/e"
check "duplicate create: ResourceConflictException" grep -q ResourceConflictException "$tmp/e"
"${L[@]}" get-function --function-name dog-fn > "$tmp/g.json"
check "get-function" test "$(field "$tmp/g.json" "d['Configuration']['Timeout']")" = 1
"${L[@]}" list-functions > "$tmp/l.json"
check "list-functions" test "$(field "$tmp/l.json" "[f['FunctionName'] for f in d['Functions']]")" = "['dog-fn']"
"${L[@]}" publish-version --function-name dog-fn > "$tmp/v.json"
check "publish-version 1" test "$(field "$tmp/v.json" "d['Version']")" = 1
"${L[@]}" create-alias --function-name dog-fn --name live --function-version 1 > "$tmp/a.json"
check "create-alias live" test "$(field "$tmp/a.json" "d['AliasArn']")" = \
  "arn:aws:lambda:us-east-1:123456789012:function:dog-fn:live"

# validation messages of the reference
"${L[@]}" put-provisioned-concurrency-config --function-name dog-fn --qualifier '$LATEST' \
  --provisioned-concurrent-executions 1 > /dev/null 2> "$tmp/e"
check "provisioned on \$LATEST" grep -q "cannot be applied to unpublished function versions" "$tmp/e"
"${L[@]}" put-function-concurrency --function-name dog-fn --reserved-concurrent-executions 950 \
  > /dev/null 2> "$tmp/e"
check "unreserved below 100" grep -q "below its minimum value of \[100\]" "$tmp/e"
"${L[@]}" put-function-concurrency --function-name dog-fn --reserved-concurrent-executions 5 > "$tmp/r.json"
check "reserved 5" test "$(field "$tmp/r.json" "d['ReservedConcurrentExecutions']")" = 5
"${L[@]}" put-provisioned-concurrency-config --function-name dog-fn --qualifier live \
  --provisioned-concurrent-executions 6 > /dev/null 2> "$tmp/e"
check "provisioned above reserved" grep -q "should not be greater than the reservedConcurrentExecution" "$tmp/e"
"${L[@]}" put-provisioned-concurrency-config --function-name dog-fn --qualifier live \
  --provisioned-concurrent-executions 2 > "$tmp/p.json"
check "provisioned 2 accepted" grep -q '"Status": "\(IN_PROGRESS\|READY\)"' "$tmp/p.json"
ready=
for _ in $(seq 1 200); do
  "${L[@]}" get-provisioned-concurrency-config --function-name dog-fn --qualifier live > "$tmp/p.json"
  [ "$(field "$tmp/p.json" "d['Status']")" = READY ] && { ready=1; break; }
  sleep 0.05
done
check "provisioned READY" test -n "$ready"
"${L[@]}" put-function-concurrency --function-name dog-fn --reserved-concurrent-executions 1 \
  > /dev/null 2> "$tmp/e"
check "reserved below provisioned" grep -q "lower than function's total provisioned concurrency \[2\]" "$tmp/e"
"${L[@]}" get-function-concurrency --function-name dog-fn > "$tmp/r.json"
check "get-function-concurrency" test "$(field "$tmp/r.json" "d['ReservedConcurrentExecutions']")" = 5

invoke() { # invoke OUT PAYLOAD [args...]
  local out=$1 payload=$2
  shift 2
  "${L[@]}" invoke --cli-binary-format raw-in-base64-out --payload "$payload" "$@" "$out" > "$out.meta" 2> "$out.err"
}
invoke "$tmp/o1" '{"hello":"live"}' --function-name dog-fn:live --log-type Tail
check "invoke live" grep -q '"init":"provisioned-concurrency"' "$tmp/o1"
check "execution role: temporary credentials" grep -q '"akid":"ASIA"' "$tmp/o1"
check "invoke live: version 1" test "$(field "$tmp/o1.meta" "d['ExecutedVersion']")" = 1
b64log "$tmp/o1.meta" > "$tmp/o1.log"
check "tail: START/END/REPORT" bash -c "grep -q '^START RequestId: .* Version: 1' '$tmp/o1.log' && grep -q '^END RequestId' '$tmp/o1.log' && grep -q '^REPORT RequestId: .*Duration: .* ms' '$tmp/o1.log'"
check "REPORT: memory size and a peak of at least 1 MB" grep -q 'Memory Size: 128 MB.Max Memory Used: [1-9][0-9]* MB' "$tmp/o1.log"
check "provisioned: no Init Duration" bash -c "! grep -q 'Init Duration' '$tmp/o1.log'"
invoke "$tmp/o2" '{"log":1}' --function-name dog-fn --log-type Tail
b64log "$tmp/o2.meta" > "$tmp/o2.log"
check "\$LATEST cold: Init Duration" grep -q 'Init Duration: ' "$tmp/o2.log"
check "\$LATEST: function's own log line in the tail" grep -q '^testfn: request ' "$tmp/o2.log"
check "\$LATEST on demand" grep -q '"init":"on-demand"' "$tmp/o2"

ok_after() { # ok_after NAME: the next invoke still works
  invoke "$tmp/ok" '{"n":1}' --function-name dog-fn
  check "$1, then a working invoke" grep -q '"event":{"n":1}' "$tmp/ok"
}
invoke "$tmp/t" '{"sleep_ms":3000}' --function-name dog-fn
check "timeout: Unhandled" test "$(field "$tmp/t.meta" "d.get('FunctionError')")" = Unhandled
check "timeout: Sandbox.Timedout" grep -q '"errorType":"Sandbox.Timedout"' "$tmp/t"
check "timeout: message" grep -q 'Task timed out after 1.00 seconds' "$tmp/t"
ok_after "timeout"
invoke "$tmp/x" '{"crash":1}' --function-name dog-fn
check "crash: Runtime.ExitError" grep -q '"errorType":"Runtime.ExitError"' "$tmp/x"
check "crash: exit status" grep -q 'exit status 3' "$tmp/x"
ok_after "crash"
invoke "$tmp/b" '{"big":6300000}' --function-name dog-fn
check "oversized: Function.ResponseSizeTooLarge" grep -q '"errorType":"Function.ResponseSizeTooLarge"' "$tmp/b"
check "oversized: message" grep -q 'maximum allowed payload size (6291556 bytes)' "$tmp/b"
ok_after "oversized response"
invoke "$tmp/f" '{"fail":1}' --function-name dog-fn
check "handler error: Unhandled" test "$(field "$tmp/f.meta" "d.get('FunctionError')")" = Unhandled
check "handler error: its document" grep -q '"errorMessage":"failed as asked"' "$tmp/f"
ok_after "handler error"
if [ "${KN_SANITIZE:-0}" != 1 ]; then # AddressSanitizer's shadow memory rules the limit out
  invoke "$tmp/m" '{"alloc_mb":400}' --function-name dog-fn
  check "MemorySize enforced: Runtime.OutOfMemory" grep -q '"errorType":"Runtime.OutOfMemory"' "$tmp/m"
  invoke "$tmp/m2" '{"alloc_mb":32}' --function-name dog-fn
  check "within MemorySize" grep -q '"event":{"alloc_mb":32}' "$tmp/m2"
  ok_after "memory limit"
fi
invoke "$tmp/j" '{not json' --function-name dog-fn
check "bad JSON: InvalidRequestContentException" grep -q InvalidRequestContentException "$tmp/j.err"
ok_after "bad JSON"
invoke "$tmp/u" '{}' --function-name nope
check "unknown function: ResourceNotFoundException" grep -q "ResourceNotFoundException.*Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope" "$tmp/u.err"
invoke "$tmp/u" '{}' --function-name dog-fn:nope
check "unknown alias: ResourceNotFoundException" grep -q "ResourceNotFoundException" "$tmp/u.err"
ok_after "unknown function"
python3 - "$tmp/big.json" <<'EOF'
import sys
open(sys.argv[1], "w").write('{"x":"' + "y" * (6 * 1024 * 1024 + 10) + '"}')
EOF
"${L[@]}" invoke --function-name dog-fn --payload "fileb://$tmp/big.json" "$tmp/big.out" > /dev/null 2> "$tmp/big.err"
check "request over 6 MB: 413" grep -q "RequestEntityTooLargeException\|RequestTooLargeException\|413" "$tmp/big.err"
ok_after "request over 6 MB"

for kind in nobs noexec; do
  "${L[@]}" create-function --function-name "fn-$kind" --runtime provided.al2023 --role "$role" \
    --handler bootstrap --zip-file "fileb://$tmp/$kind.zip" > /dev/null
  invoke "$tmp/out-$kind" '{}' --function-name "fn-$kind"
  check "$kind: Runtime.InvalidEntrypoint" grep -q '"errorType":"Runtime.InvalidEntrypoint"' "$tmp/out-$kind"
  check "$kind: Unhandled" test "$(field "$tmp/out-$kind.meta" "d.get('FunctionError')")" = Unhandled
done
grep -q "Couldn't find valid bootstrap" "$tmp/out-nobs"; check "missing bootstrap message" test $? = 0
"${L[@]}" update-function-code --function-name fn-nobs --zip-file "fileb://$tmp/fn.zip" > "$tmp/uc.json"
check "update-function-code: new CodeSha256" test "$(field "$tmp/uc.json" "d['CodeSha256']")" = "$(field "$tmp/c.json" "d['CodeSha256']")"
invoke "$tmp/uc" '{"n":3}' --function-name fn-nobs
check "update-function-code: the new code runs" grep -q '"event":{"n":3}' "$tmp/uc"
# idle environments are reaped (--function-idle-ms 1500): the next invoke is cold
invoke "$tmp/r1" '{}' --function-name fn-nobs
sleep 2.5
invoke "$tmp/r2" '{}' --function-name fn-nobs --log-type Tail
check "idle environment reaped" test "$(field "$tmp/r1" "d['pid']")" != "$(field "$tmp/r2" "d['pid']")"
b64log "$tmp/r2.meta" | grep -q "Init Duration"; check "after reaping: Init Duration" test $? = 0
grep -q "permission denied" "$tmp/out-noexec"; check "not executable message" test $? = 0
# a function that reports /init/error
"${L[@]}" create-function --function-name fn-init --runtime provided.al2023 --role "$role" \
  --handler bootstrap --environment 'Variables={TESTFN_INIT_FAIL=1}' --zip-file "fileb://$tmp/fn.zip" > /dev/null
invoke "$tmp/ie" '{}' --function-name fn-init
check "init error: Runtime.InitError" grep -q '"errorType":"Runtime.InitError"' "$tmp/ie"
"${L[@]}" update-function-configuration --function-name fn-init --environment 'Variables={}' > /dev/null
invoke "$tmp/ie2" '{"n":2}' --function-name fn-init
check "init error fixed by configuration" grep -q '"event":{"n":2}' "$tmp/ie2"
"${L[@]}" create-function --function-name fn-bad-env --runtime provided.al2023 --role "$role" \
  --handler bootstrap --environment 'Variables={AWS_REGION=x}' --zip-file "fileb://$tmp/fn.zip" > /dev/null 2> "$tmp/e"
check "reserved environment variable refused" grep -q "Reserved keys used in this request: AWS_REGION" "$tmp/e"

# Event: queued, then run (its log line shows up); DryRun: 204
"${L[@]}" invoke --function-name dog-fn --invocation-type Event --cli-binary-format raw-in-base64-out \
  --payload '{"log":1,"event":"queued"}' "$tmp/ev" > "$tmp/ev.meta"
check "Event: 202" test "$(field "$tmp/ev.meta" "d['StatusCode']")" = 202
seen=
for _ in $(seq 1 100); do
  "$kennel" function logs dog-fn --endpoint-url "http://127.0.0.1:$port" > "$tmp/logs" 2>/dev/null
  [ "$(grep -c '^testfn: request' "$tmp/logs")" -ge 2 ] && { seen=1; break; }
  sleep 0.05
done
check "Event ran from the queue" test -n "$seen"
"${L[@]}" invoke --function-name dog-fn --invocation-type DryRun "$tmp/dr" > "$tmp/dr.meta"
check "DryRun: 204" test "$(field "$tmp/dr.meta" "d['StatusCode']")" = 204
"${A[@]}" lambda get-account-settings > "$tmp/as.json"
check "account settings" test "$(field "$tmp/as.json" "(d['AccountLimit']['ConcurrentExecutions'], d['AccountLimit']['UnreservedConcurrentExecutions'])")" = "(1000, 995)"
"$kennel" function invoke dog-fn:live --payload '{"cli":1}' --endpoint-url "http://127.0.0.1:$port" > "$tmp/kc" 2>/dev/null
check "kennel function invoke" grep -q '"event":{"cli":1}' "$tmp/kc"
curl -s "http://127.0.0.1:$port/metrics" > "$tmp/metrics"
check "/metrics: function invocations" grep -q 'kennel_function_invocations_total{function="dog-fn"}' "$tmp/metrics"
"${L[@]}" get-alias --function-name dog-fn --name live > "$tmp/ga.json"
check "get-alias" test "$(field "$tmp/ga.json" "d['FunctionVersion']")" = 1
"${L[@]}" update-alias --function-name dog-fn --name live --description "the one in front" > "$tmp/ua.json"
check "update-alias" test "$(field "$tmp/ua.json" "d['Description']")" = "the one in front"
"${L[@]}" list-aliases --function-name dog-fn > "$tmp/la.json"
check "list-aliases" test "$(field "$tmp/la.json" "[a['Name'] for a in d['Aliases']]")" = "['live']"
"${L[@]}" list-versions-by-function --function-name dog-fn > "$tmp/lv.json"
check "list-versions" test "$(field "$tmp/lv.json" "[v['Version'] for v in d['Versions']]")" = "['\$LATEST', '1']"
"$kennel" function concurrency fn-nobs 3 --endpoint-url "http://127.0.0.1:$port" > "$tmp/kcc" 2>&1
check "kennel function concurrency" grep -q '"ReservedConcurrentExecutions":3' "$tmp/kcc"
"${L[@]}" delete-provisioned-concurrency-config --function-name dog-fn --qualifier live
"${L[@]}" get-provisioned-concurrency-config --function-name dog-fn --qualifier live > /dev/null 2> "$tmp/e"
check "provisioned deleted" grep -q ProvisionedConcurrencyConfigNotFoundException "$tmp/e"
"${L[@]}" delete-function --function-name dog-fn
"${L[@]}" get-function --function-name dog-fn > /dev/null 2> "$tmp/e"
check "delete-function" grep -q ResourceNotFoundException "$tmp/e"

# The reference function in C (functions/dog-breed on kn_runtime) through
# the AWS CLI, against a deployed endpoint: role allowed to invoke it, a
# published version, alias live, reserved 5, provisioned 2 READY, invoked
# with a base64 photo: one row with one score per class.
dogbs=$build/functions/dog-breed/bootstrap
if [ -x "$dogbs" ] && /usr/bin/python3 -c 'import PIL' 2> /dev/null; then
  "$kennel" model package --arch resnet18 --init random --classes 5 --seed 4 --out "$tmp/pkg" > /dev/null
  KENNEL_ENDPOINT="http://127.0.0.1:$port" "$kennel" deploy --model "$tmp/pkg" --name dog-ep \
    --instances 1 --wait > "$tmp/dep.out" 2>&1
  check "deploy dog-ep" grep -q "InService" "$tmp/dep.out"
  "${A[@]}" iam put-role-policy --role-name dog-role --policy-name invoke-dog-ep --policy-document \
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sagemaker:InvokeEndpoint","Resource":"arn:aws:sagemaker:us-east-1:123456789012:endpoint/dog-ep"}]}'
  mkdir -p "$tmp/dog" && cp "$dogbs" "$tmp/dog/bootstrap"
  "$kennel" function package "$tmp/dog" --out "$tmp/dog.zip" > /dev/null
  "${L[@]}" create-function --function-name dog-breed --runtime provided.al2023 --role "$role" \
    --handler bootstrap --timeout 30 --environment 'Variables={ENDPOINT_NAME=dog-ep}' \
    --zip-file "fileb://$tmp/dog.zip" > /dev/null
  "${L[@]}" publish-version --function-name dog-breed > /dev/null
  "${L[@]}" create-alias --function-name dog-breed --name live --function-version 1 > /dev/null
  "${L[@]}" put-function-concurrency --function-name dog-breed --reserved-concurrent-executions 5 > /dev/null
  "${L[@]}" put-provisioned-concurrency-config --function-name dog-breed --qualifier live \
    --provisioned-concurrent-executions 2 > /dev/null
  st=
  for _ in $(seq 1 100); do
    "${L[@]}" get-provisioned-concurrency-config --function-name dog-breed --qualifier live > "$tmp/pc.json"
    st=$(field "$tmp/pc.json" "d['Status']")
    [ "$st" = IN_PROGRESS ] || break
    sleep 0.2
  done
  check "dog-breed provisioned 2 on live: READY" test "$st" = READY
  /usr/bin/python3 -c "
import base64, io, json
from PIL import Image
b = io.BytesIO()
Image.new('RGB', (80, 60), (160, 110, 60)).save(b, 'JPEG')
json.dump({'image': base64.b64encode(b.getvalue()).decode()}, open('$tmp/dog-event.json', 'w'))"
  "${L[@]}" invoke --function-name dog-breed:live --cli-binary-format raw-in-base64-out \
    --payload "fileb://$tmp/dog-event.json" "$tmp/dog-out.json" > "$tmp/dog-meta.json"
  check "dog-breed: 200, no function error" test "$(field "$tmp/dog-meta.json" "(d['StatusCode'], d.get('FunctionError'))")" = "(200, None)"
  check "dog-breed: the reference response, one row of 5 scores" test "$(field "$tmp/dog-out.json" \
    "(d['statusCode'], d['headers']['Access-Control-Allow-Origin'], [len(r) for r in __import__('json').loads(d['body'])])")" = "(200, '*', [5])"
else
  echo "note: $dogbs is not built or PIL is missing: the dog-breed flow is not checked here"
fi

if [ "$fail" -ne 0 ] || [ -n "${KN_TEST_VERBOSE:-}" ]; then tail -20 "$tmp/server.err"; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
