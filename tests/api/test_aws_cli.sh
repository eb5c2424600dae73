#!/usr/bin/env bash
# kennel server driven by the real AWS CLI v2 (/usr/bin/aws from Debian's
# awscli) on a free loopback port, in a fresh data dir:
#  - create-model (ModelDataUrl = a random-init model.tar.gz) ->
#    create-endpoint-config (2 instances) -> create-endpoint ->
#    wait endpoint-in-service -> invoke-endpoint with an image/jpeg body (one
#    row of 5 scores, InvokedProductionVariant) -> describe / list ->
#    delete-endpoint -> wait endpoint-deleted;
#  - describe-model/-endpoint-config, list-models, delete of both;
#  - errors as the CLI reports them: describe of a missing endpoint
#    (ValidationException), invoke of a missing endpoint (ValidationError),
#    a model error (ModelError with the instance's 415), a bad model name,
#    an unknown instance type, a duplicate model;
#  - a package that does not load: the endpoint goes Failed with the
#    loader's message as FailureReason, and the waiter fails;
#  - a second server on the same data dir is refused, naming the dir and pid;
#  - kill -9 of the daemon, restart: the endpoint comes back InService with
#    its instance count, and answers again.
set -u
. "$(dirname "$0")/../kn_testlib.sh"
aws=/usr/bin/aws
kn_need_aws
kn_need_pil

kn_client_env AKIDEXAMPLE wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
export AWS_MAX_ATTEMPTS=1

"$kennel" model package --arch resnet18 --init random --classes 5 --seed 3 \
  --out "$tmp/pkg" --tar "$tmp/model.tar.gz" > /dev/null || { echo "FAIL: model package"; exit 1; }
mkdir -p "$tmp/broken" && echo '{"arch": "resnet18", "num_classes": 5}' > "$tmp/broken/model.json"
/usr/bin/python3 -c "
from PIL import Image
Image.new('RGB', (64, 48), (120, 30, 200)).save('$tmp/x.jpg', quality=90)"

start_server() {
  kn_start_server
  A=("$aws" --endpoint-url "http://127.0.0.1:$port" --region us-east-1 --output json)
}
start_server
check "server ready" test -n "$port"

# jq-free JSON field reads
field() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }
# The CLI's waiters poll every 30 s; the first one below is used as is, the
# later ones only after describe-endpoint shows the state they wait for, so
# the test checks them without sleeping through their delay again.
await_status() { # await_status ENDPOINT STATUS
  for _ in $(seq 1 600); do
    "${A[@]}" sagemaker describe-endpoint --endpoint-name "$1" > "$tmp/poll.json" 2> /dev/null &&
      [ "$(field "$tmp/poll.json" "d['EndpointStatus']")" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

"${A[@]}" sagemaker create-model --model-name Dog-Model \
  --primary-container "ModelDataUrl=file://$tmp/model.tar.gz" \
  --execution-role-arn arn:aws:iam::123456789012:role/sm > "$tmp/cm.json"
check "create-model" grep -q '"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/dog-model"' "$tmp/cm.json"
"${A[@]}" sagemaker create-model --model-name dog-model --primary-container "ModelDataUrl=$tmp/pkg" \
  --execution-role-arn arn:aws:iam::123456789012:role/sm 2> "$tmp/err" > /dev/null
check "duplicate model refused" grep -q 'ValidationException.*Cannot create already existing model' "$tmp/err"
"${A[@]}" sagemaker create-model --model-name 'bad_name' --primary-container "ModelDataUrl=$tmp/pkg" \
  --execution-role-arn arn:aws:iam::123456789012:role/sm 2> "$tmp/err" > /dev/null
check "bad model name names the field" grep -q "ValidationException.*'bad_name' at 'modelName'" "$tmp/err"
"${A[@]}" sagemaker create-model --model-name s3model --primary-container "ModelDataUrl=s3://b/model.tar.gz" \
  --execution-role-arn arn:aws:iam::123456789012:role/sm 2> "$tmp/err" > /dev/null
check "s3 model data refused with a reason" grep -q 'ValidationException.*S3' "$tmp/err"
"${A[@]}" sagemaker describe-model --model-name dog-model > "$tmp/dm.json"
check "describe-model" test "$(field "$tmp/dm.json" "d['PrimaryContainer']['ModelDataUrl']")" = "file://$tmp/model.tar.gz"
"${A[@]}" sagemaker list-models > "$tmp/lm.json"
check "list-models" test "$(field "$tmp/lm.json" "[m['ModelName'] for m in d['Models']]")" = "['Dog-Model']"

"${A[@]}" sagemaker create-endpoint-config --endpoint-config-name dog-cfg \
  --production-variants VariantName=AllTraffic,ModelName=Dog-Model,InitialInstanceCount=2,InstanceType=ml.m5.large \
  > /dev/null
check "create-endpoint-config" test $? -eq 0
"${A[@]}" sagemaker create-endpoint-config --endpoint-config-name other \
  --production-variants VariantName=AllTraffic,ModelName=Dog-Model,InitialInstanceCount=1,InstanceType=ml.p9.huge \
  2> "$tmp/err" > /dev/null
check "unknown instance type" grep -q "ValidationException.*'ml.p9.huge' at 'productionVariants.1.member.instanceType'" "$tmp/err"
"${A[@]}" sagemaker describe-endpoint-config --endpoint-config-name dog-cfg > "$tmp/dc.json"
check "describe-endpoint-config" test "$(field "$tmp/dc.json" "d['ProductionVariants'][0]['InitialInstanceCount']")" = 2

"${A[@]}" sagemaker create-endpoint --endpoint-name dog-ep --endpoint-config-name dog-cfg > "$tmp/ce.json"
check "create-endpoint" grep -q '"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/dog-ep"' "$tmp/ce.json"
"${A[@]}" sagemaker wait endpoint-in-service --endpoint-name dog-ep
check "wait endpoint-in-service" test $? -eq 0
"${A[@]}" sagemaker describe-endpoint --endpoint-name dog-ep > "$tmp/de.json"
check "InService" test "$(field "$tmp/de.json" "d['EndpointStatus']")" = InService
check "2 instances" test "$(field "$tmp/de.json" "d['ProductionVariants'][0]['CurrentInstanceCount']")" = 2

"${A[@]}" sagemaker-runtime invoke-endpoint --endpoint-name dog-ep --content-type image/jpeg \
  --body "fileb://$tmp/x.jpg" "$tmp/out.json" > "$tmp/inv.json"
check "invoke-endpoint" test "$(field "$tmp/inv.json" "d['InvokedProductionVariant']")" = AllTraffic
check "one row of 5 scores" test "$(field "$tmp/out.json" "(len(d), len(d[0]))")" = "(1, 5)"
"$kennel" predict --model "$tmp/pkg" --json "$tmp/x.jpg" > "$tmp/predict.json" 2> /dev/null
check "same scores as kennel predict" /usr/bin/python3 -c "
import json, sys
a = json.load(open('$tmp/out.json'))[0]; b = json.load(open('$tmp/predict.json'))[0]
sys.exit(0 if max(abs(x - y) for x, y in zip(a, b)) < 1e-4 else 1)"

"${A[@]}" sagemaker-runtime invoke-endpoint --endpoint-name dog-ep --content-type text/plain \
  --body "fileb://$tmp/x.jpg" "$tmp/o2" 2> "$tmp/err" > /dev/null
check "model error" grep -q 'ModelError.*Received client error (415)' "$tmp/err"
"${A[@]}" sagemaker-runtime invoke-endpoint --endpoint-name no-such-ep --content-type image/jpeg \
  --body "fileb://$tmp/x.jpg" "$tmp/o2" 2> "$tmp/err" > /dev/null
check "invoke missing endpoint" grep -q 'ValidationError.*Endpoint no-such-ep of account 123456789012 not found' "$tmp/err"
"${A[@]}" sagemaker describe-endpoint --endpoint-name no-such-ep 2> "$tmp/err" > /dev/null
check "describe missing endpoint" grep -q 'ValidationException.*Could not find endpoint' "$tmp/err"

# a package that does not load
"${A[@]}" sagemaker create-model --model-name broken --primary-container "ModelDataUrl=$tmp/broken" \
  --execution-role-arn arn:aws:iam::123456789012:role/sm > /dev/null
"${A[@]}" sagemaker create-endpoint-config --endpoint-config-name broken-cfg \
  --production-variants VariantName=AllTraffic,ModelName=broken,InitialInstanceCount=1,InstanceType=ml.t2.medium > /dev/null
"${A[@]}" sagemaker create-endpoint --endpoint-name broken-ep --endpoint-config-name broken-cfg > /dev/null
check "broken endpoint reaches Failed" await_status broken-ep Failed
"${A[@]}" sagemaker wait endpoint-in-service --endpoint-name broken-ep 2> "$tmp/err"
check "waiter fails on Failed" test $? -ne 0
"${A[@]}" sagemaker describe-endpoint --endpoint-name broken-ep > "$tmp/bd.json"
check "broken endpoint Failed" test "$(field "$tmp/bd.json" "d['EndpointStatus']")" = Failed
check "FailureReason is the loader's message" test -n "$(field "$tmp/bd.json" "d.get('FailureReason', '')")"
grep -q 'model.safetensors' <<< "$(field "$tmp/bd.json" "d.get('FailureReason', '')")"
check "FailureReason names the package problem" test $? -eq 0

# one daemon per data dir
"$kennel" server --data-dir "$tmp/data" --port 0 > /dev/null 2> "$tmp/err2"
rc=$?
check "second server refused" test $rc -ne 0
check "refusal names dir and pid" grep -q "data dir .*$tmp/data.* is in use by another kennel server (pid $server_pid)" "$tmp/err2"

# a data dir that is another user's: refused with what to do, nothing written
# into it (as root: a directory given to nobody; otherwise: /, root's)
other=/
if [ "$(id -u)" = 0 ]; then
  other=$tmp/other
  mkdir "$other" && chown 65534 "$other"
fi
"$kennel" server --data-dir "$other" --port 0 > /dev/null 2> "$tmp/err3"
check "other user's data dir refused" test $? -ne 0
check "refusal says whose and what to do" \
  grep -q "data dir $other is owned by uid [0-9]*.*, not by this user (uid $(id -u)): .*run kennel as that user, or choose another --data-dir" "$tmp/err3"
[ "$other" = / ] || check "nothing written into it" test -z "$(ls -A "$other")"

# kill -9 of the daemon: instances go with it, the restart brings the endpoint back
kill -9 "$server_pid"
wait "$server_pid" 2> /dev/null
server_pid=
sleep 0.3
check "instances died with the daemon" test -z "$(pgrep -f -- "--ready-file $tmp/data/instances" || true)"
start_server
"${A[@]}" sagemaker describe-endpoint --endpoint-name dog-ep > "$tmp/de2.json"
status=$(field "$tmp/de2.json" "d['EndpointStatus']")
check "after restart: coming back ($status)" test "$status" = SystemUpdating -o "$status" = InService
check "after restart: reaches InService" await_status dog-ep InService
"${A[@]}" sagemaker wait endpoint-in-service --endpoint-name dog-ep
check "after restart: InService" test $? -eq 0
"${A[@]}" sagemaker describe-endpoint --endpoint-name dog-ep > "$tmp/de2.json"
check "after restart: 2 instances" test "$(field "$tmp/de2.json" "d['ProductionVariants'][0]['CurrentInstanceCount']")" = 2
"${A[@]}" sagemaker describe-endpoint --endpoint-name broken-ep > "$tmp/bd2.json"
check "after restart: Failed stays Failed" test "$(field "$tmp/bd2.json" "d['EndpointStatus']")" = Failed
"${A[@]}" sagemaker-runtime invoke-endpoint --endpoint-name dog-ep --content-type image/jpeg \
  --body "fileb://$tmp/x.jpg" "$tmp/out2.json" > /dev/null
check "after restart: same answer" cmp -s "$tmp/out.json" "$tmp/out2.json"

"${A[@]}" sagemaker delete-endpoint --endpoint-name dog-ep
check "delete-endpoint" test $? -eq 0
"${A[@]}" sagemaker wait endpoint-deleted --endpoint-name dog-ep
check "wait endpoint-deleted" test $? -eq 0
"${A[@]}" sagemaker delete-endpoint --endpoint-name broken-ep > /dev/null
"${A[@]}" sagemaker wait endpoint-deleted --endpoint-name broken-ep
"${A[@]}" sagemaker list-endpoints > "$tmp/le.json"
check "no endpoints left" test "$(field "$tmp/le.json" "len(d['Endpoints'])")" = 0
"${A[@]}" sagemaker delete-endpoint-config --endpoint-config-name dog-cfg
check "delete-endpoint-config" test $? -eq 0
"${A[@]}" sagemaker delete-model --model-name dog-model
check "delete-model" test $? -eq 0
"${A[@]}" sagemaker describe-model --model-name dog-model 2> "$tmp/err" > /dev/null
check "deleted model is gone" grep -q 'ValidationException.*Could not find model' "$tmp/err"

kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
server_pid=
check "clean stop" test $rc -eq 0
check "no instance left behind" test -z "$(pgrep -f -- "--ready-file $tmp/data/instances" || true)"

echo "$pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then
  echo "--- server log"; tail -40 "$tmp/server.err"
fi
[ "$fail" -eq 0 ]
