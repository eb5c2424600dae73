#!/usr/bin/python3
"""IAM, STS and SigV4 on a real kennel server, driven by the AWS CLI v2
(/usr/bin/aws) and boto3 (Debian's, under /usr/bin/python3).

- first start: the administrator key comes from KENNEL_ROOT_*; it is written
  to DATA/admin-credentials with mode 0600, and the secret is not stored in
  clear in kennel.db;
- the admin creates a role trusting lambda.amazonaws.com (and the account)
  with an inline policy allowing only sagemaker:InvokeEndpoint on dog-ep;
  CreateRole twice is EntityAlreadyExists; a malformed policy is
  MalformedPolicyDocument naming the problem; GetRole/GetRolePolicy give the
  documents back;
- STS AssumeRole of that role: the session invokes dog-ep (a real endpoint)
  and gets AccessDeniedException with AWS's exact message on cat-ep;
  GetCallerIdentity names the assumed-role session; a role trusting only
  lambda cannot be assumed by the admin (AccessDenied);
- the dog-breed function created with that role (its environment holds
  the role's session credentials) answers from dog-ep and reports cat-ep's
  AccessDeniedException (when the function build and Lambda routes exist);
- a user with no policy gets AccessDeniedException from `aws lambda invoke`
  (lambda:InvokeFunction; when Lambda routes exist), from InvokeEndpoint and
  from IAM; after AttachUserPolicy it is allowed;
- a wrong secret: InvalidSignatureException (JSON) / SignatureDoesNotMatch
  (IAM Query); an unknown key: UnrecognizedClientException /
  InvalidClientTokenId; a request signed 20 minutes ago is refused; a
  session token that expired: ExpiredTokenException; a wrong token:
  UnrecognizedClientException;
- CreateModel with an ExecutionRoleArn needs iam:PassRole on that role (with
  iam:PassedToService = sagemaker.amazonaws.com), and the model records it;
- the audit log (kennel audit) has the allowed and denied calls with the
  deciding statement, and kennel iam suggest turns the role's calls into a
  policy with exactly InvokeEndpoint on dog-ep; kennel iam lint flags a
  sagemaker:* version of the role's policy.
"""
import datetime
import hashlib
import hmac
import http.client
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kn_testlib as lib  # noqa: E402

KN = os.environ.get("KN_BIN", "build/kennel")
lib.KN = KN  # the server below runs this binary
AWS = "/usr/bin/aws"
AKID, SECRET = "AKIDIAMTEST000000001", "iam/test/secret/0123456789abcdefghijklmn"
ACCT, REGION = "123456789012", "us-east-1"
check = lib.check


def aws(port, *args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([AWS, "--endpoint-url", f"http://127.0.0.1:{port}", "--region", REGION,
                        "--output", "json", *args], capture_output=True, text=True, env=e,
                       timeout=120)
    out = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else None
    return p.returncode, out, p.stderr


def sign(method, host, path, headers, body, key, secret, service, when, token=None):
    """SigV4 by hand (so the date can be any), the header form."""
    amz = when.strftime("%Y%m%dT%H%M%SZ")
    day = amz[:8]
    h = {k.lower(): v for k, v in headers.items()}
    h["host"] = host
    h["x-amz-date"] = amz
    if token:
        h["x-amz-security-token"] = token
    names = sorted(h)
    canon = "\n".join([method, path, "", "".join(f"{n}:{h[n].strip()}\n" for n in names),
                       ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = f"{day}/{REGION}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, REGION, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    out = dict(headers)
    out["X-Amz-Date"] = amz
    if token:
        out["X-Amz-Security-Token"] = token
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={sig}")
    return out


def post(port, path, headers, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def main():
    try:
        import boto3
        import botocore.config
        from botocore.exceptions import ClientError
    except ImportError as e:
        print(f"skip: {e} (needs python3-boto3)")
        return 77
    if not os.access(AWS, os.X_OK):
        print("skip: /usr/bin/aws (AWS CLI v2) is not installed")
        return 77
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "KENNEL_DATA_DIR"):
        os.environ.pop(k, None)
    os.environ.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                      AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_PAGER="",
                      AWS_MAX_ATTEMPTS="1", AWS_DEFAULT_REGION=REGION,
                      KENNEL_ROOT_ACCESS_KEY_ID=AKID, KENNEL_ROOT_SECRET_ACCESS_KEY=SECRET)
    tmp = tempfile.TemporaryDirectory()
    d = tmp.name
    subprocess.run([KN, "model", "package", "--arch", "resnet18", "--init", "random",
                    "--classes", "3", "--seed", "4", "--out", f"{d}/pkg"], check=True,
                   stdout=subprocess.DEVNULL)
    from PIL import Image
    Image.new("RGB", (40, 30), (10, 90, 200)).save(f"{d}/x.jpg")
    jpeg = open(f"{d}/x.jpg", "rb").read()
    srv = lib.Server(f"{d}/data", f"{d}/ready", f"{d}/server.err", log_mode="wb").start()
    try:
        run(d, srv.port, jpeg, boto3, botocore.config, ClientError)
    finally:
        srv.stop()
    return lib.done(f"{d}/server.err", tail=3000)


def run(d, port, jpeg, boto3, bconfig, ClientError):
    url = f"http://127.0.0.1:{port}"
    err_text = open(f"{d}/server.err").read()
    cred_file = f"{d}/data/admin-credentials"
    check("server says where the admin key is", cred_file in err_text, err_text)
    st = os.stat(cred_file)
    check("admin-credentials is 0600", stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode))
    text = open(cred_file).read()
    check("admin-credentials holds the seeded key",
          f"aws_access_key_id = {AKID}" in text and f"aws_secret_access_key = {SECRET}" in text,
          text)
    db = open(f"{d}/data/kennel.db", "rb").read()
    for f in ("kennel.db-wal",):
        if os.path.exists(f"{d}/data/{f}"):
            db += open(f"{d}/data/{f}", "rb").read()
    check("secret not stored in clear", SECRET.encode() not in db)

    cfg = bconfig.Config(retries={"total_max_attempts": 1})

    def client(svc, key=AKID, secret=SECRET, token=None):
        return boto3.client(svc, endpoint_url=url, region_name=REGION, aws_access_key_id=key,
                            aws_secret_access_key=secret, aws_session_token=token, config=cfg)

    def err(fn, **kw):
        try:
            fn(**kw)
        except ClientError as e:
            return e.response
        return None

    # ---- the admin deploys dog-ep for real
    env = dict(os.environ, KENNEL_ENDPOINT=url)
    p = subprocess.run([KN, "deploy", "--model", f"{d}/pkg", "--name", "dog-ep",
                        "--instances", "1", "--wait"], capture_output=True, text=True,
                       env=env, timeout=300)
    check("kennel deploy (signed with the admin key)", p.returncode == 0, p.stderr)

    rc, out, e = aws(port, "sts", "get-caller-identity")
    check("admin GetCallerIdentity", rc == 0 and out["Arn"] ==
          f"arn:aws:iam::{ACCT}:user/admin" and out["Account"] == ACCT, (out, e))

    # ---- role with a trust policy for functions and one inline permission
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
         "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCT}:root"},
         "Action": "sts:AssumeRole"}]}
    ep_arn = f"arn:aws:sagemaker:{REGION}:{ACCT}:endpoint/dog-ep"
    perm = {"Version": "2012-10-17", "Statement": [
        {"Sid": "InvokeOneEndpoint", "Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
         "Resource": ep_arn}]}
    rc, out, e = aws(port, "iam", "create-role", "--role-name", "dog-fn-role", "--path",
                     "/service-role/", "--assume-role-policy-document", json.dumps(trust))
    role_arn = f"arn:aws:iam::{ACCT}:role/service-role/dog-fn-role"
    check("CreateRole", rc == 0 and out["Role"]["Arn"] == role_arn and
          out["Role"]["AssumeRolePolicyDocument"] == trust, (out, e))
    rc, out, e = aws(port, "iam", "create-role", "--role-name", "dog-fn-role",
                     "--assume-role-policy-document", json.dumps(trust))
    check("CreateRole twice: EntityAlreadyExists", rc != 0 and "EntityAlreadyExists" in e and
          "Role with name dog-fn-role already exists." in e, e)
    rc, out, e = aws(port, "iam", "put-role-policy", "--role-name", "dog-fn-role",
                     "--policy-name", "invoke-dog-ep", "--policy-document",
                     '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}')
    check("malformed policy: MalformedPolicyDocument naming the problem",
          rc != 0 and "MalformedPolicyDocument" in e and "Action" in e, e)
    rc, out, e = aws(port, "iam", "put-role-policy", "--role-name", "dog-fn-role",
                     "--policy-name", "invoke-dog-ep", "--policy-document", json.dumps(perm))
    check("PutRolePolicy", rc == 0, e)
    rc, out, e = aws(port, "iam", "get-role-policy", "--role-name", "dog-fn-role",
                     "--policy-name", "invoke-dog-ep")
    check("GetRolePolicy", rc == 0 and out["PolicyDocument"] == perm, (out, e))
    rc, out, e = aws(port, "iam", "get-role", "--role-name", "dog-fn-role")
    check("GetRole", rc == 0 and out["Role"]["RoleName"] == "dog-fn-role", (out, e))

    # ---- assume it
    sts = client("sts")
    cr = sts.assume_role(RoleArn=role_arn, RoleSessionName="dog-fn")["Credentials"]
    check("AssumeRole gives temporary credentials",
          cr["AccessKeyId"].startswith("ASIA") and cr["SessionToken"] and
          cr["Expiration"].timestamp() > time.time() + 3000, cr)
    sess = (cr["AccessKeyId"], cr["SecretAccessKey"], cr["SessionToken"])
    who = client("sts", *sess).get_caller_identity()
    session_arn = f"arn:aws:sts::{ACCT}:assumed-role/dog-fn-role/dog-fn"
    check("session GetCallerIdentity", who["Arn"] == session_arn, who)
    smr = client("sagemaker-runtime", *sess)
    r = smr.invoke_endpoint(EndpointName="dog-ep", ContentType="image/jpeg", Body=jpeg)
    scores = json.loads(r["Body"].read())
    check("role may invoke dog-ep", len(scores) == 1 and len(scores[0]) == 3, scores)
    e = err(smr.invoke_endpoint, EndpointName="cat-ep", ContentType="image/jpeg", Body=jpeg)
    want = (f"User: {session_arn} is not authorized to perform: sagemaker:InvokeEndpoint on "
            f"resource: arn:aws:sagemaker:{REGION}:{ACCT}:endpoint/cat-ep because no "
            "identity-based policy allows the sagemaker:InvokeEndpoint action")
    check("role is denied cat-ep with AWS's message", e and
          e["Error"]["Code"] == "AccessDeniedException" and e["Error"]["Message"] == want,
          e and e["Error"])
    e = err(client("sagemaker", *sess).list_endpoints)
    check("role may not list endpoints", e and e["Error"]["Code"] == "AccessDeniedException",
          e and e["Error"])
    # the same session through the AWS CLI
    rc, out, e = aws(port, "sagemaker-runtime", "invoke-endpoint", "--endpoint-name", "cat-ep",
                     "--content-type", "image/jpeg", "--body", f"fileb://{d}/x.jpg",
                     f"{d}/out.json", env={"AWS_ACCESS_KEY_ID": sess[0],
                                            "AWS_SECRET_ACCESS_KEY": sess[1],
                                            "AWS_SESSION_TOKEN": sess[2]})
    check("CLI with the session: AccessDeniedException", rc != 0 and
          "AccessDeniedException" in e and want in e, e)

    # the dog-breed function (functions/dog-breed, C, signing with its environment's
    # session credentials) running as that role: dog-ep answers, cat-ep is refused
    boot = os.path.join(os.environ.get("KN_BUILD_DIR", ""), "functions", "dog-breed",
                        "bootstrap")
    e = err(client("lambda").list_functions)
    if not os.path.exists(boot) or (e and e["Error"]["Code"] == "UnknownOperationException"):
        print("note: no dog-breed function build or no Lambda routes; function role not checked")
    else:
        import base64
        import shutil
        os.makedirs(f"{d}/fn")
        shutil.copy(boot, f"{d}/fn/bootstrap")
        subprocess.run([KN, "function", "package", f"{d}/fn", "--out", f"{d}/fn.zip"],
                       check=True, stdout=subprocess.DEVNULL)
        lam = boto3.client("lambda", endpoint_url=url, region_name=REGION,
                           aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                           config=bconfig.Config(retries={"total_max_attempts": 1},
                                                 read_timeout=120))
        event = json.dumps({"image": base64.b64encode(jpeg).decode()})
        for fn, ep in (("dog-fn", "dog-ep"), ("cat-fn", "cat-ep")):
            lam.create_function(FunctionName=fn, Runtime="provided.al2023", Role=role_arn,
                                Handler="lambda_function.lambda_handler", Timeout=60,
                                Environment={"Variables": {"ENDPOINT_NAME": ep}},
                                Code={"ZipFile": open(f"{d}/fn.zip", "rb").read()})
        r = lam.invoke(FunctionName="dog-fn", Payload=event)
        body = json.loads(r["Payload"].read())
        check("function with the role: dog-ep answers", "FunctionError" not in r and
              body.get("statusCode") == 200 and len(json.loads(body["body"])[0]) == 3, body)
        r = lam.invoke(FunctionName="cat-fn", Payload=event)
        body = json.loads(r["Payload"].read())
        fn_session = f"arn:aws:sts::{ACCT}:assumed-role/dog-fn-role/"
        check("function with the role: cat-ep is AccessDenied", r.get("FunctionError") and
              "AccessDeniedException" in body.get("errorMessage", "") and
              fn_session in body.get("errorMessage", "") and
              "endpoint/cat-ep because no identity-based policy allows" in
              body.get("errorMessage", ""), body)

    # a role that trusts only lambda cannot be assumed by the admin
    only_fn = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
         "Action": "sts:AssumeRole"}]}
    aws(port, "iam", "create-role", "--role-name", "fn-only",
        "--assume-role-policy-document", json.dumps(only_fn))
    e = err(sts.assume_role, RoleArn=f"arn:aws:iam::{ACCT}:role/fn-only", RoleSessionName="xx")
    check("trust policy refuses the admin", e and e["Error"]["Code"] == "AccessDenied" and
          f"arn:aws:iam::{ACCT}:user/admin is not authorized to perform: sts:AssumeRole" in
          e["Error"]["Message"], e and e["Error"])

    # ---- a user without permissions
    iam = client("iam")
    iam.create_user(UserName="bob")
    k = iam.create_access_key(UserName="bob")["AccessKey"]
    keys = iam.list_access_keys(UserName="bob")["AccessKeyMetadata"]
    check("ListAccessKeys", [x["AccessKeyId"] for x in keys] == [k["AccessKeyId"]], keys)
    bob = (k["AccessKeyId"], k["SecretAccessKey"])
    e = err(client("sagemaker-runtime", *bob).invoke_endpoint, EndpointName="dog-ep",
            ContentType="image/jpeg", Body=jpeg)
    check("user without policies: AccessDeniedException (InvokeEndpoint)", e and
          e["Error"]["Code"] == "AccessDeniedException" and
          e["Error"]["Message"].startswith(f"User: arn:aws:iam::{ACCT}:user/bob is not "
                                           "authorized to perform: sagemaker:InvokeEndpoint"),
          e and e["Error"])
    # lambda:InvokeFunction, once the daemon has Lambda routes (the functions work)
    e = err(client("lambda").list_functions)
    if e and e["ResponseMetadata"]["HTTPStatusCode"] in (400, 404) and \
            e["Error"]["Code"] in ("UnknownOperationException", "404"):
        print("note: no Lambda routes on this daemon; lambda:InvokeFunction not checked")
    else:
        rc, out, e2 = aws(port, "lambda", "invoke", "--function-name", "dog-fn",
                          f"{d}/fn-out.json", env={"AWS_ACCESS_KEY_ID": bob[0],
                                                   "AWS_SECRET_ACCESS_KEY": bob[1]})
        check("user without lambda:InvokeFunction: AccessDeniedException from aws lambda invoke",
              rc != 0 and "AccessDeniedException" in e2 and
              f"User: arn:aws:iam::{ACCT}:user/bob is not authorized to perform: "
              "lambda:InvokeFunction on resource: "
              f"arn:aws:lambda:{REGION}:{ACCT}:function:dog-fn" in e2, e2)
    e = err(client("iam", *bob).create_user, UserName="mallory")
    check("user without policies: AccessDenied (IAM Query)", e and
          e["Error"]["Code"] == "AccessDenied", e and e["Error"])
    pol = iam.create_policy(PolicyName="list-endpoints", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                                                 "Action": "sagemaker:ListEndpoints",
                                                 "Resource": "*"}]}))["Policy"]
    iam.attach_user_policy(UserName="bob", PolicyArn=pol["Arn"])
    out = client("sagemaker", *bob).list_endpoints()
    check("attached managed policy allows", [x["EndpointName"] for x in out["Endpoints"]] ==
          ["dog-ep"], out)
    iam.delete_access_key(UserName="bob", AccessKeyId=bob[0])
    e = err(client("sagemaker", *bob).list_endpoints)
    check("deleted key: UnrecognizedClientException", e and
          e["Error"]["Code"] == "UnrecognizedClientException", e and e["Error"])

    # ---- iam:PassRole for a role handed to SageMaker (CreateModel's ExecutionRoleArn)
    iam.create_user(UserName="carol")
    k = iam.create_access_key(UserName="carol")["AccessKey"]
    carol = client("sagemaker", k["AccessKeyId"], k["SecretAccessKey"])
    iam.put_user_policy(UserName="carol", PolicyName="models", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                                                 "Action": "sagemaker:CreateModel",
                                                 "Resource": "*"}]}))
    model = dict(ModelName="carols", ExecutionRoleArn=role_arn,
                 PrimaryContainer={"Image": "kennel", "ModelDataUrl": f"{d}/pkg"})
    e = err(carol.create_model, **model)
    check("CreateModel without iam:PassRole: AccessDenied on the role", e and
          e["Error"]["Code"] == "AccessDeniedException" and
          f"iam:PassRole on resource: {role_arn}" in e["Error"]["Message"], e and e["Error"])
    iam.put_user_policy(UserName="carol", PolicyName="pass", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "iam:PassRole", "Resource": role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}}]}))
    out = carol.create_model(**model)
    check("CreateModel with iam:PassRole to SageMaker", out.get("ModelArn", "").endswith(
        ":model/carols"), out)
    out = client("sagemaker").describe_model(ModelName="carols")
    check("the model records its execution role", out["ExecutionRoleArn"] == role_arn, out)

    # ---- signature failures
    e = err(client("sagemaker", AKID, SECRET[:-1] + "X").list_endpoints)
    check("wrong secret: InvalidSignatureException", e and
          e["Error"]["Code"] == "InvalidSignatureException", e and e["Error"])
    rc, out, e2 = aws(port, "iam", "get-role", "--role-name", "dog-fn-role",
                      env={"AWS_SECRET_ACCESS_KEY": "wrong"})
    check("wrong secret, IAM: SignatureDoesNotMatch", rc != 0 and "SignatureDoesNotMatch" in e2,
          e2)
    rc, out, e2 = aws(port, "iam", "get-role", "--role-name", "dog-fn-role",
                      env={"AWS_ACCESS_KEY_ID": "AKIDNOSUCHKEY0000000"})
    check("unknown key, IAM: InvalidClientTokenId", rc != 0 and "InvalidClientTokenId" in e2,
          e2)
    e = err(boto3.client("sagemaker", endpoint_url=url, region_name="eu-west-1",
                         aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                         config=cfg).list_endpoints)
    check("wrong region in the scope", e and e["Error"]["Code"] == "InvalidSignatureException"
          and "Credential should be scoped to a valid Region, not 'eu-west-1'" in
          e["Error"]["Message"], e and e["Error"])
    s, data = post(port, "/", {"Content-Type": "application/x-www-form-urlencoded"},
                   b"Action=GetCallerIdentity&Version=2011-06-15")
    check("unsigned Query call: MissingAuthenticationToken", s == 403 and
          b"<Code>MissingAuthenticationToken</Code>" in data, (s, data))
    now = datetime.datetime.now(datetime.timezone.utc)
    body = b'{}'
    base = {"Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "SageMaker.ListEndpoints"}
    s, data = post(port, "/", sign("POST", f"127.0.0.1:{port}", "/", base, body, AKID, SECRET,
                                   "sagemaker", now), body)
    check("hand-signed request now: allowed", s == 200, (s, data))
    s, data = post(port, "/", sign("POST", f"127.0.0.1:{port}", "/", base, body, AKID, SECRET,
                                   "sagemaker", now - datetime.timedelta(minutes=20)), body)
    check("signed 20 minutes ago: refused", s == 403 and
          json.loads(data)["__type"] == "InvalidSignatureException" and
          b"Signature expired" in data, (s, data))

    # presigned query form (a GET route of kennel's own, signed as sagemaker), with an
    # empty query pair, which botocore signs as "="
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import urllib.request
    import urllib.error
    preq = AWSRequest(method="GET", url=f"{url}/kennel/endpoints/dog-ep/metrics?minutes=5&&")
    SigV4QueryAuth(Credentials(AKID, SECRET), "sagemaker", REGION, expires=60).add_auth(preq)
    signed_url = preq.prepare().url
    try:
        with urllib.request.urlopen(signed_url) as r:
            status = r.status
    except urllib.error.HTTPError as ex:
        status = (ex.code, ex.read())
    check("presigned URL through the front door", status == 200, (status, signed_url))
    try:
        urllib.request.urlopen(signed_url.replace("minutes=5", "minutes=6"))
        status = 200
    except urllib.error.HTTPError as ex:
        status = (ex.code, json.loads(ex.read()).get("__type"))
    check("presigned URL with a changed parameter", status == (403, "InvalidSignatureException"),
          status)

    # ---- session tokens: wrong, expired
    s, data = post(port, "/", sign("POST", f"127.0.0.1:{port}", "/", base, body, sess[0],
                                   sess[1], "sagemaker", now, token=sess[2][:-2] + "zz"), body)
    check("wrong session token: UnrecognizedClientException", s == 403 and
          json.loads(data)["__type"] == "UnrecognizedClientException", (s, data))
    cr2 = sts.assume_role(RoleArn=role_arn, RoleSessionName="short",
                          DurationSeconds=900)["Credentials"]
    con = sqlite3.connect(f"{d}/data/kennel.db", timeout=10)
    con.execute("UPDATE iam_sessions SET expiration = ? WHERE access_key_id = ?",
                (time.time() - 60, cr2["AccessKeyId"]))
    con.commit()
    con.close()
    e = err(client("sagemaker-runtime", cr2["AccessKeyId"], cr2["SecretAccessKey"],
                   cr2["SessionToken"]).invoke_endpoint, EndpointName="dog-ep",
            ContentType="image/jpeg", Body=jpeg)
    check("expired session: ExpiredTokenException", e and
          e["Error"]["Code"] == "ExpiredTokenException", e and e["Error"])

    # ---- audit log and least privilege
    p = subprocess.run([KN, "audit", "--data-dir", f"{d}/data", "--action",
                        "sagemaker:InvokeEndpoint", "--principal", "assumed-role/dog-fn-role",
                        "--json"], capture_output=True, text=True, timeout=60)
    rows = [json.loads(l) for l in p.stdout.splitlines()]
    allow = [r for r in rows if r["decision"] == "Allow"]
    deny = [r for r in rows if r["decision"] == "ImplicitDeny"]
    check("audit: the role's allowed invoke with its deciding statement",
          any(r["resource"] == ep_arn and r["principal"] == session_arn and
              r["statement"] == "inline:invoke-dog-ep#0/InvokeOneEndpoint" and
              r["source"] == "127.0.0.1" for r in allow), rows)
    check("audit: the role's denied invoke", any(
        r["resource"].endswith("endpoint/cat-ep") and r["errorCode"] == "AccessDeniedException"
        for r in deny), rows)
    p = subprocess.run([KN, "audit", "--data-dir", f"{d}/data", "--since", "10m"],
                       capture_output=True, text=True, timeout=60)
    check("kennel audit text lists failures too", p.returncode == 0 and
          "AuthFailure" in p.stdout and "InvalidSignatureException" in p.stdout,
          p.stdout[-2000:] + p.stderr)
    p = subprocess.run([KN, "iam", "suggest", "--role", "dog-fn-role", "--since", "1h",
                        "--data-dir", f"{d}/data", "--out", f"{d}/suggested.json"],
                       capture_output=True, text=True, timeout=60)
    sugg = json.load(open(f"{d}/suggested.json")) if p.returncode == 0 else None
    check("iam suggest: exactly InvokeEndpoint on dog-ep", sugg and sugg["Statement"] == [
        {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": ep_arn}],
        (sugg, p.stderr))
    broad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}]}
    open(f"{d}/broad.json", "w").write(json.dumps(broad))
    p = subprocess.run([KN, "iam", "lint", f"{d}/broad.json"], capture_output=True, text=True)
    check("iam lint flags sagemaker:*", p.returncode == 1 and "WildcardAction" in p.stdout,
          p.stdout + p.stderr)
    p = subprocess.run([KN, "iam", "lint", f"{d}/suggested.json"], capture_output=True,
                       text=True)
    check("iam lint: the suggested policy is clean", p.returncode == 0, p.stdout + p.stderr)

    # ---- DeleteRole refuses while policies remain; works after
    e = err(iam.delete_role, RoleName="dog-fn-role")
    check("DeleteRole with an inline policy: DeleteConflict", e and
          e["Error"]["Code"] == "DeleteConflict", e and e["Error"])
    iam.delete_role_policy(RoleName="dog-fn-role", PolicyName="invoke-dog-ep")
    iam.delete_role(RoleName="dog-fn-role")
    e = err(iam.get_role, RoleName="dog-fn-role")
    check("deleted role: NoSuchEntity", e and e["Error"]["Code"] == "NoSuchEntity",
          e and e["Error"])
    e = err(smr.invoke_endpoint, EndpointName="dog-ep", ContentType="image/jpeg", Body=jpeg)
    check("the deleted role's session grants nothing", e and
          e["Error"]["Code"] == "AccessDeniedException", e and e["Error"])


if __name__ == "__main__":
    sys.exit(main())
