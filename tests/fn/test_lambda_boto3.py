"""Lambda functions on a kennel server through boto3 (Debian's python3-boto3):

  - the concurrency proof: a function that sleeps, published, alias `live`,
    reserved 5, provisioned 2 on live, READY; 10 simultaneous invokes of
    live -> exactly 5 succeed and 5 get 429 TooManyRequestsException with
    Reason ReservedFunctionConcurrentInvocationLimitExceeded and Retry-After;
    2 of the successes ran on provisioned environments with no Init
    Duration in their log tail; after DeleteFunctionConcurrency all 10
    succeed;
  - the reference function: an endpoint is deployed (random-init resnet18,
    7 classes), the C dog-breed function (built with kn_runtime, zipped by
    `kennel function package`) is created with ENDPOINT_NAME, published,
    aliased `live`, given reserved 5 and provisioned 2, READY, and invoked
    with {"image": base64 JPEG} and {"url": ...}: statusCode 200, the
    reference headers, and a body with one row of 7 scores;
  - the same through functions/dog-breed-python (boto3 handler behind a
    Python bootstrap), when boto3 is importable by /usr/bin/python3.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kn_testlib as lib  # noqa: E402

KN = os.environ.get("KN_BIN")
BUILD = os.environ.get("KN_BUILD_DIR", "")
SRC = os.environ.get("KN_SOURCE_DIR", "")
checks = failures = 0


def check(name, cond, detail=""):
    global checks, failures
    checks += 1
    if not cond:
        failures += 1
        print(f"FAIL: {name} {detail}")


def main():
    if not KN:
        print("KN_BIN not set")
        return 1
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
                      AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
                      AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    os.environ["KENNEL_ROOT_ACCESS_KEY_ID"] = os.environ["AWS_ACCESS_KEY_ID"]
    os.environ["KENNEL_ROOT_SECRET_ACCESS_KEY"] = os.environ["AWS_SECRET_ACCESS_KEY"]

    tmp = tempfile.TemporaryDirectory()
    d = tmp.name
    subprocess.run([KN, "model", "package", "--arch", "resnet18", "--init", "random",
                    "--classes", "7", "--seed", "4", "--out", f"{d}/pkg"],
                   check=True, stdout=subprocess.DEVNULL)
    Image.new("RGB", (64, 48), (200, 120, 30)).save(f"{d}/x.jpg", quality=90)
    jpeg = open(f"{d}/x.jpg", "rb").read()

    img_srv = lib.serve_bytes({None: jpeg}, content_type="image/jpeg")

    zips = {}
    for name in ("testfn", "dog-breed"):
        os.makedirs(f"{d}/{name}")
        shutil.copy(f"{BUILD}/functions/{name}/bootstrap", f"{d}/{name}/bootstrap")
        subprocess.run([KN, "function", "package", f"{d}/{name}", "--out", f"{d}/{name}.zip"],
                       check=True, stdout=subprocess.DEVNULL)
        zips[name] = open(f"{d}/{name}.zip", "rb").read()
    py_dir = os.path.join(SRC, "functions", "dog-breed-python")
    if os.path.isdir(py_dir):
        subprocess.run([KN, "function", "package", py_dir, "--out", f"{d}/py.zip"],
                       check=True, stdout=subprocess.DEVNULL)
        zips["python"] = open(f"{d}/py.zip", "rb").read()

    ready = f"{d}/ready"
    log = open(f"{d}/server.err", "wb")
    srv = subprocess.Popen([KN, "server", "--data-dir", f"{d}/data", "--port", "0",
                            "--ready-file", ready], stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(400):
            if os.path.exists(ready) and open(ready).read().strip():
                break
            time.sleep(0.025)
        port = int(open(ready).read().strip().rsplit(":", 1)[1])
        run(d, port, zips, jpeg, img_srv.server_address[1], boto3, botocore.config, ClientError)
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


def wait_ready(lam, name, qual):
    for _ in range(400):
        r = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qual)
        if r["Status"] != "IN_PROGRESS":
            return r
        time.sleep(0.05)
    return r


def run(d, port, zips, jpeg, img_port, boto3, bconfig, ClientError):
    cfg = bconfig.Config(retries={"max_attempts": 0}, read_timeout=120, parameter_validation=False,
                         max_pool_connections=32)
    url = f"http://127.0.0.1:{port}"
    lam = boto3.client("lambda", endpoint_url=url, region_name="us-east-1", config=cfg)
    sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1", config=cfg)
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", config=cfg)
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
         "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="dog-role",
                           AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    # least privilege, as the reference's write-up argues: invoke the one endpoint
    iam.put_role_policy(RoleName="dog-role", PolicyName="invoke-dog-ep", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
             "Resource": "arn:aws:sagemaker:*:*:endpoint/dog-ep"}]}))

    # ---- concurrency proof
    lam.create_function(FunctionName="sleepy", Runtime="provided.al2023", Role=role,
                        Handler="bootstrap", Timeout=30, Code={"ZipFile": zips["testfn"]})
    v = lam.publish_version(FunctionName="sleepy")["Version"]
    lam.create_alias(FunctionName="sleepy", Name="live", FunctionVersion=v)
    lam.put_function_concurrency(FunctionName="sleepy", ReservedConcurrentExecutions=5)
    r = lam.put_provisioned_concurrency_config(FunctionName="sleepy", Qualifier="live",
                                               ProvisionedConcurrentExecutions=2)
    check("put provisioned: 202 shape", r["RequestedProvisionedConcurrentExecutions"] == 2, r)
    r = wait_ready(lam, "sleepy", "live")
    check("provisioned READY", r["Status"] == "READY", r)
    lst = lam.list_provisioned_concurrency_configs(FunctionName="sleepy")
    check("list provisioned", len(lst["ProvisionedConcurrencyConfigs"]) == 1, lst)

    # ---- listings page: MaxItems / Marker / NextMarker, functions by name
    for n in ("page-c", "page-a", "page-b"):
        lam.create_function(FunctionName=n, Runtime="provided.al2023", Role=role,
                            Handler="bootstrap", Code={"ZipFile": zips["testfn"]})
    want = ["page-a", "page-b", "page-c", "sleepy"]
    p1 = lam.list_functions(MaxItems=3)
    check("first page: 3 functions by name and a NextMarker",
          [f["FunctionName"] for f in p1["Functions"]] == want[:3] and "NextMarker" in p1, p1)
    p2 = lam.list_functions(MaxItems=3, Marker=p1["NextMarker"])
    check("last page: the rest, no NextMarker",
          [f["FunctionName"] for f in p2["Functions"]] == want[3:] and "NextMarker" not in p2, p2)
    got = [f["FunctionName"] for page in lam.get_paginator("list_functions").paginate(
        PaginationConfig={"PageSize": 1}) for f in page["Functions"]]
    check("boto3's paginator sees each function once", got == want, got)
    v1 = lam.list_versions_by_function(FunctionName="sleepy", MaxItems=1)
    v2 = lam.list_versions_by_function(FunctionName="sleepy", Marker=v1.get("NextMarker", "0"))
    check("versions page", [x["Version"] for x in v1["Versions"] + v2["Versions"]] ==
          ["$LATEST", "1"] and "NextMarker" not in v2, (v1, v2))
    for kw, code in (({"MaxItems": 0}, "ValidationException"),
                     ({"MaxItems": 10001}, "ValidationException"),
                     ({"Marker": "not-a-marker"}, "InvalidParameterValueException"),
                     ({"Marker": "99"}, "InvalidParameterValueException")):
        try:
            lam.list_functions(**kw)
            check(f"list_functions {kw} refused", False)
        except ClientError as e:
            check(f"list_functions {kw}: {code}", e.response["Error"]["Code"] == code,
                  e.response["Error"])
    for n in ("page-a", "page-b", "page-c"):
        lam.delete_function(FunctionName=n)

    def burst(n, sleep_ms):
        results = [None] * n
        barrier = threading.Barrier(n)

        def one(i):
            c = boto3.client("lambda", endpoint_url=url, region_name="us-east-1", config=cfg)
            barrier.wait()
            try:
                r = c.invoke(FunctionName="sleepy", Qualifier="live", LogType="Tail",
                             Payload=json.dumps({"sleep_ms": sleep_ms}))
                results[i] = ("ok", json.loads(r["Payload"].read()),
                              base64.b64decode(r["LogResult"]).decode())
            except ClientError as e:
                results[i] = ("err", e.response, None)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return results

    res = burst(10, 1500)
    ok = [r for r in res if r[0] == "ok"]
    thr = [r for r in res if r[0] == "err"]
    check("10 on live: exactly 5 succeed", len(ok) == 5, [r[0] for r in res])
    check("10 on live: 5 throttled", len(thr) == 5)
    for r in thr:
        e = r[1]
        check("429 TooManyRequestsException",
              e["Error"]["Code"] == "TooManyRequestsException" and
              e["ResponseMetadata"]["HTTPStatusCode"] == 429, e["Error"])
        reason = e.get("Reason") or e["Error"].get("Reason")
        check("Reason", reason == "ReservedFunctionConcurrentInvocationLimitExceeded", e)
        check("Retry-After", "retry-after" in e["ResponseMetadata"]["HTTPHeaders"],
              e["ResponseMetadata"]["HTTPHeaders"])
    prov = [r for r in ok if r[1].get("init") == "provisioned-concurrency"]
    check("2 ran on provisioned environments", len(prov) == 2, [r[1] for r in ok])
    check("provisioned: no Init Duration", all("Init Duration" not in r[2] for r in prov),
          [r[2] for r in prov])
    check("on demand: Init Duration", all("Init Duration" in r[2] for r in ok
                                          if r not in prov), [r[2] for r in ok])
    lam.delete_function_concurrency(FunctionName="sleepy")
    res = burst(10, 500)
    check("without reserved: all 10 succeed", all(r[0] == "ok" for r in res),
          [r[1] if r[0] == "err" else "ok" for r in res])
    e = None
    try:
        lam.put_provisioned_concurrency_config(FunctionName="sleepy", Qualifier="live",
                                               ProvisionedConcurrentExecutions=0)
    except ClientError as x:
        e = x.response
    check("provisioned 0: ValidationException", e and
          "Member must have value greater than or equal to 1" in e["Error"]["Message"], e)

    # ---- the reference function against a deployed endpoint
    sm.create_model(ModelName="dog", ExecutionRoleArn=role,
                    PrimaryContainer={"Image": "kennel", "ModelDataUrl": f"{d}/pkg"})
    sm.create_endpoint_config(
        EndpointConfigName="dog-cfg",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "dog",
                             "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium"}])
    sm.create_endpoint(EndpointName="dog-ep", EndpointConfigName="dog-cfg")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="dog-ep",
                                              WaiterConfig={"Delay": 1, "MaxAttempts": 240})
    variants = [("dog-fn", zips["dog-breed"], 128)]
    if "python" in zips:
        variants.append(("dog-fn-py", zips["python"], 1024))
    for name, z, mem in variants:
        lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=role,
                            Handler="lambda_function.lambda_handler", Timeout=60, MemorySize=mem,
                            Environment={"Variables": {"ENDPOINT_NAME": "dog-ep"}},
                            Code={"ZipFile": z})
        v = lam.publish_version(FunctionName=name)["Version"]
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion=v)
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
        lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live",
                                               ProvisionedConcurrentExecutions=2)
        r = wait_ready(lam, name, "live")
        check(f"{name}: provisioned READY", r["Status"] == "READY", r)
        for event in ({"image": base64.b64encode(jpeg).decode()},
                      {"url": f"http://127.0.0.1:{img_port}/dog.jpg"}):
            r = lam.invoke(FunctionName=name, Qualifier="live", Payload=json.dumps(event))
            body = json.loads(r["Payload"].read())
            check(f"{name}: no function error", "FunctionError" not in r, body)
            check(f"{name}: statusCode 200", body.get("statusCode") == 200, body)
            h = body.get("headers", {})
            check(f"{name}: headers", h.get("Content-Type") == "text/plain" and
                  h.get("Access-Control-Allow-Origin") == "*", h)
            try:
                rows = json.loads(body.get("body", ""))
            except ValueError:
                rows = None
            check(f"{name}: one row of 7 scores", isinstance(rows, list) and len(rows) == 1 and
                  len(rows[0]) == 7, body)
        r = lam.invoke(FunctionName=name, Qualifier="live", Payload=b'{"nothing": 1}')
        check(f"{name}: bad event is a function error", r.get("FunctionError") == "Unhandled",
              r.get("FunctionError"))


if __name__ == "__main__":
    sys.exit(main())
