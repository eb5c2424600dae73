#!/usr/bin/env bash
# The web console in a real browser: headless Debian Chromium driven by
# playwright-core (npm, installed by the build into build/console), against
# a kennel server on a free loopback port with the accelerated clock.
# console_e2e.cjs does the checks; this script sets the stage:
#  - a random-init resnet18 endpoint "dogs" (1 instance) with a
#    target-tracking policy (1..3 instances, target 5 invocations per
#    instance-minute) and a second endpoint "cats";
#  - a JPEG for the load the browser test drives;
# and afterwards checks that the screenshots were written.
# Screenshots: $KN_BUILD_DIR/console-artifacts/*.png.
set -u
kennel=${KN_BIN:?KN_BIN not set}
build=${KN_BUILD_DIR:?KN_BUILD_DIR not set}
src=${KN_SOURCE_DIR:?KN_SOURCE_DIR not set}
chromium=/usr/bin/chromium
if [ ! -x "$chromium" ]; then
  echo "skip: $chromium (Debian chromium) is not installed"
  exit 77
fi
if [ ! -d "$build/console/node_modules/playwright-core" ]; then
  echo "skip: playwright-core is not installed in $build/console (the build installs it with npm)"
  exit 77
fi
if ! command -v node > /dev/null; then
  echo "skip: node is not installed"
  exit 77
fi
if ! /usr/bin/python3 -c 'import PIL' 2>/dev/null; then
  echo "skip: /usr/bin/python3 has no PIL (python3-pil) to make a JPEG"
  exit 77
fi
tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

export AWS_ACCESS_KEY_ID=AKIDCONSOLETEST00001 AWS_SECRET_ACCESS_KEY=console/secret/for/the/e2e/test/0001
export KENNEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID KENNEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

"$kennel" model package --arch resnet18 --init random --classes 4 --seed 5 --out "$tmp/pkg" \
  > /dev/null || { echo "FAIL: model package"; exit 1; }
/usr/bin/python3 -c "
from PIL import Image
Image.new('RGB', (64, 48), (200, 120, 40)).save('$tmp/x.jpg', quality=90)"

"$kennel" server --data-dir "$tmp/data" --port 0 --ready-file "$tmp/ready" --clock-rate 60 \
  > "$tmp/server.out" 2> "$tmp/server.err" &
server_pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
[ -s "$tmp/ready" ] || { echo "FAIL: server did not start"; cat "$tmp/server.err"; exit 1; }
export KENNEL_ENDPOINT="http://$(cat "$tmp/ready")"

"$kennel" deploy --model "$tmp/pkg" --name dogs --instances 1 --instance-type ml.m5.large \
  --wait > "$tmp/deploy.out" 2>&1 || { echo "FAIL: deploy dogs"; cat "$tmp/deploy.out"; exit 1; }
"$kennel" deploy --model "$tmp/pkg" --name cats --instances 1 --instance-type ml.t2.medium \
  --wait > "$tmp/deploy2.out" 2>&1 || { echo "FAIL: deploy cats"; cat "$tmp/deploy2.out"; exit 1; }
# a package that does not load, in a folder whose name is markup: the
# endpoint fails and its FailureReason (the loader's message, with the path)
# carries the markup to the console, which must show it as text
evil="$tmp/<img src=x onerror=window.__xss=1>"
mkdir -p "$evil" && echo '{"arch": "resnet18", "num_classes": 3}' > "$evil/model.json"
"$kennel" deploy --model "$evil" --name broken --instances 1 > "$tmp/deploy3.out" 2>&1
"$kennel" autoscale dogs --min 1 --max 3 --target 5 --scale-in-cooldown 300 \
  --scale-out-cooldown 30 > "$tmp/as.out" 2>&1 || { echo "FAIL: autoscale"; cat "$tmp/as.out"; exit 1; }

# a small tuning job: the jobs tests' fast stand-in trainer as the training
# image, 4 trials, 2 at a time
mkdir -p "$tmp/input"
cat > "$tmp/tuning.json" <<JSON
{"HyperParameterTuningJobName": "console-tune",
 "HyperParameterTuningJobConfig": {"Strategy": "Random",
   "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "Test Loss"},
   "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
   "ParameterRanges": {
     "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.0001",
                                    "MaxValue": "1", "ScalingType": "Logarithmic"}],
     "CategoricalParameterRanges": [{"Name": "batch_size", "Values": ["32", "64", "128"]}]},
   "TrainingJobEarlyStoppingType": "Off"},
 "TrainingJobDefinition": {
   "AlgorithmSpecification": {"TrainingImage": "$src/tests/jobs/standin_trainer.py",
     "TrainingInputMode": "File",
     "MetricDefinitions": [{"Name": "Test Loss", "Regex": "Testing Loss: ([0-9.]+)"},
                           {"Name": "Valid Loss", "Regex": "Valid Loss: ([0-9.]+)"}]},
   "StaticHyperParameters": {"sleep": "0.05"},
   "RoleArn": "arn:aws:iam::123456789012:role/kennel",
   "InputDataConfig": [{"ChannelName": "training", "DataSource": {"S3DataSource": {
     "S3DataType": "S3Prefix", "S3Uri": "file://$tmp/input"}}}],
   "OutputDataConfig": {"S3OutputPath": "file://$tmp/out"},
   "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
   "StoppingCondition": {"MaxRuntimeInSeconds": 600}}}
JSON
aws=/usr/bin/aws
if [ -x "$aws" ]; then
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER= AWS_MAX_ATTEMPTS=1 \
    "$aws" --endpoint-url "$KENNEL_ENDPOINT" --region us-east-1 sagemaker \
    create-hyper-parameter-tuning-job --cli-input-json "file://$tmp/tuning.json" \
    > "$tmp/tune.out" 2>&1 || { echo "FAIL: create-hyper-parameter-tuning-job"; cat "$tmp/tune.out"; exit 1; }
  export KN_TUNING=console-tune
  # IAM: a read-only user (for "deploy best", which it must not be able to
  # do) and a role whose policy allows sagemaker:* (a lint finding)
  iam() {
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER= AWS_MAX_ATTEMPTS=1 \
      "$aws" --endpoint-url "$KENNEL_ENDPOINT" --region us-east-1 --output json iam "$@"
  }
  iam create-user --user-name viewer > /dev/null &&
    iam put-user-policy --user-name viewer --policy-name read-only --policy-document \
      '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sagemaker:Describe*", "sagemaker:List*", "application-autoscaling:Describe*", "sts:GetCallerIdentity"], "Resource": "*"}]}' &&
    iam create-access-key --user-name viewer > "$tmp/viewer.json" &&
    iam create-role --role-name dog-fn-role --assume-role-policy-document \
      '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}' > /dev/null &&
    iam put-role-policy --role-name dog-fn-role --policy-name too-broad --policy-document \
      '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}]}' ||
    { echo "FAIL: IAM set-up through the AWS CLI"; exit 1; }
  # a function that sleeps on request (the functions tests' testfn), with
  # reserved concurrency 2 and 1 provisioned environment on alias live
  if [ -x "$build/functions/testfn/bootstrap" ]; then
    mkdir -p "$tmp/fn" && cp "$build/functions/testfn/bootstrap" "$tmp/fn/bootstrap"
    lam() {
      AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER= AWS_MAX_ATTEMPTS=1 \
        "$aws" --endpoint-url "$KENNEL_ENDPOINT" --region us-east-1 --output json lambda "$@"
    }
    role_arn=arn:aws:iam::123456789012:role/dog-fn-role
    "$kennel" function package "$tmp/fn" --out "$tmp/fn.zip" > /dev/null &&
      lam create-function --function-name slow-fn --runtime provided.al2023 --role "$role_arn" \
        --handler bootstrap --timeout 10 --zip-file "fileb://$tmp/fn.zip" \
        --description '<b onmouseover=alert(1)>slow</b>' > /dev/null &&
      lam tag-resource --resource arn:aws:lambda:us-east-1:123456789012:function:slow-fn \
        --tags 'team=<img src=x onerror=window.__xss=2>,stage=test' &&
      lam list-tags --resource arn:aws:lambda:us-east-1:123456789012:function:slow-fn \
        > "$tmp/tags.json" &&
      grep -q 'onerror=window.__xss=2' "$tmp/tags.json" &&
      lam untag-resource --resource arn:aws:lambda:us-east-1:123456789012:function:slow-fn \
        --tag-keys stage &&
      lam get-function --function-name slow-fn > "$tmp/getfn.json" &&
      /usr/bin/python3 -c "import json,sys; t=json.load(open('$tmp/getfn.json'))['Tags']; sys.exit(0 if list(t) == ['team'] else 1)" &&
      lam publish-version --function-name slow-fn > /dev/null &&
      lam create-alias --function-name slow-fn --name live --function-version 1 > /dev/null &&
      lam put-function-concurrency --function-name slow-fn --reserved-concurrent-executions 2 > /dev/null &&
      lam put-provisioned-concurrency-config --function-name slow-fn --qualifier live \
        --provisioned-concurrent-executions 1 > /dev/null ||
      { echo "FAIL: function set-up through the AWS CLI"; exit 1; }
    export KN_FUNCTION=slow-fn
  else
    echo "note: $build/functions/testfn/bootstrap is not built: the function page is not checked"
  fi
  export KN_VIEWER_KEY=$(/usr/bin/python3 -c "import json; print(json.load(open('$tmp/viewer.json'))['AccessKey']['AccessKeyId'])")
  export KN_VIEWER_SECRET=$(/usr/bin/python3 -c "import json; print(json.load(open('$tmp/viewer.json'))['AccessKey']['SecretAccessKey'])")
else
  echo "note: /usr/bin/aws (Debian awscli) is missing: the tuning pages are not checked"
fi

mkdir -p "$build/console-artifacts"
KN_URL="$KENNEL_ENDPOINT" KN_SERVER_PID=$server_pid KN_JPEG="$tmp/x.jpg" \
  KN_ARTIFACTS="$build/console-artifacts" KN_CHROMIUM=$chromium \
  NODE_PATH="$build/console/node_modules" node "$src/tests/console/console_e2e.cjs"
exit $?  # (the browser test stops the server itself for the banner check)
