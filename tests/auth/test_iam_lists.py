#!/usr/bin/python3
"""The listings the console reads, on a real kennel server through boto3
(Debian's, under /usr/bin/python3), signed like every call:

- IAM ListUsers / ListRoles / ListAttachedUserPolicies /
  ListAttachedRolePolicies / ListUserPolicies / ListRolePolicies give back
  what was created (users, roles with their trust policy, attached managed
  and inline policy names), NoSuchEntity for an unknown role;
- GET /kennel/audit gives the newest records first, filters by decision
  (Deny) and principal, refuses a bad limit, and needs
  cloudtrail:LookupEvents (a user without it is denied);
- POST /kennel/iam/lint returns the lint findings of a policy as JSON and
  MalformedPolicyDocument for a broken one.
"""
import json
import os
import sys
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kn_testlib as lib  # noqa: E402

lib.KN = KN = os.environ.get("KN_BIN", "build/kennel")
AKID, SECRET = "AKIDLISTTEST00000001", "list/test/secret/0123456789abcdefghijkl"
REGION = lib.REGION
check = lib.check
signed = lib.signed


def main():
    tmp, status = lib.begin(AKID, SECRET)
    if not tmp:
        return status
    import boto3
    from botocore.exceptions import ClientError
    d = tmp.name
    srv = lib.Server(f"{d}/data", f"{d}/ready", f"{d}/server.err", log_mode="wb").start()
    try:
        url = srv.url
        iam = lib.client("iam", url, AKID, SECRET)
        iam.create_user(UserName="alice")
        iam.put_user_policy(UserName="alice", PolicyName="describe-only", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sagemaker:Describe*", "Resource": "*"}]}))
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
            "Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="fn-role", PolicyName="invoke", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action":
                "sagemaker:InvokeEndpoint", "Resource": "*"}]}))
        pol = iam.create_policy(PolicyName="reader", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sagemaker:List*", "Resource": "*"}]}))
        arn = pol["Policy"]["Arn"]
        iam.attach_role_policy(RoleName="fn-role", PolicyArn=arn)
        iam.attach_user_policy(UserName="alice", PolicyArn=arn)

        users = {u["UserName"]: u for u in iam.list_users()["Users"]}
        check("ListUsers has admin and alice", {"admin", "alice"} <= set(users), users)
        check("a user's ARN", users.get("alice", {}).get("Arn", "").endswith(":user/alice"),
              users.get("alice"))
        roles = {r["RoleName"]: r for r in iam.list_roles()["Roles"]}
        check("ListRoles has fn-role", "fn-role" in roles, roles)
        doc = roles.get("fn-role", {}).get("AssumeRolePolicyDocument")
        check("with its trust policy", isinstance(doc, dict) and
              doc["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}, doc)
        att = iam.list_attached_role_policies(RoleName="fn-role")["AttachedPolicies"]
        check("ListAttachedRolePolicies", att == [{"PolicyName": "reader", "PolicyArn": arn}], att)
        att = iam.list_attached_user_policies(UserName="alice")["AttachedPolicies"]
        check("ListAttachedUserPolicies", [a["PolicyArn"] for a in att] == [arn], att)
        check("ListRolePolicies", iam.list_role_policies(RoleName="fn-role")["PolicyNames"]
              == ["invoke"])
        check("ListUserPolicies", iam.list_user_policies(UserName="alice")["PolicyNames"]
              == ["describe-only"])
        try:
            iam.list_role_policies(RoleName="nobody")
            check("NoSuchEntity for an unknown role", False)
        except ClientError as e:
            check("NoSuchEntity for an unknown role",
                  e.response["Error"]["Code"] == "NoSuchEntity", e.response)

        # alice: a denial for the audit log, and no right to read it
        key = iam.create_access_key(UserName="alice")["AccessKey"]
        sm = boto3.client("sagemaker", endpoint_url=url, region_name=REGION,
                          aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"])
        try:
            sm.list_models()
        except ClientError:
            pass  # allowed through the attached reader policy: no denial
        try:
            sm.delete_model(ModelName="m1")
            check("alice cannot delete", False)
        except ClientError as e:
            check("alice cannot delete", e.response["Error"]["Code"] == "AccessDeniedException",
                  e.response)
        st, body = signed(url, "GET", "/kennel/audit?decision=Deny&limit=5", "cloudtrail",
                          AKID, SECRET)
        ev = json.loads(body).get("Events", []) if st == 200 else []
        check("the audit route answers the admin", st == 200, body)
        check("denials only, newest first", ev and all("Deny" in e["Decision"] for e in ev) and
              all(ev[i]["Time"] >= ev[i + 1]["Time"] for i in range(len(ev) - 1)), ev)
        check("alice's DeleteModel is there", any(e["Action"] == "sagemaker:DeleteModel" and
                                                  e["Principal"].endswith(":user/alice")
                                                  for e in ev), ev)
        st, body = signed(url, "GET", "/kennel/audit?principal=user%2Falice&limit=100",
                          "cloudtrail", AKID, SECRET)
        ev = json.loads(body).get("Events", []) if st == 200 else []
        check("filter by principal", ev and all("user/alice" in e["Principal"] for e in ev), ev)
        st, body = signed(url, "GET", "/kennel/audit?limit=0", "cloudtrail", AKID, SECRET)
        check("a bad limit is a ValidationError", st == 400 and b"limit" in body, (st, body))
        st, body = signed(url, "GET", "/kennel/audit", "cloudtrail", key["AccessKeyId"],
                          key["SecretAccessKey"])
        check("reading the audit log needs cloudtrail:LookupEvents",
              st in (400, 403) and b"cloudtrail:LookupEvents" in body, (st, body))

        lint_url = url + "/kennel/iam/lint"
        broad = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}]}).encode()
        with urllib.request.urlopen(urllib.request.Request(lint_url, data=broad,
                                                           method="POST")) as r:
            found = json.loads(r.read())["Findings"]
        codes = {f["Code"] for f in found}
        check("lint flags wildcard action and resource",
              {"WildcardAction", "WildcardResource"} <= codes, found)
        try:
            urllib.request.urlopen(urllib.request.Request(lint_url, data=b'{"Version":',
                                                          method="POST"))
            check("a broken policy is MalformedPolicyDocument", False)
        except urllib.error.HTTPError as e:
            check("a broken policy is MalformedPolicyDocument",
                  e.code == 400 and b"MalformedPolicyDocument" in e.read())
    finally:
        rc = srv.stop(timeout=30)
        check("clean stop", rc == 0, open(f"{d}/server.err").read()[-2000:])
    print(f"{lib.checks} checks, {lib.failures} failed")
    return 1 if lib.failures else 0


if __name__ == "__main__":
    sys.exit(main())
