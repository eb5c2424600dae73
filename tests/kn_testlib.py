"""What the Python server tests share: the check() tally, the client
environment (no AWS profile, KENNEL_ROOT_* equal to the clients' key), a
kennel server on a free port found through its ready file, boto3 clients and
botocore-signed requests.  A test imports it with
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import kn_testlib as lib
and reads lib.failures / lib.checks at the end."""
import http.server
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

KN = os.environ.get("KN_BIN")
REGION = "us-east-1"
failures = 0
checks = 0


def check(name, cond, detail=None):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print(f"FAIL: {name}: {detail!r}"[:2000], flush=True)
    return cond


def begin(key, secret, needs=("boto3",)):
    """The start of a server test: KN_BIN set and the modules importable,
    else the reason printed and an exit status (1 or 77, skipped); then the
    clients' environment (client_env). Returns (TemporaryDirectory, None) or
    (None, exit status)."""
    import importlib
    import tempfile
    if not KN:
        print("KN_BIN not set")
        return None, 1
    for m in needs:
        try:
            importlib.import_module(m)
        except ImportError as e:
            print(f"skip: {e} (needs python3-{m.split('.')[0]})")
            return None, 77
    client_env(key, secret)
    return tempfile.TemporaryDirectory(), None


def done(server_log=None, tail=6000):
    """The end of a test: the server's log tail when a check failed, the
    tally line, and the exit status."""
    import sys
    if failures and server_log and os.path.exists(server_log):
        sys.stdout.write(open(server_log, errors="replace").read()[-tail:])
    print(f"{checks - failures} passed, {failures} failed")
    return 1 if failures else 0


def client_env(key, secret, **more):
    """The test's clients use key/secret and nothing from the user's AWS
    setup; the server seeds its administrator key from the same pair."""
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(k, None)
    os.environ.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                      KENNEL_ROOT_ACCESS_KEY_ID=key, KENNEL_ROOT_SECRET_ACCESS_KEY=secret,
                      **more)


class Server:
    """`kennel server` on --port 0; url/port from its ready file."""

    def __init__(self, data, ready, log, extra=(), log_mode="ab"):
        self.data, self.ready, self.log_path = data, ready, log
        self.extra, self.log_mode = list(extra), log_mode
        self.proc = None
        self.url = None
        self.port = None

    def start(self, tries=400):
        """Starts it and waits for the ready file; url stays None when the
        server exits or does not get ready."""
        if os.path.exists(self.ready):
            os.unlink(self.ready)
        self.url = self.port = None
        self.log = open(self.log_path, self.log_mode)
        self.proc = subprocess.Popen([KN, "server", "--data-dir", self.data, "--port", "0",
                                      "--ready-file", self.ready] + self.extra,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(tries):
            if os.path.exists(self.ready) and open(self.ready).read().strip():
                addr = open(self.ready).read().strip()
                self.url = "http://" + addr
                self.port = int(addr.rsplit(":", 1)[1])
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return self

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self, timeout=60):
        """SIGTERM, SIGKILL after timeout seconds; the exit status."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None


def client(service, url, key, secret, **kw):
    import boto3
    return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id=key,
                        aws_secret_access_key=secret, **kw)


def signed(url, method, path, service, key, secret, body=b"", headers=None):
    """A request signed by botocore's SigV4 signer; (status, body)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method=method, url=url + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(key, secret), service, REGION).add_auth(req)
    r = urllib.request.Request(url + path, data=body if method != "GET" else None,
                               method=method, headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def serve_bytes(files, redirects=None, content_type="application/octet-stream"):
    """A threaded HTTP server on a free loopback port: GET path answers
    files[path] (files[None] for any other path), a 302 to redirects[path],
    else 404. Returns the server (port: server.server_address[1]; stop it
    with shutdown())."""
    redirects = redirects or {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path in redirects:
                self.send_response(302)
                self.send_header("Location", redirects[self.path])
                self.end_headers()
                return
            body = files.get(self.path, files.get(None))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
