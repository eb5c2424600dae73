#!/usr/bin/env python3
"""kennel server driven by boto3 (Debian's python3-boto3 under /usr/bin/python3)
on a free loopback port, in a fresh data dir:
  - create_model -> create_endpoint_config (2 instances) -> create_endpoint ->
    the endpoint_in_service waiter -> invoke_endpoint with an image/jpeg body
    and with application/json {"url": ...} served by this test on loopback
    (same scores both ways) -> describe / list with pagination -> delete ->
    the endpoint_deleted waiter;
  - errors as botocore parses them: ValidationException for a missing
    endpoint, model and configuration; ValidationError for invoking a
    missing endpoint; ModelError with OriginalStatusCode/OriginalMessage;
    and, over raw HTTP, malformed JSON (SerializationException), an unknown
    X-Amz-Target (UnknownOperationException), a wrong credential scope
    (InvalidSignatureException), a malformed Authorization header, a body
    over 6 MiB (413);
  - kill -9 of one instance while requests are flowing: every request
    succeeds (retried on the other instance) and the instance is replaced;
    an instance stopped with SIGSTOP fails its health pings and is replaced;
  - UpdateEndpointWeightsAndCapacities: Updating -> InService at 3, then at 1
    instance (surplus processes stopped), a second update while Updating is
    refused; UpdateEndpoint to another configuration while requests flow (no
    request fails, traffic ends on the new variant); an update whose model
    does not load rolls back to the serving configuration.
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kn_testlib as lib  # noqa: E402

KN = os.environ.get("KN_BIN")
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
    try:
        import boto3
        import botocore.config
        from botocore.exceptions import ClientError, WaiterError
        from PIL import Image
    except ImportError as e:
        print(f"skip: {e} (needs python3-boto3 and python3-pil)")
        return 77
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(k, None)
    os.environ.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                      # the daemon seeds its administrator with the clients' key
                      KENNEL_ROOT_ACCESS_KEY_ID="AKIDEXAMPLE",
                      KENNEL_ROOT_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

    tmp = tempfile.TemporaryDirectory()
    d = tmp.name
    subprocess.run([KN, "model", "package", "--arch", "resnet18", "--init", "random",
                    "--classes", "5", "--seed", "5", "--out", f"{d}/pkg"],
                   check=True, stdout=subprocess.DEVNULL)
    Image.new("RGB", (80, 60), (10, 200, 90)).save(f"{d}/x.jpg", quality=90)
    jpeg = open(f"{d}/x.jpg", "rb").read()

    # an image server for {"url": ...} bodies
    img_srv = lib.serve_bytes({None: jpeg}, content_type="image/jpeg")

    ready = f"{d}/ready"
    log = open(f"{d}/server.err", "wb")
    srv = subprocess.Popen([KN, "server", "--data-dir", f"{d}/data", "--port", "0",
                            "--ready-file", ready, "--health-interval-ms", "300"],
                           stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(400):
            if os.path.exists(ready) and open(ready).read().strip():
                break
            time.sleep(0.025)
        port = int(open(ready).read().strip().rsplit(":", 1)[1])
        run(d, port, jpeg, img_srv.server_address[1], boto3, botocore.config, ClientError,
            WaiterError)
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(timeout=60)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = -1
        check("clean stop", rc == 0, f"rc={rc}")
        img_srv.shutdown()
        log.close()
        if failures or os.environ.get("KN_TEST_VERBOSE"):
            sys.stdout.write(open(f"{d}/server.err").read()[-4000:])
    print(f"{checks - failures} passed, {failures} failed")
    return 1 if failures else 0


def raw(port, target, body, headers=None, service="sagemaker", sign=True):
    """POST / with a JSON 1.1 body, signed by botocore's SigV4Auth with the
    administrator key (service names the credential scope) unless headers
    bring their own Authorization or sign is False."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Content-Type": "application/x-amz-json-1.1"}
    if target:
        h["X-Amz-Target"] = target
    h.update(headers or {})
    if sign and "Authorization" not in h:
        req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=body, headers=h)
        SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                  service, "us-east-1").add_auth(req)
        h = dict(req.headers.items())
    c.request("POST", "/", body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else {}


def run(d, port, jpeg, img_port, boto3, bconfig, ClientError, WaiterError):
    url = f"http://127.0.0.1:{port}"
    cfg = bconfig.Config(retries={"total_max_attempts": 1}, read_timeout=70)
    kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
              aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", config=cfg)
    sm = boto3.client("sagemaker", **kw)
    rt = boto3.client("sagemaker-runtime", **kw)
    role = "arn:aws:iam::123456789012:role/sm"

    def err(fn, **a):
        try:
            fn(**a)
        except ClientError as e:
            return e.response
        return None

    r = sm.create_model(ModelName="dog", ExecutionRoleArn=role,
                        PrimaryContainer={"Image": "kennel", "ModelDataUrl": f"{d}/pkg",
                                          "Environment": {"A": "1"}})
    check("create_model", r["ModelArn"].endswith(":model/dog"))
    r = sm.describe_model(ModelName="dog")
    check("describe_model", r["PrimaryContainer"]["Environment"] == {"A": "1"}, r)
    check("describe_model time", abs(r["CreationTime"].timestamp() - time.time()) < 60)
    for i in range(3):
        sm.create_model(ModelName=f"extra-{i}", ExecutionRoleArn=role,
                        PrimaryContainer={"ModelDataUrl": f"file://{d}/pkg"})
    names, token = [], None
    while True:
        a = {"MaxResults": 2, "SortBy": "Name", "SortOrder": "Ascending"}
        if token:
            a["NextToken"] = token
        page = sm.list_models(**a)
        names += [m["ModelName"] for m in page["Models"]]
        token = page.get("NextToken")
        if not token:
            break
    check("list_models pages", names == ["dog", "extra-0", "extra-1", "extra-2"], names)
    # (botocore checks these bounds itself, so they go over raw HTTP)
    s, b = raw(port, "SageMaker.ListModels", b'{"MaxResults": 500}')
    check("MaxResults bound", s == 400 and b.get("__type") == "ValidationException" and
          "'maxResults'" in b.get("message", ""), (s, b))
    e = err(sm.describe_model, ModelName="nope")
    check("describe missing model", e and e["Error"]["Code"] == "ValidationException" and
          'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/nope"' in
          e["Error"]["Message"], e and e["Error"])
    e = err(sm.create_endpoint_config, EndpointConfigName="c",
            ProductionVariants=[{"VariantName": "v", "ModelName": "nope",
                                 "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    check("config naming a missing model", e and "Could not find model" in e["Error"]["Message"])
    s, b = raw(port, "SageMaker.CreateEndpointConfig", json.dumps(
        {"EndpointConfigName": "c", "ProductionVariants": [
            {"VariantName": "v", "ModelName": "dog", "InitialInstanceCount": 0,
             "InstanceType": "ml.m5.large"}]}).encode())
    check("InitialInstanceCount 0", s == 400 and
          "'productionVariants.1.member.initialInstanceCount'" in b.get("message", ""), (s, b))

    sm.create_endpoint_config(
        EndpointConfigName="dog-cfg",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "dog",
                             "InitialInstanceCount": 2, "InstanceType": "ml.t2.medium",
                             "InitialVariantWeight": 1.0}])
    e = err(sm.create_endpoint, EndpointName="x", EndpointConfigName="nope")
    check("endpoint on a missing config", e and
          "Could not find endpoint configuration" in e["Error"]["Message"], e and e["Error"])
    r = sm.create_endpoint(EndpointName="dog-ep", EndpointConfigName="dog-cfg")
    check("create_endpoint", r["EndpointArn"].endswith(":endpoint/dog-ep"))
    e = err(sm.create_endpoint, EndpointName="DOG-EP", EndpointConfigName="dog-cfg")
    check("duplicate endpoint (any case)", e and
          "Cannot create already existing endpoint" in e["Error"]["Message"], e and e["Error"])
    sm.get_waiter("endpoint_in_service").wait(EndpointName="dog-ep",
                                              WaiterConfig={"Delay": 1, "MaxAttempts": 240})
    r = sm.describe_endpoint(EndpointName="dog-ep")
    check("InService", r["EndpointStatus"] == "InService", r["EndpointStatus"])
    v = r["ProductionVariants"][0]
    check("variant counts", v["CurrentInstanceCount"] == 2 and v["DesiredInstanceCount"] == 2, v)
    check("deployed image", v["DeployedImages"][0]["SpecifiedImage"] == "kennel", v)
    r = sm.list_endpoints(StatusEquals="InService")
    check("list_endpoints", [x["EndpointName"] for x in r["Endpoints"]] == ["dog-ep"], r)

    r = rt.invoke_endpoint(EndpointName="dog-ep", ContentType="image/jpeg", Body=jpeg,
                           Accept="application/json")
    rows = json.loads(r["Body"].read())
    check("jpeg invoke", len(rows) == 1 and len(rows[0]) == 5, rows)
    check("variant header", r["InvokedProductionVariant"] == "AllTraffic", r)
    r = rt.invoke_endpoint(EndpointName="dog-ep", ContentType="application/json",
                           Body=json.dumps({"url": f"http://127.0.0.1:{img_port}/x.jpg"}))
    rows2 = json.loads(r["Body"].read())
    check("url invoke gives the same scores", rows2 == rows, (rows, rows2))
    r = rt.invoke_endpoint(EndpointName="dog-ep", ContentType="image/jpeg", Body=jpeg,
                           TargetVariant="AllTraffic")
    check("target variant", r["InvokedProductionVariant"] == "AllTraffic")
    e = err(rt.invoke_endpoint, EndpointName="dog-ep", ContentType="image/jpeg", Body=jpeg,
            TargetVariant="Other")
    check("unknown target variant", e and e["Error"]["Code"] == "ValidationError", e)
    e = err(rt.invoke_endpoint, EndpointName="dog-ep", ContentType="image/jpeg",
            Body=b"not a jpeg")
    check("ModelError", e and e["Error"]["Code"] == "ModelError" and
          e["ResponseMetadata"]["HTTPStatusCode"] == 424 and e.get("OriginalStatusCode") == 400
          and e.get("OriginalMessage"), e)
    e = err(rt.invoke_endpoint, EndpointName="nope", ContentType="image/jpeg", Body=jpeg)
    check("invoke missing endpoint", e and e["Error"]["Code"] == "ValidationError" and
          "Endpoint nope of account 123456789012 not found." == e["Error"]["Message"], e)

    # raw protocol errors
    auth = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/{}/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
    s, b = raw(port, "SageMaker.DescribeEndpoint", b'{"EndpointName": "dog-ep"')
    check("bad JSON", s == 400 and b.get("__type") == "SerializationException", (s, b))
    s, b = raw(port, "SageMaker.DescribeEndpoint", b'{"EndpointName": 7}')
    check("wrong member type", s == 400 and b.get("__type") == "SerializationException" and
          "endpointName" in b.get("message", ""), (s, b))
    s, b = raw(port, "SageMaker.NoSuchThing", b"{}")
    check("unknown target", s == 400 and b.get("__type") == "UnknownOperationException", (s, b))
    s, b = raw(port, "SageMaker.DescribeEndpoint", b'{"EndpointName": "dog-ep"}',
               service="lambda")
    check("wrong service scope", s == 403 and b.get("__type") == "InvalidSignatureException",
          (s, b))
    s, b = raw(port, "SageMaker.DescribeEndpoint", b'{"EndpointName": "dog-ep"}', sign=False)
    check("unsigned request", s == 403 and
          b.get("__type") == "MissingAuthenticationTokenException", (s, b))
    s, b = raw(port, "SageMaker.DescribeEndpoint", b'{"EndpointName": "dog-ep"}',
               {"Authorization": auth.format("sagemaker"), "X-Amz-Date": "20261125T000000Z"})
    check("forged signature", s == 403 and b.get("__type") == "InvalidSignatureException",
          (s, b))
    s, b = raw(port, "SageMaker.DescribeEndpoint", b'{"EndpointName": "dog-ep"}',
               {"Authorization": "AWS4-HMAC-SHA256 Credential=x"})
    check("malformed Authorization", s == 400 and
          b.get("__type") == "IncompleteSignatureException", (s, b))
    s, b = raw(port, "SageMaker.DescribeEndpoint", b'{"EndpointName": "dog-ep"}')
    check("signed request", s == 200 and b.get("EndpointStatus") == "InService", (s, b))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/endpoints/dog-ep/invocations", body=b"\0" * (6 * 1024 * 1024 + 1),
              headers={"Content-Type": "image/jpeg"})
    r = c.getresponse()
    r.read()
    check("over 6 MiB is 413", r.status == 413, r.status)
    c.close()

    # kill -9 one instance while requests flow: none is lost, it is replaced
    pids = subprocess.run(["pgrep", "-f", "--", f"--ready-file {d}/data/instances/dog-ep/"],
                          capture_output=True, text=True).stdout.split()
    check("two instance processes", len(pids) == 2, pids)

    def one(_):
        try:
            r = rt.invoke_endpoint(EndpointName="dog-ep", ContentType="image/jpeg", Body=jpeg)
            return json.loads(r["Body"].read()) == rows
        except ClientError as e:
            print("lost request:", e.response["Error"], flush=True)
            return False

    with ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(one, i) for i in range(60)]
        time.sleep(0.2)
        if pids:
            os.kill(int(pids[0]), signal.SIGKILL)
        ok = [f.result() for f in futs]
    check("no request lost when an instance dies", all(ok), ok.count(False))
    replaced = False
    for _ in range(600):
        r = sm.describe_endpoint(EndpointName="dog-ep")
        now = subprocess.run(["pgrep", "-f", "--", f"--ready-file {d}/data/instances/dog-ep/"],
                             capture_output=True, text=True).stdout.split()
        if r["ProductionVariants"][0]["CurrentInstanceCount"] == 2 and pids[0] not in now \
                and len(now) == 2:
            replaced = True
            break
        time.sleep(0.1)
    check("instance replaced", replaced, now)
    check("still InService", r["EndpointStatus"] == "InService", r["EndpointStatus"])

    # an instance that hangs (SIGSTOP) fails its health pings and is replaced
    hung = now[0] if now else None
    if hung:
        os.kill(int(hung), signal.SIGSTOP)
    replaced = False
    for _ in range(600):
        now = subprocess.run(["pgrep", "-f", "--", f"--ready-file {d}/data/instances/dog-ep/"],
                             capture_output=True, text=True).stdout.split()
        r = sm.describe_endpoint(EndpointName="dog-ep")
        if hung not in now and len(now) == 2 and \
                r["ProductionVariants"][0]["CurrentInstanceCount"] == 2:
            replaced = True
            break
        time.sleep(0.1)
    check("hung instance replaced", replaced, now)
    r = rt.invoke_endpoint(EndpointName="dog-ep", ContentType="image/jpeg", Body=jpeg)
    check("serving after the hang", json.loads(r["Body"].read()) == rows)

    # capacity updates: scale out to 3, then in to 1 (drained), weights only
    def settle(want_status="InService"):
        for _ in range(1200):
            r = sm.describe_endpoint(EndpointName="dog-ep")
            if r["EndpointStatus"] == want_status:
                return r
            time.sleep(0.05)
        return r

    sm.update_endpoint_weights_and_capacities(
        EndpointName="dog-ep",
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}])
    r = sm.describe_endpoint(EndpointName="dog-ep")
    check("scale-out: Updating", r["EndpointStatus"] == "Updating", r["EndpointStatus"])
    e = err(sm.update_endpoint_weights_and_capacities, EndpointName="dog-ep",
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic",
                                          "DesiredInstanceCount": 2}])
    check("update while Updating refused", e and e["Error"]["Code"] == "ValidationException" and
          "Cannot update in-progress endpoint" in e["Error"]["Message"], e and e["Error"])
    r = settle()
    v = r["ProductionVariants"][0]
    check("scale-out: 3 instances", v["CurrentInstanceCount"] == 3 and
          v["DesiredInstanceCount"] == 3, v)
    sm.update_endpoint_weights_and_capacities(
        EndpointName="dog-ep",
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 1,
                                      "DesiredWeight": 2.0}])
    r = settle()
    v = r["ProductionVariants"][0]
    check("scale-in: 1 instance", v["CurrentInstanceCount"] == 1 and
          v["DesiredInstanceCount"] == 1 and v["DesiredWeight"] == 2.0, v)
    live = subprocess.run(["pgrep", "-f", "--", f"--ready-file {d}/data/instances/dog-ep/"],
                          capture_output=True, text=True).stdout.split()
    check("scale-in: surplus processes stopped", len(live) == 1, live)
    e = err(sm.update_endpoint_weights_and_capacities, EndpointName="dog-ep",
            DesiredWeightsAndCapacities=[{"VariantName": "Nope", "DesiredInstanceCount": 1}])
    check("unknown variant", e and e["Error"]["Code"] == "ValidationException", e)

    # UpdateEndpoint to another configuration while requests flow: none fails
    sm.create_endpoint_config(
        EndpointConfigName="blue-cfg",
        ProductionVariants=[{"VariantName": "Blue", "ModelName": "dog",
                             "InitialInstanceCount": 2, "InstanceType": "ml.t2.medium"}])
    stop = threading.Event()
    results = []

    def flow():
        while not stop.is_set():
            try:
                r = rt.invoke_endpoint(EndpointName="dog-ep", ContentType="image/jpeg",
                                       Body=jpeg)
                results.append(r["InvokedProductionVariant"])
            except ClientError as e:
                results.append("error: " + str(e.response["Error"]))
    t = threading.Thread(target=flow)
    t.start()
    sm.update_endpoint(EndpointName="dog-ep", EndpointConfigName="blue-cfg")
    r = settle()
    time.sleep(0.3)
    stop.set()
    t.join()
    check("update: new config", r["EndpointConfigName"] == "blue-cfg" and
          [(v["VariantName"], v["CurrentInstanceCount"]) for v in r["ProductionVariants"]] ==
          [("Blue", 2)], r)
    check("update: no failed request", results and
          not [x for x in results if x.startswith("error")], set(results))
    check("update: traffic moved to the new variant", results and results[-1] == "Blue",
          results[-3:])
    # an update whose model does not load rolls back
    os.makedirs(f"{d}/broken", exist_ok=True)
    with open(f"{d}/broken/model.json", "w") as fp:
        fp.write('{"arch": "resnet18", "num_classes": 5}')
    sm.create_model(ModelName="broken", ExecutionRoleArn=role,
                    PrimaryContainer={"ModelDataUrl": f"{d}/broken"})
    sm.create_endpoint_config(
        EndpointConfigName="broken-cfg",
        ProductionVariants=[{"VariantName": "Bad", "ModelName": "broken",
                             "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium"}])
    sm.update_endpoint(EndpointName="dog-ep", EndpointConfigName="broken-cfg")
    time.sleep(0.1)
    r = settle()
    check("failed update rolled back", r["EndpointConfigName"] == "blue-cfg" and
          r["ProductionVariants"][0]["VariantName"] == "Blue" and
          r["ProductionVariants"][0]["CurrentInstanceCount"] == 2, r)
    r = rt.invoke_endpoint(EndpointName="dog-ep", ContentType="image/jpeg", Body=jpeg)
    check("serving after the rollback", r["InvokedProductionVariant"] == "Blue")

    # Prometheus text at /metrics
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    check("/metrics is Prometheus text", r.status == 200 and
          r.getheader("Content-Type", "").startswith("text/plain"), r.status)
    import re
    bad = [ln for ln in text.splitlines() if ln and not ln.startswith("#") and
           not re.fullmatch(r'[a-z_]+(\{[^{}]*\})? -?[0-9.e+]+', ln)]
    check("/metrics lines well formed", not bad, bad[:3])
    vals = {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
            if ln and not ln.startswith("#")}
    key = 'kennel_endpoint_invocations_total{endpoint="dog-ep",variant="Blue"}'
    check("/metrics counts invocations", vals.get(key, 0) > 0, key)
    check("/metrics instances", vals.get('kennel_endpoint_instances{endpoint="dog-ep",'
                                         'variant="Blue",state="ready"}') == 2, text[-800:])
    check("/metrics status", vals.get('kennel_endpoint_status{endpoint="dog-ep",'
                                      'status="InService"}') == 1)
    # sequential requests are spread over both instances (least outstanding
    # requests, ties taken in turn)
    before = {k: v for k, v in vals.items() if k.startswith("kennel_instance_invocations_total")}
    for _ in range(10):
        rt.invoke_endpoint(EndpointName="dog-ep", ContentType="image/jpeg", Body=jpeg)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    after = {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
             if ln.startswith("kennel_instance_invocations_total")}
    grew = [k for k in after if after[k] > before.get(k, 0)]
    check("both instances served", len(after) == 2 and len(grew) == 2, (before, after))

    sm.delete_endpoint(EndpointName="dog-ep")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="dog-ep",
                                           WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    e = err(sm.describe_endpoint, EndpointName="dog-ep")
    check("deleted endpoint", e and e["Error"]["Code"] == "ValidationException", e)
    e = err(sm.delete_endpoint, EndpointName="dog-ep")
    check("delete missing endpoint", e and e["Error"]["Code"] == "ValidationException", e)
    sm.delete_endpoint_config(EndpointConfigName="dog-cfg")
    e = err(sm.describe_endpoint_config, EndpointConfigName="dog-cfg")
    check("deleted config", e and e["Error"]["Code"] == "ValidationException", e)
    sm.delete_model(ModelName="dog")


if __name__ == "__main__":
    sys.exit(main())
