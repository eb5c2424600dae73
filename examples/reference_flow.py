#!/usr/bin/env python3
"""The reference notebook's calls, in boto3, pointed at a kennel server.

  tuning job (learning_rate 0.001..0.1, batch_size 32..512, minimise
  "Test Loss", 2 jobs, 2 in parallel) -> describe it -> its best training
  job -> model -> endpoint configuration -> endpoint -> invoke it with a
  photo -> Application Auto Scaling (1..3, target tracking on invocations
  per instance, cooldowns in 300 s / out 30 s) -> the function
  (lambda_function.py beside this file) with reserved concurrency 5 and
  provisioned 2 on alias live -> invoke it.

Usage (credentials from the usual AWS_* variables, e.g. the key the server
printed or KENNEL_ROOT_* it was started with):

  python3 examples/reference_flow.py --endpoint-url http://127.0.0.1:8080 \\
      --data ../shared/data/pets-cats --backbone ../shared/data/models/mobilenet_v1_0.25_224.tflite \\
      --photo ../shared/data/images/cats_and_dogs.jpg --out /tmp/jobs

Against AWS, drop --endpoint-url and give s3:// data, an ECR training image and
real role ARNs: the calls are the same."""
import argparse
import base64
import io
import json
import os
import sys
import time
import zipfile

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
ROLE = "arn:aws:iam::123456789012:role/kennel-training"


def step(msg):
    print(f"== {msg}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint-url", default=os.environ.get("KENNEL_ENDPOINT"))
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--data", required=True, help="ImageFolder directory (file:// for kennel)")
    ap.add_argument("--backbone", required=True, help="backbone file for the built-in trainer")
    ap.add_argument("--photo", required=True)
    ap.add_argument("--out", required=True, help="where training jobs write their models")
    ap.add_argument("--epochs", default="5")
    ap.add_argument("--bootstrap", default=os.path.join(
        HERE, "..", "functions", "dog-breed-python", "bootstrap"),
        help="a Python custom-runtime bootstrap to run lambda_function.py")
    a = ap.parse_args()
    kw = dict(endpoint_url=a.endpoint_url, region_name=a.region)
    sm = boto3.client("sagemaker", **kw)
    rt = boto3.client("sagemaker-runtime", **kw)
    aas = boto3.client("application-autoscaling", **kw)
    lam = boto3.client("lambda", **kw)
    iam = boto3.client("iam", **kw)

    step("tuning job dog-hpo")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="dog-hpo",
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
            "StaticHyperParameters": {"backbone": os.path.abspath(a.backbone),
                                      "epochs": a.epochs, "split": "7,0,3", "seed": "0"},
            "AlgorithmSpecification": {
                "TrainingImage": "kennel", "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\.]+)"}]},
            "RoleArn": ROLE,
            "InputDataConfig": [{"ChannelName": "training", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": "file://" + os.path.abspath(a.data),
                "S3DataDistributionType": "FullyReplicated"}}}],
            "OutputDataConfig": {"S3OutputPath": "file://" + os.path.abspath(a.out)},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}})
    while True:
        desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="dog-hpo")
        if desc["HyperParameterTuningJobStatus"] not in ("InProgress", "Stopping"):
            break
        time.sleep(1)
    print("status:", desc["HyperParameterTuningJobStatus"])
    for j in sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="dog-hpo")["TrainingJobSummaries"]:
        print(f"trial {j['TrainingJobName']}: {j['TunedHyperParameters']} -> "
              f"{j['FinalHyperParameterTuningJobObjectiveMetric']['Value']:.4f}")
    best = desc["BestTrainingJob"]["TrainingJobName"]
    job = sm.describe_training_job(TrainingJobName=best)
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    print("best:", best, artifact)

    step("model, endpoint configuration, endpoint dog-ep")
    sm.create_model(ModelName="dog-model", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"ModelDataUrl": artifact})
    sm.create_endpoint_config(EndpointConfigName="dog-ep-config", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "dog-model", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}])
    sm.create_endpoint(EndpointName="dog-ep", EndpointConfigName="dog-ep-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="dog-ep",
                                              WaiterConfig={"Delay": 1, "MaxAttempts": 600})
    print("endpoint:", sm.describe_endpoint(EndpointName="dog-ep")["EndpointStatus"])

    step("invoke dog-ep")
    photo = open(a.photo, "rb").read()
    out = rt.invoke_endpoint(EndpointName="dog-ep", ContentType="image/jpeg",
                             Accept="application/json", Body=photo)
    scores = json.loads(out["Body"].read())
    print("scores:", json.dumps(scores))

    step("Application Auto Scaling: 1..3, target tracking, cooldowns in 300 s / out 30 s")
    rid = "endpoint/dog-ep/variant/AllTraffic"
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=rid,
                                 ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                 MinCapacity=1, MaxCapacity=3)
    p = aas.put_scaling_policy(
        PolicyName="dog-ep-invocations", ServiceNamespace="sagemaker", ResourceId=rid,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 70.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": 300, "ScaleOutCooldown": 30})
    print("policy:", p["PolicyARN"])
    t = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])
    st = t["ScalableTargets"][0]
    print(f"scalable target: {st['MinCapacity']}..{st['MaxCapacity']}")

    step("role dog-fn-role (invoke dog-ep only) and function dog-breed")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="dog-fn-role",
                           AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    ep_arn = sm.describe_endpoint(EndpointName="dog-ep")["EndpointArn"]
    iam.put_role_policy(RoleName="dog-fn-role", PolicyName="invoke-dog-ep",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                            "Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
                            "Resource": ep_arn}]}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(os.path.join(HERE, "lambda_function.py"), "lambda_function.py")
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, open(a.bootstrap, "rb").read())
    lam.create_function(FunctionName="dog-breed", Runtime="provided.al2023", Role=role,
                        Handler="lambda_function.lambda_handler", Code={"ZipFile": buf.getvalue()},
                        Timeout=60, Environment={"Variables": {"ENDPOINT_NAME": "dog-ep"}})
    v = lam.publish_version(FunctionName="dog-breed")["Version"]
    lam.create_alias(FunctionName="dog-breed", Name="live", FunctionVersion=v)
    lam.put_function_concurrency(FunctionName="dog-breed", ReservedConcurrentExecutions=5)
    lam.put_provisioned_concurrency_config(FunctionName="dog-breed", Qualifier="live",
                                           ProvisionedConcurrentExecutions=2)
    for _ in range(600):
        pc = lam.get_provisioned_concurrency_config(FunctionName="dog-breed", Qualifier="live")
        if pc["Status"] != "IN_PROGRESS":
            break
        time.sleep(0.2)
    print("reserved:", lam.get_function_concurrency(FunctionName="dog-breed")
          .get("ReservedConcurrentExecutions"), "provisioned:", pc["Status"],
          pc.get("AvailableProvisionedConcurrentExecutions"))

    step("invoke dog-breed:live with the photo")
    r = lam.invoke(FunctionName="dog-breed", Qualifier="live",
                   Payload=json.dumps({"image": base64.b64encode(photo).decode()}))
    answer = json.loads(r["Payload"].read())
    if r.get("FunctionError"):
        print("function error:", answer)
        return 1
    print("statusCode:", answer["statusCode"])
    print("body:", answer["body"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
