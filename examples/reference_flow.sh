#!/usr/bin/env bash
# The reference notebook's calls with the AWS CLI v2, pointed at a kennel
# server: tuning job -> describe -> best training job -> model -> endpoint
# configuration -> endpoint -> invoke -> Application Auto Scaling (1..3,
# target tracking, cooldowns in 300 s / out 30 s) -> role and the function
# (lambda_function.py beside this script) with reserved concurrency 5 and
# provisioned 2 on alias live -> invoke it. The same as reference_flow.py.
#
# usage: examples/reference_flow.sh ENDPOINT_URL DATA_DIR BACKBONE PHOTO OUT_DIR [BOOTSTRAP]
# Credentials from the usual AWS_* variables. AWS_CLI picks the CLI
# (default /usr/bin/aws, the Debian AWS CLI v2).
set -euo pipefail
[ $# -ge 5 ] || { sed -n 2,11p "$0"; exit 2; }
url=$1 data=$(realpath "$2") backbone=$(realpath "$3") photo=$(realpath "$4") out=$(realpath "$5")
here=$(cd "$(dirname "$0")" && pwd)
bootstrap=${6:-$here/../functions/dog-breed-python/bootstrap}
aws=${AWS_CLI:-/usr/bin/aws}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} AWS_PAGER=""
a() { "$aws" --endpoint-url "$url" --output json "$@"; }
role=arn:aws:iam::123456789012:role/kennel-training
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { echo "== $*"; }

step "tuning job dog-hpo"
cat > "$work/tuning.json" << JSON
{"Strategy": "Bayesian",
 "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "Test Loss"},
 "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
 "ParameterRanges": {
   "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Auto"}],
   "CategoricalParameterRanges": [{"Name": "batch_size", "Values": ["32", "64", "128", "256", "512"]}]},
 "TrainingJobEarlyStoppingType": "Off"}
JSON
cat > "$work/definition.json" << JSON
{"StaticHyperParameters": {"backbone": "$backbone", "epochs": "${EPOCHS:-5}", "split": "7,0,3", "seed": "0"},
 "AlgorithmSpecification": {"TrainingImage": "kennel", "TrainingInputMode": "File",
   "MetricDefinitions": [{"Name": "Test Loss", "Regex": "Testing Loss: ([0-9\\\\.]+)"}]},
 "RoleArn": "$role",
 "InputDataConfig": [{"ChannelName": "training", "DataSource": {"S3DataSource": {
   "S3DataType": "S3Prefix", "S3Uri": "file://$data", "S3DataDistributionType": "FullyReplicated"}}}],
 "OutputDataConfig": {"S3OutputPath": "file://$out"},
 "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
 "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}
JSON
a sagemaker create-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name dog-hpo \
  --hyper-parameter-tuning-job-config "file://$work/tuning.json" \
  --training-job-definition "file://$work/definition.json" > /dev/null
while :; do
  st=$(a sagemaker describe-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name dog-hpo \
    --query HyperParameterTuningJobStatus --output text)
  case $st in InProgress | Stopping) sleep 1 ;; *) break ;; esac
done
echo "status: $st"
a sagemaker list-training-jobs-for-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name dog-hpo \
  --query 'TrainingJobSummaries[].[TrainingJobName, TunedHyperParameters.learning_rate, TunedHyperParameters.batch_size, FinalHyperParameterTuningJobObjectiveMetric.Value]' \
  --output text | sed 's/^/trial /'
best=$(a sagemaker describe-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name dog-hpo \
  --query BestTrainingJob.TrainingJobName --output text)
artifact=$(a sagemaker describe-training-job --training-job-name "$best" \
  --query ModelArtifacts.S3ModelArtifacts --output text)
echo "best: $best $artifact"

step "model, endpoint configuration, endpoint dog-ep"
a sagemaker create-model --model-name dog-model --execution-role-arn "$role" \
  --primary-container "ModelDataUrl=$artifact" > /dev/null
a sagemaker create-endpoint-config --endpoint-config-name dog-ep-config --production-variants \
  VariantName=AllTraffic,ModelName=dog-model,InitialInstanceCount=1,InstanceType=ml.m5.large,InitialVariantWeight=1 > /dev/null
a sagemaker create-endpoint --endpoint-name dog-ep --endpoint-config-name dog-ep-config > /dev/null
a sagemaker wait endpoint-in-service --endpoint-name dog-ep
echo "endpoint: $(a sagemaker describe-endpoint --endpoint-name dog-ep --query EndpointStatus --output text)"

step "invoke dog-ep"
a sagemaker-runtime invoke-endpoint --endpoint-name dog-ep --content-type image/jpeg \
  --accept application/json --body "fileb://$photo" "$work/scores.json" > /dev/null
echo "scores: $(cat "$work/scores.json")"

step "Application Auto Scaling: 1..3, target tracking, cooldowns in 300 s / out 30 s"
rid=endpoint/dog-ep/variant/AllTraffic
a application-autoscaling register-scalable-target --service-namespace sagemaker --resource-id $rid \
  --scalable-dimension sagemaker:variant:DesiredInstanceCount --min-capacity 1 --max-capacity 3 > /dev/null
cat > "$work/policy.json" << 'JSON'
{"TargetValue": 70.0,
 "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
 "ScaleInCooldown": 300, "ScaleOutCooldown": 30}
JSON
echo "policy: $(a application-autoscaling put-scaling-policy --policy-name dog-ep-invocations \
  --service-namespace sagemaker --resource-id $rid --scalable-dimension sagemaker:variant:DesiredInstanceCount \
  --policy-type TargetTrackingScaling --target-tracking-scaling-policy-configuration "file://$work/policy.json" \
  --query PolicyARN --output text)"
echo "scalable target: $(a application-autoscaling describe-scalable-targets --service-namespace sagemaker \
  --resource-ids $rid --query 'ScalableTargets[0].[MinCapacity, MaxCapacity]' --output text | tr '\t' .)"

step "role dog-fn-role (invoke dog-ep only) and function dog-breed"
ep_arn=$(a sagemaker describe-endpoint --endpoint-name dog-ep --query EndpointArn --output text)
fn_role=$(a iam create-role --role-name dog-fn-role --query Role.Arn --output text \
  --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}')
a iam put-role-policy --role-name dog-fn-role --policy-name invoke-dog-ep --policy-document \
  "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"sagemaker:InvokeEndpoint\",\"Resource\":\"$ep_arn\"}]}"
mkdir "$work/fn"
cp "$here/lambda_function.py" "$work/fn/"
cp "$bootstrap" "$work/fn/bootstrap"
chmod 755 "$work/fn/bootstrap"
/usr/bin/python3 -c "
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    z.write(sys.argv[2] + '/lambda_function.py', 'lambda_function.py')
    i = zipfile.ZipInfo('bootstrap'); i.external_attr = 0o755 << 16
    z.writestr(i, open(sys.argv[2] + '/bootstrap', 'rb').read())" "$work/fn.zip" "$work/fn"
a lambda create-function --function-name dog-breed --runtime provided.al2023 --role "$fn_role" \
  --handler lambda_function.lambda_handler --zip-file "fileb://$work/fn.zip" --timeout 60 \
  --environment 'Variables={ENDPOINT_NAME=dog-ep}' > /dev/null
v=$(a lambda publish-version --function-name dog-breed --query Version --output text)
a lambda create-alias --function-name dog-breed --name live --function-version "$v" > /dev/null
a lambda put-function-concurrency --function-name dog-breed --reserved-concurrent-executions 5 > /dev/null
a lambda put-provisioned-concurrency-config --function-name dog-breed --qualifier live \
  --provisioned-concurrent-executions 2 > /dev/null
for _ in $(seq 600); do
  pc=$(a lambda get-provisioned-concurrency-config --function-name dog-breed --qualifier live --query Status --output text)
  [ "$pc" = IN_PROGRESS ] || break
  sleep 0.2
done
echo "reserved: $(a lambda get-function-concurrency --function-name dog-breed --query ReservedConcurrentExecutions --output text) provisioned: $pc"

step "invoke dog-breed:live with the photo"
printf '{"image": "%s"}' "$(base64 -w0 "$photo")" > "$work/event.json"
a lambda invoke --function-name dog-breed --qualifier live --cli-binary-format raw-in-base64-out \
  --payload "fileb://$work/event.json" "$work/answer.json" > "$work/invoke.json"
if grep -q FunctionError "$work/invoke.json"; then
  echo "function error: $(cat "$work/answer.json")"
  exit 1
fi
/usr/bin/python3 -c "
import json, sys
a = json.load(open(sys.argv[1]))
print('statusCode:', a['statusCode'])
print('body:', a['body'])" "$work/answer.json"
