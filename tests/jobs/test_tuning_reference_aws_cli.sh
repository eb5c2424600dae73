#!/usr/bin/env bash
# The reference project's tuning flow through the AWS CLI v2 (/usr/bin/aws)
# and kennel's own CLI on a real kennel server, on ../shared/data/pets-cats
# with the frozen mobilenet_v1_0.25_224 backbone:
#   aws sagemaker create-hyper-parameter-tuning-job --cli-input-json (2 jobs,
#   2 parallel, learning_rate 0.001..0.1, batch_size {32..512}, "Test Loss"
#   minimised) -> describe until Completed -> list-training-jobs-for-... ->
#   BestTrainingJob -> create-model / create-endpoint-config / create-endpoint
#   -> invoke-endpoint with a cat photo -> one row of 12 scores;
# then kennel tune results / best --deploy / plot, kennel plot metrics,
# kennel logs, and `kennel tune --config` running a second tuning job (warm
# started from the first) with its live table.
set -u
kennel=${KN_BIN:?KN_BIN not set}
shared=${KN_SHARED:-$(dirname "$0")/../../../shared}
data="$shared/data/pets-cats"
backbone="$shared/data/models/mobilenet_v1_0.25_224.tflite"
aws=/usr/bin/aws
if [ ! -d "$data" ] || [ ! -f "$backbone" ]; then
  echo "SKIP: $data or $backbone is absent"
  exit 77
fi
if [ ! -x "$aws" ]; then
  echo "SKIP: the AWS CLI v2 ($aws) is absent"
  exit 77
fi
tmp=$(mktemp -d)
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=kennel-test-secret
export KENNEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID KENNEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_PAGER="" XDG_CACHE_HOME="$tmp/cache"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
"$kennel" server --data-dir "$tmp/data" --port 0 --ready-file "$tmp/ready" > /dev/null 2> "$tmp/server.err" &
srv=$!
cleanup() { kill "$srv" 2> /dev/null; wait "$srv" 2> /dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
for _ in $(seq 200); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
url="http://$(cat "$tmp/ready")"
export KENNEL_ENDPOINT=$url
sm() { "$aws" --endpoint-url "$url" --output json sagemaker "$@"; }
pass=0 fail=0
ok() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
jq() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

cat > "$tmp/tuning.json" << JSON
{"HyperParameterTuningJobName": "cats-cli",
 "HyperParameterTuningJobConfig": {"Strategy": "Bayesian",
   "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "Test Loss"},
   "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
   "ParameterRanges": {
     "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Auto"}],
     "CategoricalParameterRanges": [{"Name": "batch_size", "Values": ["32", "64", "128", "256", "512"]}]},
   "TrainingJobEarlyStoppingType": "Off"},
 "TrainingJobDefinition": {
   "StaticHyperParameters": {"backbone": "$backbone", "epochs": "5", "split": "7,0,3", "seed": "0"},
   "AlgorithmSpecification": {"TrainingImage": "kennel", "TrainingInputMode": "File",
     "MetricDefinitions": [{"Name": "Test Loss", "Regex": "Testing Loss: ([0-9\\\\.]+)"}]},
   "RoleArn": "arn:aws:iam::123456789012:role/kennel-training",
   "InputDataConfig": [{"ChannelName": "training", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "file://$data"}}}],
   "OutputDataConfig": {"S3OutputPath": "file://$tmp/out"},
   "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
   "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}}
JSON
arn=$(sm create-hyper-parameter-tuning-job --cli-input-json "file://$tmp/tuning.json" | jq 'd["HyperParameterTuningJobArn"]')
ok "create tuning job" '[ "$arn" = "arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/cats-cli" ]'
status=InProgress
for _ in $(seq 1800); do
  status=$(sm describe-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name cats-cli | jq 'd["HyperParameterTuningJobStatus"]')
  [ "$status" != InProgress ] && break
  sleep 0.5
done
ok "tuning job Completed ($status)" '[ "$status" = Completed ]'
kids=$(sm list-training-jobs-for-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name cats-cli)
ok "two completed children" '[ "$(echo "$kids" | jq "sum(1 for k in d[\"TrainingJobSummaries\"] if k[\"TrainingJobStatus\"] == \"Completed\" and k[\"ObjectiveStatus\"] == \"Succeeded\")")" = 2 ]'
ok "child names" '[ "$(echo "$kids" | jq "all(__import__(\"re\").fullmatch(r\"cats-cli-00[12]-[0-9a-f]{8}\", k[\"TrainingJobName\"]) for k in d[\"TrainingJobSummaries\"])")" = True ]'
best=$(sm describe-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name cats-cli | jq 'd["BestTrainingJob"]["TrainingJobName"]')
model=$(sm describe-training-job --training-job-name "$best" | jq 'd["ModelArtifacts"]["S3ModelArtifacts"]')
ok "best model artifact ($model)" '[ "$model" = "file://$tmp/out/$best/output/model.tar.gz" ] && [ -f "$tmp/out/$best/output/model.tar.gz" ]'
sm create-model --model-name cats-best --execution-role-arn arn:aws:iam::123456789012:role/x \
  --primary-container "ModelDataUrl=$model" > /dev/null
sm create-endpoint-config --endpoint-config-name cats-best-config \
  --production-variants VariantName=AllTraffic,ModelName=cats-best,InitialInstanceCount=1,InstanceType=ml.m5.large,InitialVariantWeight=1 > /dev/null
sm create-endpoint --endpoint-name cats-best --endpoint-config-name cats-best-config > /dev/null
for _ in $(seq 600); do
  st=$(sm describe-endpoint --endpoint-name cats-best | jq 'd["EndpointStatus"]')
  [ "$st" != Creating ] && break
  sleep 0.2
done
ok "endpoint InService ($st)" '[ "$st" = InService ]'
photo="$data/Persian/$(ls "$data/Persian" | head -1)"
"$aws" --endpoint-url "$url" sagemaker-runtime invoke-endpoint --endpoint-name cats-best \
  --content-type image/jpeg --body "fileb://$photo" "$tmp/scores.json" > /dev/null
ok "one row of 12 scores" '[ "$(jq "len(d) == 1 and len(d[0]) == 12" < "$tmp/scores.json")" = True ]'
echo "scores: $(cat "$tmp/scores.json")"

# kennel's own CLI on the same job
"$kennel" tune results cats-cli > "$tmp/results.txt"
cat "$tmp/results.txt"
ok "results table" 'head -1 "$tmp/results.txt" | grep -q "learning_rate.*batch_size.*TrainingJobName.*TrainingJobStatus.*FinalObjectiveValue.*TrainingStartTime.*TrainingEndTime.*TrainingElapsedTimeSeconds" && [ "$(sed -n 2p "$tmp/results.txt" | grep -c "$best")" = 1 ]'
"$kennel" tune best cats-cli --deploy cats-best-2 > "$tmp/best.txt"
ok "tune best --deploy" 'grep -q "best training job: $best" "$tmp/best.txt" && grep -q "endpoint cats-best-2 is InService" "$tmp/best.txt"'
"$kennel" invoke cats-best-2 "$photo" > "$tmp/invoke.txt"
ok "kennel invoke on the deployed best" '[ -s "$tmp/invoke.txt" ]'
"$kennel" tune plot cats-cli --out "$tmp/tuning.png" > /dev/null
"$kennel" plot metrics "$best" --out "$tmp/curves.png" > /dev/null
ok "plots are PNG" '[ "$(head -c 4 "$tmp/tuning.png" | tail -c 3)" = PNG ] && [ "$(head -c 4 "$tmp/curves.png" | tail -c 3)" = PNG ]'
"$kennel" logs "$best" > "$tmp/log.txt"
ok "kennel logs" 'grep -q "^Testing Loss: " "$tmp/log.txt"'

# kennel tune --config: a second, warm-started tuning job with the live table
/usr/bin/python3 - "$tmp/tuning.json" "$tmp/warm.json" << 'PY'
import json, sys
t = json.load(open(sys.argv[1]))
t["HyperParameterTuningJobName"] = "cats-warm"
t["WarmStartConfig"] = {"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "cats-cli"}],
                        "WarmStartType": "IdenticalDataAndAlgorithm"}
t["HyperParameterTuningJobConfig"]["ResourceLimits"] = {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1}
json.dump(t, open(sys.argv[2], "w"))
PY
"$kennel" tune --config "$tmp/warm.json" > "$tmp/tune.txt"
rc=$?
cat "$tmp/tune.txt"
ok "kennel tune --config" '[ $rc = 0 ] && grep -q "cats-warm-001-[0-9a-f]\{8\} Completed" "$tmp/tune.txt" && grep -q "^tuning job cats-warm: Completed" "$tmp/tune.txt"'
ok "overall best" '[ "$(sm describe-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name cats-warm | jq "\"OverallBestTrainingJob\" in d")" = True ]'

if [ $fail -ne 0 ]; then tail -40 "$tmp/server.err"; fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
