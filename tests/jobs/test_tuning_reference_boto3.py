#!/usr/bin/env python3
"""The reference project's tuning flow through boto3 on a real kennel server:
learning_rate ContinuousParameter(0.001, 0.1) and batch_size
CategoricalParameter([32, 64, 128, 256, 512]) (with the 7/3 split of 12 x 10
images the training split holds 84 images, so 128 and above all mean one
full batch per step; the range stays as the reference had it), objective
"Test Loss" minimised through the regex `Testing Loss: ([0-9\\.]+)`, 2 jobs,
2 in parallel, on ../shared/data/pets-cats with the frozen
mobilenet_v1_0.25_224 backbone -> wait -> list the child jobs ->
BestTrainingJob -> create_model from its model.tar.gz -> endpoint config ->
endpoint -> invoke_endpoint with a cat photo -> one row of 12 scores."""
import json
import os
import subprocess
import sys
import tempfile
import time

KN = os.environ.get("KN_BIN")
SHARED = os.environ.get("KN_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
failures = 0
checks = 0


def check(name, cond, detail=""):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print(f"FAIL: {name} {detail}", flush=True)
    return cond


def tuning_request(name, d):
    return dict(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "Test Loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.001",
                                               "MaxValue": "0.1", "ScalingType": "Auto"}],
                "CategoricalParameterRanges": [{"Name": "batch_size", "Values": [
                    "32", "64", "128", "256", "512"]}]},
            "TrainingJobEarlyStoppingType": "Off"},
        TrainingJobDefinition={
            "StaticHyperParameters": {
                "backbone": f"{SHARED}/data/models/mobilenet_v1_0.25_224.tflite",
                "epochs": "5", "split": "7,0,3", "seed": "0"},
            "AlgorithmSpecification": {
                "TrainingImage": "kennel", "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\.]+)"}]},
            "RoleArn": "arn:aws:iam::123456789012:role/kennel-training",
            "InputDataConfig": [{"ChannelName": "training", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"file://{SHARED}/data/pets-cats",
                "S3DataDistributionType": "FullyReplicated"}}}],
            "OutputDataConfig": {"S3OutputPath": f"file://{d}/out"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}})


def main():
    if not KN:
        print("KN_BIN not set")
        return 1
    data = f"{SHARED}/data/pets-cats"
    backbone = f"{SHARED}/data/models/mobilenet_v1_0.25_224.tflite"
    if not os.path.isdir(data) or not os.path.isfile(backbone):
        print(f"skip: {data} or {backbone} is absent")
        return 77
    try:
        import boto3
    except ImportError as e:
        print(f"skip: {e} (needs python3-boto3)")
        return 77
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(k, None)
    tmp = tempfile.TemporaryDirectory()
    d = tmp.name
    os.environ.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                      KENNEL_ROOT_ACCESS_KEY_ID="AKIDEXAMPLE",
                      KENNEL_ROOT_SECRET_ACCESS_KEY="kennel-test-secret",
                      XDG_CACHE_HOME=f"{d}/cache")
    ready = f"{d}/ready"
    log = open(f"{d}/server.err", "wb")
    srv = subprocess.Popen([KN, "server", "--data-dir", f"{d}/data", "--port", "0",
                            "--ready-file", ready], stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(200):
            if os.path.exists(ready) and open(ready).read().strip():
                break
            time.sleep(0.05)
        url = "http://" + open(ready).read().strip()
        sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="AKIDEXAMPLE",
                          aws_secret_access_key="kennel-test-secret")
        rt = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="AKIDEXAMPLE",
                          aws_secret_access_key="kennel-test-secret")
        name = "cats-hpo"
        r = sm.create_hyper_parameter_tuning_job(**tuning_request(name, d))
        check("tuning arn", r["HyperParameterTuningJobArn"].endswith(
            ":hyper-parameter-tuning-job/cats-hpo"), r)
        desc = None
        for _ in range(1800):
            desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            if desc["HyperParameterTuningJobStatus"] != "InProgress":
                break
            time.sleep(0.5)
        check("tuning completed", desc["HyperParameterTuningJobStatus"] == "Completed", desc)
        kids = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name)["TrainingJobSummaries"]
        check("two children", len(kids) == 2, kids)
        for k in kids:
            check(f"{k['TrainingJobName']} completed", k["TrainingJobStatus"] == "Completed" and
                  k["ObjectiveStatus"] == "Succeeded", k)
            hp = k["TunedHyperParameters"]
            check("tuned values in range", 0.001 <= float(hp["learning_rate"]) <= 0.1 and
                  hp["batch_size"] in ("32", "64", "128", "256", "512"), hp)
        best = desc["BestTrainingJob"]
        vals = [k["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for k in kids]
        check("best is the lowest test loss",
              best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == min(vals),
              (best, vals))
        job = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
        art = job["ModelArtifacts"]["S3ModelArtifacts"]
        check("model artifact", art.endswith(f"/{best['TrainingJobName']}/output/model.tar.gz")
              and os.path.isfile(art[len("file://"):]), art)
        sm.create_model(ModelName="cats-best", ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
                        PrimaryContainer={"ModelDataUrl": art})
        sm.create_endpoint_config(EndpointConfigName="cats-best-config", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "cats-best", "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}])
        sm.create_endpoint(EndpointName="cats-best", EndpointConfigName="cats-best-config")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="cats-best",
                                                  WaiterConfig={"Delay": 1, "MaxAttempts": 240})
        photo = os.path.join(data, "Bengal", sorted(os.listdir(f"{data}/Bengal"))[0])
        out = rt.invoke_endpoint(EndpointName="cats-best", ContentType="image/jpeg",
                                 Body=open(photo, "rb").read())
        scores = json.loads(out["Body"].read())
        check("one row of 12 scores", isinstance(scores, list) and len(scores) == 1 and
              len(scores[0]) == 12, scores)
        print(f"children {[(k['TrainingJobName'], k['TunedHyperParameters'], v) for k, v in zip(kids, vals)]}")
        print(f"best {best['TrainingJobName']} Test Loss {min(vals)}; scores {scores}")
    except Exception as e:
        import traceback
        traceback.print_exc()
        check("no exception", False, repr(e))
    finally:
        srv.terminate()
        srv.wait(timeout=60)
        if failures:
            sys.stdout.write(open(f"{d}/server.err").read()[-6000:])
    print(f"{checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
