#!/usr/bin/python3
"""SigV4 against real clients.

1. Every request captured from the AWS CLI v2, boto3 (Debian and newer) and
   the JS SDK v3 in ../shared/wire/captures verifies with the example secret,
   and kennel's canonical request equals the one written beside it. (Skipped
   with a note when ../shared is absent.)
2. Requests signed here by Debian's botocore (SigV4Auth, and presigned URLs
   with SigV4QueryAuth) over awkward paths, queries and headers verify; a
   request signed by kennel verifies with botocore's canonicalisation.
3. Tampering with any signed part — body, path, a query value, a signed
   header, the date, the secret — fails with the right kind and AWS error
   names; dates outside 15 minutes and expired presigned URLs fail as
   expired; malformed Authorization headers fail as incomplete, naming the
   part; no signature at all is MissingAuthenticationToken."""
import base64
import calendar
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import time

BUILD = os.environ.get("KN_BUILD_DIR", "build")
TOOL = os.path.join(BUILD, "tests", "tool_sigv4")
SHARED = os.environ.get("KN_SHARED", "")
SECRETS = {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
           "ASIAEXAMPLETEMP": "tempSecretExample"}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def tool(req):
    p = subprocess.run([TOOL], input=json.dumps(req).encode(), capture_output=True, timeout=30)
    if p.returncode != 0:
        raise SystemExit("tool_sigv4 failed: %s" % p.stderr.decode())
    return json.loads(p.stdout)


def amz_time(d):
    return calendar.timegm(time.strptime(d, "%Y%m%dT%H%M%SZ"))


# ---- 1. captures ---------------------------------------------------------------

def parse_capture(path):
    text = open(path, encoding="utf-8").read()
    head = text.split("=== RAW REQUEST HEAD", 1)[1].split("\n", 1)[1]
    head = head.split("\n\n=== BODY", 1)[0]
    lines = head.split("\n")
    method, target, _ = lines[0].split(" ", 2)
    path_, _, query = target.partition("?")
    headers = [l.split(": ", 1) if ": " in l else [l.rstrip(":"), ""] for l in lines[1:] if l]
    m = re.search(r"=== BODY: (\d+) bytes, framing=[^,]*, encoding in this file=([^,]*), "
                  r"sha256=([0-9a-f]+) ===\n(.*?)\n=== PARSED", text, re.S)
    n, enc, sha, raw = int(m.group(1)), m.group(2), m.group(3), m.group(4)
    if enc == "base64":
        body = base64.b64decode("".join(raw.split()))
    elif enc == "empty":
        body = b""
    else:
        body = raw.encode("utf-8")[:n]
    canon = text.split("--- canonical request ---\n", 1)[1].split("\n--- string to sign ---", 1)[0]
    sts = text.split("--- string to sign ---\n", 1)[1].split("\n--- signatures ---", 1)[0]
    return {"method": method, "path": path_, "query": query, "headers": headers,
            "body": body, "sha": sha, "canonical": canon, "sts": sts}


def capture_request(c, secret, now):
    return {"op": "verify", "method": c["method"], "path": c["path"], "query": c["query"],
            "headers": c["headers"], "body_hex": c["body"].hex(), "secret": secret, "now": now}


def header_of(headers, name):
    for n, v in headers:
        if n.lower() == name:
            return v
    return None


captures = sorted(glob.glob(os.path.join(SHARED, "wire", "captures", "*.txt")))
if not captures:
    print("SKIP part 1: ../shared/wire/captures is absent (KN_SHARED=%r)" % SHARED)
clients = set()
for path in captures:
    name = os.path.basename(path)
    c = parse_capture(path)
    check(hashlib.sha256(c["body"]).hexdigest() == c["sha"], "%s: body read back" % name)
    authz = header_of(c["headers"], "authorization")
    akid = re.search(r"Credential=([^/]+)/", authz).group(1)
    now = amz_time(header_of(c["headers"], "x-amz-date")) + 30
    r = tool(capture_request(c, SECRETS[akid], now))
    check(r["fail"] == "ok", "%s: verifies (%s)" % (name, r["message"]))
    check(r.get("canonical") == c["canonical"], "%s: canonical request" % name)
    check(r.get("string_to_sign") == c["sts"], "%s: string to sign" % name)
    clients.add(name.split("_")[1])
    # the same request a little changed must fail
    if c["body"]:
        bad = dict(c, body=c["body"][:-1] + bytes([c["body"][-1] ^ 1]))
        r = tool(capture_request(bad, SECRETS[akid], now))
        check(r["fail"] == "mismatch", "%s: flipped body bit -> mismatch (%s)" % (name, r["fail"]))
    r = tool(capture_request(c, SECRETS[akid] + "x", now))
    check(r["fail"] == "mismatch", "%s: wrong secret -> mismatch" % name)
    r = tool(capture_request(c, SECRETS[akid], now + 16 * 60))
    check(r["fail"] == "expired", "%s: 16 minutes later -> expired" % name)
if captures:
    print("part 1: %d captures from %s verified" % (len(captures), ", ".join(sorted(clients))))
    check(len(captures) >= 70, "at least 70 captures")

# ---- 2. botocore as the client -------------------------------------------------

from botocore.auth import SigV4Auth, SigV4QueryAuth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

AK, SK = "AKIDKENNELTEST", "kennel/secret+KEY=="
creds = Credentials(AK, SK)
tok_creds = Credentials("ASIAKENNEL", SK, "session-token/with+odd=chars")


def split_url(url):
    rest = url.split("://", 1)[1]
    host, _, pq = rest.partition("/")
    path_, _, query = ("/" + pq).partition("?")
    return host, path_, query


def boto_request(method, url, headers, body, service="lambda", c=creds, presign=False):
    req = AWSRequest(method=method, url=url, headers=headers, data=body)
    if presign:
        SigV4QueryAuth(c, service, "us-east-1", expires=300).add_auth(req)
    else:
        SigV4Auth(c, service, "us-east-1").add_auth(req)
    p = req.prepare()
    host, path_, query = split_url(p.url)
    hdrs = [[k, v] for k, v in p.headers.items()]
    if not any(k.lower() == "host" for k, _ in hdrs):
        hdrs.append(["Host", host])
    return {"op": "verify", "method": method, "path": path_, "query": query, "headers": hdrs,
            "body_hex": (body or b"").hex(), "secret": SK, "now": time.time()}


cases = [
    ("POST", "http://127.0.0.1:8080/", {"X-Amz-Target": "SageMaker.CreateModel",
                                        "Content-Type": "application/x-amz-json-1.1"},
     b'{"ModelName":"m"}', "sagemaker"),
    ("POST", "http://127.0.0.1:8080/2015-03-31/functions/dog-fn%3Alive/invocations",
     {"X-Amz-Invocation-Type": "Event"}, b'{"url":"http://x/y.jpg"}', "lambda"),
    ("GET", "http://127.0.0.1:8080/2015-03-31/functions/?MaxItems=5&Marker=a%2Fb%20c&FunctionVersion=ALL",
     {}, b"", "lambda"),
    ("GET", "http://localhost:9/path/with~tilde/and%20space/?b=2&a=3&a=1&empty=", {}, b"",
     "lambda"),
    ("PUT", "http://127.0.0.1:8080/2017-10-31/functions/f/concurrency",
     {"Content-Type": "application/json", "X-Custom": "  two   spaces  inside  "},
     b'{"ReservedConcurrentExecutions": 5}', "lambda"),
    ("POST", "http://127.0.0.1:8080/", {"Content-Type": "application/x-www-form-urlencoded"},
     b"Action=GetCallerIdentity&Version=2011-06-15", "sts"),
    ("POST", "http://127.0.0.1:8080/endpoints/dog-ep/invocations",
     {"Content-Type": "image/jpeg"}, bytes(range(256)) * 3, "sagemaker"),
    # clients sign the path with dot segments removed and runs of '/' folded
    ("GET", "http://127.0.0.1:8080/2015-03-31//functions/./x/../f/", {}, b"", "lambda"),
    # sorted by the encoded names: "a%7B" before "aa" ('%' sorts before letters)
    ("GET", "http://127.0.0.1:8080/x?aa=2&a%7B=1&b=%C3%A9&b=z", {}, b"", "lambda"),
    # empty pairs: botocore signs each as an empty key with an empty value ("=")
    ("GET", "http://127.0.0.1:8080/x?a=1&&b=2&", {}, b"", "lambda"),
    # header values trimmed and collapsed over all of str.split()'s ASCII whitespace
    ("POST", "http://127.0.0.1:8080/", {"Content-Type": "application/x-amz-json-1.1",
                                        "X-Amz-Target": "SageMaker.ListModels",
                                        "X-Custom": "\x0b a\x0c\x0c b \t\x1f c\x0b"},
     b"{}", "sagemaker"),
]
for method, url, headers, body, service in cases:
    for c, label in ((creds, "key"), (tok_creds, "session token")):
        req = boto_request(method, url, headers, body, service, c)
        r = tool(req)
        check(r["fail"] == "ok", "botocore %s %s (%s): %s" % (method, url, label, r["message"]))
        check(r.get("service") == service, "service from scope: %s" % r.get("service"))
        if c is tok_creds:
            check(r.get("session_token") == "session-token/with+odd=chars", "session token read")
    # presigned URL form
    if method == "GET":
        req = boto_request(method, url, headers, body, service, presign=True)
        r = tool(req)
        check(r["fail"] == "ok" and r.get("presigned"), "presigned %s: %s" % (url, r["message"]))
        later = dict(req, now=time.time() + 301)
        check(tool(later)["fail"] == "expired", "presigned URL past X-Amz-Expires -> expired")
        q = req["query"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
        q = re.sub(r"X-Amz-Signature=0([0-9a-f]{63})[0-9a-f]", r"X-Amz-Signature=0\1", q)
        check(tool(dict(req, query=q))["fail"] == "mismatch", "presigned: altered signature")
    print("botocore ok:", method, url)

# kennel signs, botocore's canonical request agrees (botocore signs the same
# request with the same date and the Authorization values must be equal).
for method, url, headers, body, service in cases:
    host, path_, query = split_url(url)
    amz = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    hdrs = dict(headers)
    hdrs["X-Amz-Date"] = amz
    req = AWSRequest(method=method, url=url, headers=dict(hdrs), data=body)
    req.context["timestamp"] = amz
    SigV4Auth(creds, service, "us-east-1").add_auth(req)
    want = req.headers["Authorization"]
    # botocore stamps its own X-Amz-Date when it signs (a second may have
    # ticked since ours): sign with the date it used.
    hdrs["X-Amz-Date"] = req.headers["X-Amz-Date"]
    signed = re.search(r"SignedHeaders=([^,]+)", want).group(1).split(";")
    ours_headers = [[k, v] for k, v in hdrs.items()] + [["Host", host]]
    ours_headers = [h for h in ours_headers if h[0].lower() in signed]
    r = tool({"op": "sign", "method": method, "path": path_, "query": query,
              "headers": ours_headers, "body_hex": body.hex(), "secret": SK,
              "access_key": AK, "region": "us-east-1", "service": service})
    check(r.get("authorization") == want,
          "kennel signs %s %s as botocore does:\n  %s\n  %s" % (method, url, r.get("authorization"), want))

# Repeated header names are one canonical line, values joined by ',' in
# order; tabs and runs of spaces inside a value fold to one space.
req = AWSRequest(method="POST", url="http://127.0.0.1:8080/x",
                 headers={"X-Dup": "first", "X-Tab": " a\t\tb   c\t"}, data=b"{}")
req.headers.add_header("X-Dup", "second")
SigV4Auth(creds, "lambda", "us-east-1").add_auth(req)
hdrs = [["X-Dup", "first"], ["X-Tab", " a\t\tb   c\t"], ["X-Dup", "second"],
        ["X-Amz-Date", req.headers["X-Amz-Date"]], ["Host", "127.0.0.1:8080"],
        ["Authorization", req.headers["Authorization"]]]
r = tool({"op": "verify", "method": "POST", "path": "/x", "query": "", "headers": hdrs,
          "body_hex": b"{}".hex(), "secret": SK, "now": time.time()})
check(r["fail"] == "ok", "repeated header and tabs verify (%s)" % r["message"])
check("\nx-dup:first,second\nx-tab:a b c\n" in (r.get("canonical") or ""),
      "x-dup values joined in order, x-tab folded: %r" % r.get("canonical"))

# '+' in a query is a plus, not a space (AWS and the SDKs that decode the
# query canonicalise it as %2B); a space is %20. So "a+b" and "a%20b" are
# different requests and one's signature must not cover the other.
r = tool(dict(boto_request("GET", "http://127.0.0.1:8080/x", {}, b""),
              query="b=x+y&c=%20&a=x%2By"))
canon = (r.get("canonical") or "").split("\n")
check(len(canon) > 2 and canon[2] == "a=x%2By&b=x%2By&c=%20", "plus canonical: %r" % canon[2:3])
plus = boto_request("GET", "http://127.0.0.1:8080/x?k=a%20b", {}, b"")
check(tool(plus)["fail"] == "ok", "space in query verifies")
check(tool(dict(plus, query="k=a+b"))["fail"] == "mismatch", "'+' for %20 -> mismatch")

# ---- 3. tampering and malformed input --------------------------------------------

base = boto_request("POST", "http://127.0.0.1:8080/2015-03-31/functions/f/invocations?Qualifier=live",
                    {"X-Amz-Log-Type": "Tail"}, b'{"k":1}', "lambda")
check(tool(base)["fail"] == "ok", "base request verifies")
# the derived signing key is cached per (secret, date, region, service):
# a cached key must never verify a request for another secret
# (300 other secrets: more than the cache has slots, so some share SK's)
others = [SK + "x", "", SK[:-1], "x" * 300] + ["other-%d" % i for i in range(300)]
r = tool(dict(base, secret=SK, then_secrets=[SK] + others + [SK]))
check(r["fail"] == "ok" and r.get("then_fail") == ["ok"] + ["mismatch"] * len(others) + ["ok"],
      "verifying again in one process with other secrets: %r" % r.get("then_fail"))


def with_header(req, name, value):
    h = [x for x in req["headers"] if x[0].lower() != name.lower()]
    if value is not None:
        h.append([name, value])
    return dict(req, headers=h)


authz = header_of(base["headers"], "authorization")
amz = header_of(base["headers"], "x-amz-date")
tampered = {
    "path": dict(base, path="/2015-03-31/functions/g/invocations"),
    "query": dict(base, query="Qualifier=dead"),
    "signed header": with_header(base, "X-Amz-Log-Type", "None"),
    "body": dict(base, body_hex=b'{"k":2}'.hex()),
    "method": dict(base, method="PUT"),
}
for what, req in tampered.items():
    r = tool(req)
    check(r["fail"] == "mismatch", "tampered %s -> mismatch (%s)" % (what, r["fail"]))
    check(r["code_json"] == "InvalidSignatureException" and r["http_json"] == 403,
          "tampered %s: JSON error name" % what)
    check(r["code_query"] == "SignatureDoesNotMatch", "tampered %s: Query error name" % what)
# an unsigned header may change freely
check(tool(with_header(base, "User-Agent", "other/1.0"))["fail"] == "ok", "unsigned header is free")

r = tool(dict(base, now=amz_time(amz) + 15 * 60 + 5))
check(r["fail"] == "expired" and r["code_query"] == "RequestExpired", "15 min skew -> expired")
check(tool(dict(base, now=amz_time(amz) - 15 * 60 - 5))["fail"] == "expired", "clock behind")
check(tool(dict(base, now=amz_time(amz) + 14 * 60))["fail"] == "ok", "14 min skew accepted")

r = tool(with_header(base, "Authorization", None))
check(r["fail"] == "missing" and r["code_query"] == "MissingAuthenticationToken" and
      r["code_json"] == "MissingAuthenticationTokenException", "no signature -> missing")

malformed = {
    "AWS4-HMAC-SHA1 Credential=a/20260101/r/s/aws4_request, SignedHeaders=host, Signature=" + "0" * 64: "algorithm",
    "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=" + "0" * 64: "Credential",
    "AWS4-HMAC-SHA256 Credential=AK/20261125/us-east-1/lambda/aws4_request, Signature=" + "0" * 64: "SignedHeaders",
    "AWS4-HMAC-SHA256 Credential=AK/20261125/us-east-1/lambda/aws4_request, SignedHeaders=host": "Signature",
    "AWS4-HMAC-SHA256 Credential=AK/2026112/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=" + "0" * 64: "Credential",
    "AWS4-HMAC-SHA256 Credential=AK/20261125/us-east-1/lambda, SignedHeaders=host, Signature=" + "0" * 64: "Credential",
    "AWS4-HMAC-SHA256 Credential=AK/20261125/us-east-1/lambda/aws4_request, SignedHeaders=Host;X, Signature=" + "0" * 64: "SignedHeaders",
    "AWS4-HMAC-SHA256 Credential=AK/20261125/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=xyz": "Signature",
    "": "algorithm",
    # AWS refuses a signature that does not cover Host
    "AWS4-HMAC-SHA256 Credential=AK/20261125/us-east-1/lambda/aws4_request, SignedHeaders=x-amz-date, Signature=" + "0" * 64: "SignedHeaders",
    "AWS4-HMAC-SHA256 Credential=AK/20261125/us-east-1/lambda/aws4_request, SignedHeaders=hostx;x-amz-date, Signature=" + "0" * 64: "SignedHeaders",
    "AWS4-HMAC-SHA256 Credential=" + "A" * 5000 + "/20261125/r/s/aws4_request, SignedHeaders=host, Signature=" + "0" * 64: "Credential",
}
for value, part in malformed.items():
    r = tool(with_header(base, "Authorization", value))
    check(r["fail"] == "incomplete" and part in r["message"] and r["http_query"] == 400,
          "malformed %r -> incomplete naming %s (%s: %s)" % (value[:60], part, r["fail"], r["message"]))
r = tool(with_header(base, "X-Amz-Date", "2026-11-25T09:17:09Z"))
check(r["fail"] == "incomplete" and "X-Amz-Date" in r["message"], "bad X-Amz-Date")
other_day = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(amz_time(amz) + 86400))
r = tool(dict(with_header(base, "X-Amz-Date", other_day), now=amz_time(amz) + 86400))
check(r["fail"] == "bad_scope" and "Credential scope" in r["message"], "scope date mismatch")

if failures:
    print("%d failures" % len(failures))
    sys.exit(1)
print("all SigV4 checks passed")
