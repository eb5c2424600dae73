#!/usr/bin/python3
"""docs/OPERATIONS.md's backup and restore, on a real kennel server through
boto3 (signed like every call):

- an online backup taken while the daemon runs (SQLite's backup API: the
  sqlite3 CLI's .backup when installed, else Python's, which is the same
  call) plus iam.key and artifacts/, restored into a fresh data directory,
  brings back the model (its package in the artifact store), the IAM user
  and its access key (which still authenticates), the role; what was
  created after the backup is absent;
- the restored daemon starts normally on the restored data directory;
- kennel.db restored without its iam.key: the stored access keys cannot be
  used (the daemon refuses to start, or the key no longer authenticates),
  which is why the doc says the two go together.
"""
import os
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kn_testlib as lib  # noqa: E402

lib.KN = KN = os.environ.get("KN_BIN", "build/kennel")
AKID, SECRET = "AKIDBACKUPTEST000001", "backup/test/secret/0123456789abcdefghij"
REGION = lib.REGION
check = lib.check



def Server(data, log):
    """A started server on data (ready file beside it); url None if it fails."""
    return lib.Server(data, data + ".ready", log, log_mode="wb").start()

def clients(url, key=AKID, secret=SECRET):
    return tuple(lib.client(svc, url, key, secret) for svc in ("iam", "sagemaker", "sts"))


def online_backup(src, dst):
    if shutil.which("sqlite3"):
        subprocess.run(["sqlite3", src, f".backup '{dst}'"], check=True)
    else:
        with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
            a.backup(b)


def main():
    tmp, status = lib.begin(AKID, SECRET)
    if not tmp:
        return status
    from botocore.exceptions import ClientError
    d = tmp.name
    d1, d2, d3, bk = f"{d}/data1", f"{d}/data2", f"{d}/data3", f"{d}/backup"
    os.makedirs(bk)

    # a model package in the first data dir's artifact store
    os.makedirs(f"{d1}/artifacts/models", exist_ok=True)
    r = subprocess.run([KN, "model", "package", "--arch", "tiny", "--init", "random",
                        "--classes", "2", "--out", f"{d}/pkg", "--tar",
                        f"{d1}/artifacts/models/model.tar.gz"], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: model package: {r.stderr}")
        return 1

    s1 = Server(d1, f"{d}/s1.err")
    try:
        if not s1.url:
            print("FAIL: first server did not start:", open(f"{d}/s1.err").read()[-2000:])
            return 1
        iam, sm, _ = clients(s1.url)
        iam.create_user(UserName="bob")
        key = iam.create_access_key(UserName="bob")["AccessKey"]
        iam.put_user_policy(UserName="bob", PolicyName="who",
                            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":'
                            '"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}')
        iam.create_role(RoleName="keep-role", AssumeRolePolicyDocument=(
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
            '{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}'))
        role = "arn:aws:iam::123456789012:role/keep-role"
        sm.create_model(ModelName="kept", ExecutionRoleArn=role, PrimaryContainer={
            "ModelDataUrl": "kennel://artifacts/models/model.tar.gz"})

        # the documented online backup, the daemon still running
        online_backup(f"{d1}/kennel.db", f"{bk}/kennel.db")
        shutil.copy2(f"{d1}/iam.key", f"{bk}/iam.key")
        shutil.copytree(f"{d1}/artifacts", f"{bk}/artifacts")

        # after the backup: must not come back
        iam.create_user(UserName="late")
        sm.create_model(ModelName="late", ExecutionRoleArn=role, PrimaryContainer={
            "ModelDataUrl": "kennel://artifacts/models/model.tar.gz"})
    finally:
        rc = s1.stop()
    check("first server exits 0 on SIGTERM", rc == 0, rc)

    # restore into a fresh data directory
    os.makedirs(d2, mode=0o700)
    shutil.copy2(f"{bk}/kennel.db", f"{d2}/kennel.db")
    shutil.copy2(f"{bk}/iam.key", f"{d2}/iam.key")
    shutil.copytree(f"{bk}/artifacts", f"{d2}/artifacts")
    s2 = Server(d2, f"{d}/s2.err")
    try:
        check("restored server starts", s2.url is not None, open(f"{d}/s2.err").read()[-2000:])
        if s2.url:
            iam, sm, _ = clients(s2.url)
            m = sm.describe_model(ModelName="kept")
            check("model restored", m["ModelName"] == "kept", m)
            names = [m["ModelName"] for m in sm.list_models()["Models"]]
            check("model made after the backup absent", "late" not in names, names)
            users = [u["UserName"] for u in iam.list_users()["Users"]]
            check("user restored", "bob" in users, users)
            check("user made after the backup absent", "late" not in users, users)
            check("role restored", iam.get_role(RoleName="keep-role")["Role"]["RoleName"]
                  == "keep-role")
            _, _, sts_bob = clients(s2.url, key["AccessKeyId"], key["SecretAccessKey"])
            who = sts_bob.get_caller_identity()
            check("restored access key authenticates", who["Arn"].endswith(":user/bob"), who)
            # the model's package came back with the artifact store: deployable
            cfg = sm.create_endpoint_config(EndpointConfigName="kept-cfg", ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": "kept", "InstanceType": "ml.t2.medium",
                "InitialInstanceCount": 1}])
            check("restored model usable in a configuration", "EndpointConfigArn" in cfg, cfg)
    finally:
        check("restored server exits 0", s2.stop() == 0)

    # kennel.db without its iam.key: the stored keys are lost
    os.makedirs(d3, mode=0o700)
    shutil.copy2(f"{bk}/kennel.db", f"{d3}/kennel.db")
    s3 = Server(d3, f"{d}/s3.err")
    try:
        if s3.url is None:
            err = open(f"{d}/s3.err").read()
            check("without iam.key: refusal names iam.key", "iam.key" in err, err[-1000:])
            print("without iam.key the daemon refused to start:", err.strip().splitlines()[-1:])
        else:
            _, _, sts_bob = clients(s3.url, key["AccessKeyId"], key["SecretAccessKey"])
            try:
                sts_bob.get_caller_identity()
                check("without iam.key the stored key must not authenticate", False)
            except ClientError as e:
                check("without iam.key: key refused", True, e)
                print("without iam.key the stored key is refused:", e)
    finally:
        s3.stop()

    print(f"{lib.checks - lib.failures}/{lib.checks} checks passed")
    return 1 if lib.failures else 0


if __name__ == "__main__":
    sys.exit(main())
