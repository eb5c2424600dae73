#!/usr/bin/env python3
"""Application Auto Scaling of an endpoint variant on the accelerated clock
(kennel server --clock-rate 60: a clock minute lasts one real second).

The AWS CLI v2 registers the variant (min 1, max 3) and puts the reference
project's target-tracking policy (SageMakerVariantInvocationsPerInstance,
scale-out cooldown 30 s, scale-in cooldown 300 s); boto3 drives load and
reads the outcome. Checked against AWS's rules, in clock time:
  - no scale-out before three whole minutes above the target have passed
    since the load began; the endpoint reaches more than one instance;
  - the desired count is never above MaxCapacity (3), polled throughout and
    in every activity;
  - every scale-out follows 3 recorded one-minute datapoints above the
    target and every scale-in 15 below 0.9 x target (the per-minute series
    from GET /kennel/endpoints/NAME/metrics; no datapoint counts as 0);
    scale-ins are at least ScaleInCooldown apart; the variant ends at
    MinCapacity;
  - activities are newest first, have AWS's shape, and end Successful or
    Overridden; the CLI's describe-scaling-activities shows the same ones;
  - describe/delete of policies and targets, and the AWS errors for an
    unregistered target (ObjectNotFoundException) and another namespace
    (ValidationException).
"""
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

KN = os.environ.get("KN_BIN")
AWS = "/usr/bin/aws"
RATE = 60
failures = 0
checks = 0


def check(name, cond, detail=""):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print(f"FAIL: {name} {detail}", flush=True)
    return cond


def main():
    if not KN:
        print("KN_BIN not set")
        return 1
    if not os.access(AWS, os.X_OK):
        print("skip: /usr/bin/aws (Debian awscli) is not installed")
        return 77
    try:
        import boto3
        import botocore.config
        from botocore.exceptions import ClientError
        from PIL import Image
    except ImportError as e:
        print(f"skip: {e} (needs python3-boto3 and python3-pil)")
        return 77
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(k, None)
    os.environ.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                      AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_PAGER="", AWS_MAX_ATTEMPTS="1",
                      AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                      KENNEL_ROOT_ACCESS_KEY_ID="AKIDEXAMPLE",
                      KENNEL_ROOT_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    tmp = tempfile.TemporaryDirectory()
    d = tmp.name
    subprocess.run([KN, "model", "package", "--arch", "resnet18", "--init", "random",
                    "--classes", "5", "--seed", "9", "--out", f"{d}/pkg"], check=True,
                   stdout=subprocess.DEVNULL)
    Image.new("RGB", (64, 48), (200, 100, 50)).save(f"{d}/x.jpg")
    ready = f"{d}/ready"
    log = open(f"{d}/server.err", "wb")
    state = {}

    def start():
        if os.path.exists(ready):
            os.unlink(ready)
        state["srv"] = subprocess.Popen([KN, "server", "--data-dir", f"{d}/data", "--port", "0",
                                         "--ready-file", ready, "--clock-rate", str(RATE)],
                                        stdout=subprocess.DEVNULL, stderr=log)
        for _ in range(400):
            if os.path.exists(ready) and open(ready).read().strip():
                break
            time.sleep(0.025)
        return int(open(ready).read().strip().rsplit(":", 1)[1])

    def restart():
        state["srv"].kill()  # SIGKILL
        state["srv"].wait()
        return start()

    try:
        run(d, start(), restart, boto3, botocore.config, ClientError)
    finally:
        srv = state["srv"]
        srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(timeout=60)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = -1
        check("clean stop", rc == 0, f"rc={rc}")
        log.close()
        if failures or os.environ.get("KN_TEST_VERBOSE"):
            sys.stdout.write(open(f"{d}/server.err").read()[-6000:])
    print(f"{checks - failures} passed, {failures} failed")
    return 1 if failures else 0


def run(d, port, restart, boto3, bconfig, ClientError):
    def clients(port):
        url = f"http://127.0.0.1:{port}"
        kw = dict(endpoint_url=url, region_name="us-east-1",
                  config=bconfig.Config(retries={"total_max_attempts": 1}))
        return (url, boto3.client("sagemaker", **kw), boto3.client("sagemaker-runtime", **kw),
                boto3.client("application-autoscaling", **kw),
                [AWS, "--endpoint-url", url, "--region", "us-east-1", "--output", "json"])
    url, sm, rt, aas, cli = clients(port)

    def clock():
        with urllib.request.urlopen(f"{url}/kennel/health") as r:
            return json.load(r)["clock"]

    sm.create_model(ModelName="dog", ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
                    PrimaryContainer={"ModelDataUrl": f"{d}/pkg"})
    sm.create_endpoint_config(
        EndpointConfigName="cfg",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "dog",
                             "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium"}])
    sm.create_endpoint(EndpointName="dog-ep", EndpointConfigName="cfg")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="dog-ep",
                                              WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})
    rid = "endpoint/dog-ep/variant/AllTraffic"
    dim = "sagemaker:variant:DesiredInstanceCount"

    # errors before registration
    try:
        aas.put_scaling_policy(
            PolicyName="p", ServiceNamespace="sagemaker", ResourceId=rid, ScalableDimension=dim,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 10.0, "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
        check("policy on an unregistered target refused", False)
    except ClientError as e:
        check("policy on an unregistered target refused",
              e.response["Error"]["Code"] == "ObjectNotFoundException", e.response["Error"])
    try:
        aas.register_scalable_target(ServiceNamespace="ecs", ResourceId="service/x/y",
                                     ScalableDimension="ecs:service:DesiredCount",
                                     MinCapacity=1, MaxCapacity=2)
        check("other namespace refused", False)
    except ClientError as e:
        check("other namespace refused", e.response["Error"]["Code"] == "ValidationException"
              and "Unsupported service namespace" in e.response["Error"]["Message"])
    r = subprocess.run(cli + ["application-autoscaling", "register-scalable-target",
                              "--service-namespace", "sagemaker", "--resource-id",
                              "endpoint/nope/variant/AllTraffic", "--scalable-dimension", dim,
                              "--min-capacity", "1", "--max-capacity", "3"],
                       capture_output=True, text=True)
    check("register on a missing endpoint refused", r.returncode != 0 and
          "ValidationException" in r.stderr, r.stderr)

    # the reference project's scaling setup, through the CLI
    r = subprocess.run(cli + ["application-autoscaling", "register-scalable-target",
                              "--service-namespace", "sagemaker", "--resource-id", rid,
                              "--scalable-dimension", dim, "--min-capacity", "1",
                              "--max-capacity", "3"], capture_output=True, text=True)
    check("cli register-scalable-target", r.returncode == 0, r.stderr)
    policy = {"TargetValue": 10.0,
              "PredefinedMetricSpecification": {
                  "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
              "ScaleInCooldown": 300, "ScaleOutCooldown": 30}
    r = subprocess.run(cli + ["application-autoscaling", "put-scaling-policy",
                              "--policy-name", "dog-scaling", "--service-namespace",
                              "sagemaker", "--resource-id", rid, "--scalable-dimension", dim,
                              "--policy-type", "TargetTrackingScaling",
                              "--target-tracking-scaling-policy-configuration",
                              json.dumps(policy)], capture_output=True, text=True)
    check("cli put-scaling-policy", r.returncode == 0, r.stderr)
    out = json.loads(r.stdout or "{}")
    check("policy ARN and two alarms", ":policyName/dog-scaling" in out.get("PolicyARN", "") and
          [a["AlarmName"].split("-")[-6] for a in out.get("Alarms", [])] ==
          ["AlarmHigh", "AlarmLow"], out)
    t = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    check("describe_scalable_targets", len(t) == 1 and t[0]["MinCapacity"] == 1 and
          t[0]["MaxCapacity"] == 3 and t[0]["ResourceId"] == rid, t)
    p = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=rid)
    p = p["ScalingPolicies"]
    check("describe_scaling_policies", len(p) == 1 and
          p[0]["TargetTrackingScalingPolicyConfiguration"]["ScaleInCooldown"] == 300, p)

    # load: one client in a loop, about 20 requests per real second (well
    # above 10 per instance per clock minute), while a poller watches the
    # desired count
    jpeg = open(f"{d}/x.jpg", "rb").read()
    seen = []
    stop_poll = threading.Event()

    def poll():
        while not stop_poll.is_set():
            v = sm.describe_endpoint(EndpointName="dog-ep")["ProductionVariants"][0]
            seen.append((v["DesiredInstanceCount"], v["CurrentInstanceCount"]))
            time.sleep(0.1)
    poller = threading.Thread(target=poll)
    poller.start()
    load_start = clock()
    lost = 0
    # at least 8 s (8 clock minutes); on a busy machine requests are slower,
    # so go on until the scale-out has happened (at most 60 s)
    end, limit = time.time() + 8, time.time() + 60
    while time.time() < end or (time.time() < limit and
                                not (seen and max(x[0] for x in seen) > 1)):
        try:
            rt.invoke_endpoint(EndpointName="dog-ep", ContentType="image/jpeg", Body=jpeg)
        except ClientError as e:
            lost += 1
            print("lost:", e.response["Error"])
        time.sleep(0.02)
    load_end = clock()
    check("no request failed while scaling", lost == 0, lost)
    stop_poll.set()
    poller.join()

    # kill -9 the daemon while scaled out: the restart keeps the desired
    # count, and the clock and the autoscaler continue from what is stored
    desired = sm.describe_endpoint(EndpointName="dog-ep")["ProductionVariants"][0][
        "DesiredInstanceCount"]
    check("scaled out before the restart", desired > 1, desired)
    latest = max(a["StartTime"].timestamp() for a in aas.describe_scaling_activities(
        ServiceNamespace="sagemaker")["ScalingActivities"])
    url, sm, rt, aas, cli = clients(restart())
    check("clock continues from the stored times", clock() >= latest, (clock(), latest))
    back = None
    for _ in range(600):
        r = sm.describe_endpoint(EndpointName="dog-ep")
        v = r["ProductionVariants"][0]
        if r["EndpointStatus"] == "InService" and v["CurrentInstanceCount"] >= desired:
            back = v
            break
        if v["DesiredInstanceCount"] < desired:  # already scaled in: also fine
            back = v
            break
        time.sleep(0.05)
    check("after the restart: instances back", back is not None, r)
    stop_poll.clear()
    poller = threading.Thread(target=poll)
    poller.start()

    # wait for scale-in to MinCapacity (15 clock minutes + a little)
    deadline = time.time() + 60
    while time.time() < deadline:
        r = sm.describe_endpoint(EndpointName="dog-ep")
        v = r["ProductionVariants"][0]
        if r["EndpointStatus"] == "InService" and v["DesiredInstanceCount"] == 1 and \
                v["CurrentInstanceCount"] == 1 and max(s[0] for s in seen) > 1:
            break
        time.sleep(0.2)
    stop_poll.set()
    poller.join()
    check("scaled out under load", max(s[0] for s in seen) > 1, seen[-5:])
    check("scaled in after the restart", v["DesiredInstanceCount"] == 1, v)
    check("never above MaxCapacity", max(max(s) for s in seen) <= 3, max(max(s) for s in seen))
    check("back at MinCapacity", v["DesiredInstanceCount"] == 1 and
          v["CurrentInstanceCount"] == 1, v)

    acts = aas.describe_scaling_activities(ServiceNamespace="sagemaker",
                                           ResourceId=rid)["ScalingActivities"]
    starts = [a["StartTime"].timestamp() for a in acts]
    check("newest first", starts == sorted(starts, reverse=True), starts)
    acts = list(reversed(acts))
    counts = []
    for a in acts:
        m = re.fullmatch(r"Setting desired instance count to (\d+)\.", a["Description"])
        check("activity description", m is not None, a["Description"])
        counts.append(int(m.group(1)) if m else -1)
        check("activity shape", a["ServiceNamespace"] == "sagemaker" and
              a["ResourceId"] == rid and a["ScalableDimension"] == dim and
              "triggered policy dog-scaling" in a["Cause"], a)
        check("activity ended", a["StatusCode"] in ("Successful", "Overridden") and
              "EndTime" in a, a)
    check("activities never above 3", counts and max(counts) <= 3, counts)
    outs = [(t, c) for t, c, a in zip(starts[::-1], counts, acts) if "AlarmHigh" in a["Cause"]]
    ins = [(t, c) for t, c, a in zip(starts[::-1], counts, acts) if "AlarmLow" in a["Cause"]]
    m0 = math.floor(load_start / 60)
    check("no scale-out before 3 minutes above target", outs and
          outs[0][0] >= (m0 + 3) * 60, (outs, load_start))
    check("scale-in only after the load", ins and ins[0][0] > outs[-1][0], (ins, outs))
    check("scale-ins at least 300 s apart",
          all(b[0] - a[0] >= 300 for a, b in zip(ins, ins[1:])), ins)

    # each decision against the per-minute series the daemon recorded: an
    # activity at the end of minute M needs minutes M-2..M above the target
    # (scale-out) or M-14..M below 0.9 x target (scale-in; no datapoint = 0)
    # kennel's own metrics route is authorized as sagemaker:DescribeEndpoint: sign it
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    areq = AWSRequest(method="GET", url=f"{url}/kennel/endpoints/dog-ep/metrics?minutes=600")
    SigV4Auth(Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]),
              "sagemaker", "us-east-1").add_auth(areq)
    with urllib.request.urlopen(urllib.request.Request(areq.url,
                                                       headers=dict(areq.headers.items()))) as r:
        series = json.load(r)["Variants"]["AllTraffic"]
    per_min = {p["Minute"] // 60: p["InvocationsPerInstance"] for p in series}
    check("metrics recorded", sum(p["Invocations"] for p in series) > 0 and
          all(p["InstanceCount"] >= 1 for p in series), series[:3])
    for t, c in outs:
        last = int(t // 60) - 1
        pts = [per_min.get(m, 0.0) for m in range(last - 2, last + 1)]
        check("scale-out had 3 datapoints above 10", all(p > 10 for p in pts), (t, pts))
    for t, c in ins:
        last = int(t // 60) - 1
        pts = [per_min.get(m, 0.0) for m in range(last - 14, last + 1)]
        check("scale-in had 15 datapoints below 9", all(p < 9 for p in pts), (t, pts))

    r = subprocess.run(cli + ["application-autoscaling", "describe-scaling-activities",
                              "--service-namespace", "sagemaker", "--resource-id", rid],
                       capture_output=True, text=True)
    cli_acts = json.loads(r.stdout or "{}").get("ScalingActivities", [])
    check("cli describe-scaling-activities", r.returncode == 0 and
          [a["ActivityId"] for a in cli_acts] == [a["ActivityId"] for a in reversed(acts)],
          r.stderr)

    aas.delete_scaling_policy(PolicyName="dog-scaling", ServiceNamespace="sagemaker",
                              ResourceId=rid, ScalableDimension=dim)
    check("policy deleted", aas.describe_scaling_policies(
        ServiceNamespace="sagemaker")["ScalingPolicies"] == [])
    try:
        aas.delete_scaling_policy(PolicyName="dog-scaling", ServiceNamespace="sagemaker",
                                  ResourceId=rid, ScalableDimension=dim)
        check("second delete refused", False)
    except ClientError as e:
        check("second delete refused", e.response["Error"]["Code"] == "ObjectNotFoundException")
    aas.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=rid,
                                   ScalableDimension=dim)
    check("target deregistered", aas.describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"] == [])
    sm.delete_endpoint(EndpointName="dog-ep")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="dog-ep",
                                           WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})


if __name__ == "__main__":
    sys.exit(main())
