#!/usr/bin/env python3
"""kennel model-server as a real process on a free loopback port.

A random-weights resnet18 package is made with `kennel model package --init
random`; the server answers:
  - GET /ping 200; GET /execution-parameters; GET /metrics whose counters
    match the requests this test sent;
  - POST /invocations with image/jpeg, image/png, application/x-image,
    application/json {"url"} (fetched from an HTTP server on loopback run by
    this test, also through a redirect), {"image"} / {"b64"} base64 (standard,
    URL-safe, data: URI) and lists of them; every row equals `kennel predict
    --json` for the same image;
  - a list longer than --max-batch and many concurrent requests (dynamically
    batched together) give the same rows as single requests;
  - Accept text/csv;
  - errors: 415, 400 (undecodable image, bad JSON, bad base64, URL not
    allowed, fetch failures: 404, over the URL byte limit, over the request's
    byte limit together, timeout, redirect to file:), 413 over 6 MiB (announced, with and without Expect: 100-continue,
    and chunked) but not at exactly 6 MiB, 404, 405, 406, pixel limit;
  - SIGTERM while a request is in flight: the request completes, a new
    request on a kept-alive connection gets 503, the process exits 0.
With ../shared present, the same for mobilenet_v1_0.25_224.tflite + labels.
"""
import base64
import functools
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

KN = os.environ.get("KN_BIN")
SRC = os.environ.get("KN_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("KN_SHARED", os.path.join(SRC, "..", "shared"))
LIMIT = 6 * 1024 * 1024

failures = 0
checks = 0


def check(name, cond, detail=""):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print(f"FAIL: {name} {detail}", flush=True)
    return cond


# ---- images -------------------------------------------------------------------


def png_bytes(w, h, seed, declared=None):
    rows = b"".join(
        b"\0" + bytes(((x * 7 + y * 3 + seed) * (seed + 5) + c * 40) % 256
                      for x in range(w) for c in range(3))
        for y in range(h))

    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))

    dw, dh = declared or (w, h)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", dw, dh, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# ---- HTTP -----------------------------------------------------------------------


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def request(port, method, path, body=None, headers=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        if conn is None:
            c.close()


answered = [0]  # images answered with rows
answered_lock = threading.Lock()


def invoke(port, body, ctype, accept=None, conn=None):
    h = {"Content-Type": ctype} if ctype else {}
    if accept:
        h["Accept"] = accept
    r = request(port, "POST", "/invocations", body, h, conn)
    if r.status == 200:
        n = len(r.body.decode().strip().splitlines()) if accept == "text/csv" else len(r.json())
        with answered_lock:
            answered[0] += n
    return r


def rows_close(got, want, tol=1e-5):
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if len(g) != len(w):
            return False
        for a, b in zip(g, w):
            if not abs(a - b) <= tol * (1 + abs(b)):
                return False
    return True


def predict(model, files, extra=()):
    out = subprocess.run([KN, "predict", "--model", model, "--json", *extra, *files],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        print(out.stderr)
        raise SystemExit(f"kennel predict failed ({out.returncode})")
    rows = [json.loads(line)[0] for line in out.stdout.splitlines() if line.strip()]
    assert len(rows) == len(files)
    return dict(zip(files, rows))


class Server:
    """A kennel model-server process on a free port (--port 0, --ready-file)."""

    def __init__(self, tmp, name, model, *args):
        self.ready = os.path.join(tmp, name + ".ready")
        self.log = open(os.path.join(tmp, name + ".log"), "w+")
        self.p = subprocess.Popen(
            [KN, "model-server", "--model", model, "--listen", "127.0.0.1", "--port", "0",
             "--ready-file", self.ready, *args],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 600
        while not os.path.exists(self.ready):
            if self.p.poll() is not None:
                raise SystemExit(f"model-server exited with {self.p.returncode}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                self.p.kill()
                raise SystemExit("model-server did not become ready")
            time.sleep(0.05)
        with open(self.ready) as f:
            host, port = f.read().strip().rsplit(":", 1)
        self.port = int(port)

    def stderr(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        """SIGTERM and wait; returns the exit code."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return -1

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


# ---- the image server for {"url": ...} ------------------------------------------


class Files(http.server.SimpleHTTPRequestHandler):
    release = threading.Event()  # lets the "slow" URL finish at the end

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/redirect"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/hostname")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/slow":
            Files.release.wait(60)
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            super().do_GET()


def start_file_server(root):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Files, directory=root))
    srv.daemon_threads = True
    srv.handle_error = lambda *a: None  # clients that hang up (the byte limit) are expected
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


# ---- the test ---------------------------------------------------------------------


def main():
    if not KN:
        print("KN_BIN not set")
        return 1
    tmp = tempfile.mkdtemp(prefix="kn_test_model_server.")
    servers = []
    try:
        return run(tmp, servers)
    except BaseException:
        for s in servers:
            print(f"model-server ({'running' if s.p.poll() is None else s.p.returncode}) stderr:\n"
                  + s.stderr())
        raise
    finally:
        Files.release.set()
        for s in servers:
            s.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp, servers):
    # images: committed JPEGs and PNGs of several kinds, and generated PNGs
    corpus = os.path.join(SRC, "fuzz", "corpus", "img")
    imgs = {}
    for name in ("baseline420.jpg", "progressive.jpg", "exif6.jpg", "gray.jpg", "pal8.png",
                 "rgb8_interlaced.png"):
        dst = os.path.join(tmp, name)
        shutil.copyfile(os.path.join(corpus, name), dst)
        imgs[name] = dst
    for i, (w, h) in enumerate([(40, 30), (33, 51), (64, 64), (17, 90)]):
        dst = os.path.join(tmp, f"gen{i}.png")
        with open(dst, "wb") as f:
            f.write(png_bytes(w, h, i + 1))
        imgs[f"gen{i}.png"] = dst
    data = {k: open(v, "rb").read() for k, v in imgs.items()}
    jpegs = [k for k in imgs if k.endswith(".jpg")]
    pngs = [k for k in imgs if k.endswith(".png")]
    with open(os.path.join(tmp, "big.bin"), "wb") as f:
        f.write(bytes(2 * 1024 * 1024))
    with open(os.path.join(tmp, "mid.bin"), "wb") as f:
        f.write(bytes(600 * 1024))
    with open(os.path.join(tmp, "notes.txt"), "w") as f:
        f.write("these are not pixels\n")

    pkg = os.path.join(tmp, "pkg")
    subprocess.run([KN, "model", "package", "--arch", "resnet18", "--init", "random",
                    "--classes", "4", "--seed", "11", "--out", pkg],
                   check=True, stdout=subprocess.DEVNULL, timeout=600)
    want = predict(pkg, list(imgs.values()))
    want = {k: want[v] for k, v in imgs.items()}
    # the images must be told apart by the model for the row checks to mean anything
    distinct = [r for r in want.values()]
    check("random model separates the images",
          all(not rows_close([a], [b], 1e-3) for i, a in enumerate(distinct) for b in distinct[i + 1:]))

    files_srv = start_file_server(tmp)
    fport = files_srv.server_address[1]
    srv = Server(tmp, "pkg", pkg, "--max-batch", "4", "--max-wait-us", "50000", "--threads", "2",
                 "--url-max-bytes", "1MiB", "--url-max-total", "1MiB",
                 "--url-timeout-ms", "5000")
    servers.append(srv)
    port = srv.port
    sent = {}  # status -> responses this test received from /invocations and others

    def got(r):
        sent[r.status] = sent.get(r.status, 0) + 1
        return r

    r = got(request(port, "GET", "/ping"))
    check("ping 200", r.status == 200 and r.body == b"", f"{r.status} {r.body!r}")
    r = got(request(port, "HEAD", "/ping"))
    check("HEAD ping 200", r.status == 200)
    r = got(request(port, "GET", "/execution-parameters"))
    check("execution-parameters", r.status == 200 and r.json()["MaxPayloadInMB"] == 6, r.body)

    # raw image bodies
    for name in jpegs:
        r = got(invoke(port, data[name], "image/jpeg"))
        check(f"jpeg {name} 200", r.status == 200, f"{r.status} {r.body[:200]!r}")
        if r.status == 200:
            check(f"jpeg {name} content-type", r.header("Content-Type") == "application/json")
            check(f"jpeg {name} rows", rows_close(r.json(), [want[name]]), f"{r.json()} vs {want[name]}")
    for name in pngs:
        r = got(invoke(port, data[name], "image/png", accept="application/json"))
        check(f"png {name} rows", r.status == 200 and rows_close(r.json(), [want[name]]),
              f"{r.status} {r.body[:200]!r}")
    r = got(invoke(port, data["gen1.png"], "application/x-image", accept="*/*"))
    check("x-image rows", r.status == 200 and rows_close(r.json(), [want["gen1.png"]]), r.body[:200])
    r = got(invoke(port, data["baseline420.jpg"], "image/jpeg; charset=binary"))
    check("content-type parameters ignored", r.status == 200, r.status)

    # CSV
    r = got(invoke(port, data["gen0.png"], "image/png", accept="text/csv"))
    ok = r.status == 200 and r.header("Content-Type") == "text/csv"
    if ok:
        vals = [float(v) for v in r.body.decode().strip().split(",")]
        ok = rows_close([vals], [want["gen0.png"]])
    check("csv row", ok, r.body[:200])

    # JSON: url, base64 variants, lists
    u = f"http://127.0.0.1:{fport}"
    r = got(invoke(port, json.dumps({"url": f"{u}/baseline420.jpg"}), "application/json"))
    check("json url rows", r.status == 200 and rows_close(r.json(), [want["baseline420.jpg"]]),
          f"{r.status} {r.body[:300]!r}")
    r = got(invoke(port, json.dumps({"url": f"{u}/redirect/gen2.png"}), "application/json"))
    check("json url through a redirect", r.status == 200 and rows_close(r.json(), [want["gen2.png"]]),
          f"{r.status} {r.body[:300]!r}")
    r = got(invoke(port, json.dumps({"image": base64.b64encode(data["progressive.jpg"]).decode()}),
                   "application/json; charset=utf-8"))
    check("json image base64", r.status == 200 and rows_close(r.json(), [want["progressive.jpg"]]),
          f"{r.status} {r.body[:300]!r}")
    urlsafe = base64.urlsafe_b64encode(data["pal8.png"]).decode().rstrip("=")
    r = got(invoke(port, json.dumps({"b64": urlsafe}), "application/json"))
    check("json b64 url-safe unpadded", r.status == 200 and rows_close(r.json(), [want["pal8.png"]]),
          f"{r.status} {r.body[:300]!r}")
    b = base64.encodebytes(data["gray.jpg"]).decode()  # with newlines every 76 characters
    r = got(invoke(port, json.dumps({"image": "data:image/jpeg;base64," + b}), "application/json"))
    check("json data: URI with line breaks", r.status == 200 and rows_close(r.json(), [want["gray.jpg"]]),
          f"{r.status} {r.body[:300]!r}")
    order = ["gen3.png", "exif6.jpg", "rgb8_interlaced.png", "baseline420.jpg", "gen0.png", "gray.jpg"]
    body = []
    for i, name in enumerate(order):
        if i % 2:
            body.append({"url": f"{u}/{name}"})
        else:
            body.append({"image": base64.b64encode(data[name]).decode()})
    # six images with --max-batch 4: split over two forward passes, rows in order
    r = got(invoke(port, json.dumps(body), "application/json"))
    check("json list of 6 rows in order", r.status == 200 and rows_close(r.json(), [want[n] for n in order]),
          f"{r.status} {r.body[:300]!r}")

    # many concurrent requests: batched together, each gets its own rows
    names = list(imgs)
    jobs = [names[i % len(names)] for i in range(48)]

    def one(name):
        if name.endswith(".jpg"):
            return name, invoke(port, data[name], "image/jpeg")
        return name, invoke(port, json.dumps([{"image": base64.b64encode(data[name]).decode()}]),
                            "application/json")

    with ThreadPoolExecutor(max_workers=12) as ex:
        results = list(ex.map(one, jobs))
    bad = [(n, r.status, r.body[:100]) for n, r in results
           if not (r.status == 200 and rows_close(r.json(), [want[n]]))]
    for _, r in results:
        got(r)
    check("concurrent requests get their own rows", not bad, bad[:3])

    # ---- errors ----
    def err(name, r, status, error, msg=None):
        got(r)
        ok = r.status == status
        try:
            j = r.json()
            ok = ok and j.get("error") == error and isinstance(j.get("message"), str)
            if msg is not None:
                ok = ok and msg in j["message"]
        except ValueError:
            ok = False
        ok = ok and (r.header("Content-Type") or "").startswith("application/json")
        check(name, ok, f"{r.status} {r.body[:300]!r}")

    err("415 text/plain", invoke(port, data["gen0.png"], "text/plain"), 415, "UnsupportedMediaType",
        "text/plain")
    err("415 missing content-type", invoke(port, data["gen0.png"], None), 415, "UnsupportedMediaType")
    err("415 image/gif", invoke(port, b"GIF89a", "image/gif"), 415, "UnsupportedMediaType")
    err("400 undecodable image", invoke(port, b"these are not pixels", "image/jpeg"), 400, "InvalidImage")
    err("400 truncated png", invoke(port, data["gen2.png"][:200], "image/png"), 400, "InvalidImage")
    err("400 empty image body", invoke(port, b"", "image/jpeg"), 400, "InvalidImage")
    err("400 pixel limit", invoke(port, png_bytes(4, 4, 1, declared=(20000, 20000)), "image/png"),
        400, "InvalidImage")
    err("400 bad JSON", invoke(port, b'{"url": ', "application/json"), 400, "InvalidJSON", "line 1")
    err("400 JSON not an object", invoke(port, b'"x"', "application/json"), 400, "InvalidRequest")
    err("400 JSON unknown field", invoke(port, b'{"uri": "x"}', "application/json"), 400,
        "InvalidRequest", "uri")
    err("400 bad base64", invoke(port, b'{"image": "aGk*"}', "application/json"), 400,
        "InvalidBase64", "offset 3")
    err("400 base64 of non-image", invoke(port, b'{"image": "aGVsbG8="}', "application/json"), 400,
        "InvalidImage")
    err("400 list item named", invoke(port, json.dumps([{"image": base64.b64encode(data["gen0.png"]).decode()},
                                                        {"b64": "aGk*"}]), "application/json"),
        400, "InvalidBase64", "[1]")
    err("400 file: URL not allowed", invoke(port, json.dumps({"url": "file:///etc/hostname"}),
                                            "application/json"), 400, "InvalidURL", "file")
    err("400 URL 404", invoke(port, json.dumps({"url": f"{u}/missing.jpg"}), "application/json"),
        400, "FetchFailed", "404")
    err("400 URL over the byte limit", invoke(port, json.dumps({"url": f"{u}/big.bin"}),
                                              "application/json"), 400, "FetchFailed", "limit")
    err("400 URLs over the request's byte limit together",
        invoke(port, json.dumps([{"url": f"{u}/mid.bin"}, {"url": f"{u}/mid.bin"}]), "application/json"),
        400, "FetchFailed", "together")
    err("400 URL redirect to file:", invoke(port, json.dumps({"url": f"{u}/to-file"}),
                                            "application/json"), 400, "FetchFailed")
    err("400 URL timeout", invoke(port, json.dumps({"url": f"{u}/slow"}), "application/json"),
        400, "FetchFailed")
    err("400 URL not an image", invoke(port, json.dumps({"url": f"{u}/notes.txt"}),
                                       "application/json"), 400, "InvalidImage")
    err("404", request(port, "GET", "/nope"), 404, "NotFound")
    err("404 with a body", request(port, "POST", "/predict", data["gen0.png"],
                                   {"Content-Type": "image/png"}), 404, "NotFound")
    r = request(port, "GET", "/invocations")
    err("405 GET /invocations", r, 405, "MethodNotAllowed")
    check("405 Allow header", r.header("Allow") == "POST", r.headers)
    r = request(port, "POST", "/ping", b"x", {"Content-Type": "text/plain"})
    err("405 POST /ping", r, 405, "MethodNotAllowed")
    check("405 Allow GET", (r.header("Allow") or "").startswith("GET"), r.headers)
    err("406", invoke(port, data["gen0.png"], "image/png", accept="image/png"), 406, "NotAcceptable")
    err("406 q=0", invoke(port, data["gen0.png"], "image/png", accept="application/json;q=0"), 406,
        "NotAcceptable")

    # 413: a Content-Length over the limit is refused without storing the body;
    # a client that is sending it anyway still gets the answer
    over = bytes(LIMIT + 1)
    err("413 over 6 MiB", invoke(port, over, "image/jpeg"), 413, "PayloadTooLarge", str(LIMIT))
    err("413 over 6 MiB json", invoke(port, b'{"image": "' + b"A" * LIMIT + b'"}', "application/json"),
        413, "PayloadTooLarge")
    err("400 at exactly 6 MiB", invoke(port, over[:LIMIT], "image/jpeg"), 400, "InvalidImage")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    err("413 chunked", request(port, "POST", "/invocations", iter([over[:LIMIT // 2], over[LIMIT // 2:]]),
                               {"Content-Type": "image/jpeg"}, conn),  # an iterator: sent chunked
        413, "PayloadTooLarge")
    err("keep-alive after 413", invoke(port, b"", "image/jpeg", conn=conn), 400, "InvalidImage")
    conn.close()
    # Expect: 100-continue: the answer comes instead of "100 Continue"
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
              b"Content-Length: 7000000\r\nExpect: 100-continue\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    s.close()
    got(Resp(413, [], b""))
    check("413 before the body with Expect: 100-continue", head.startswith(b"HTTP/1.1 413"), head[:100])

    # ---- metrics ----
    r = request(port, "GET", "/metrics")
    check("metrics 200", r.status == 200 and (r.header("Content-Type") or "").startswith("text/plain"))
    text = r.body.decode()
    for code in (400, 404, 405, 406, 413, 415):
        v = metric(text, f'kennel_responses_total{{code="{code}"}}')
        check(f"metrics counts {code}", v == sent.get(code, 0), f"{v} vs {sent.get(code, 0)}")
    check("metrics images", metric(text, "kennel_images_total") == answered[0],
          f'{metric(text, "kennel_images_total")} vs {answered[0]}')
    check("metrics batch of 4 ran", (metric(text, 'kennel_batch_size_bucket{le="4"}') or 0)
          > (metric(text, 'kennel_batch_size_bucket{le="2"}') or 0), "")
    check("metrics batch sum", metric(text, "kennel_batch_size_sum") == answered[0],
          f'{metric(text, "kennel_batch_size_sum")} vs {answered[0]}')
    # a request leaves the in-flight gauge once its answer is sent, which may be
    # just after the client has read it
    deadline = time.monotonic() + 60
    while metric(text, "kennel_inflight_requests") != 0 and time.monotonic() < deadline:
        time.sleep(0.01)
        text = request(port, "GET", "/metrics").body.decode()
    check("metrics nothing in flight", metric(text, "kennel_inflight_requests") == 0)

    # ---- SIGTERM with a request in flight ----
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    check("keep-alive ping", request(port, "GET", "/ping", conn=keep).status == 200)
    body = data["gen3.png"]
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
    deadline = time.monotonic() + 120
    while metric(request(port, "GET", "/metrics").body.decode(), "kennel_inflight_requests") != 1:
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    srv.p.send_signal(signal.SIGTERM)
    # once the listening socket is gone, a kept-alive connection gets 503
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            time.sleep(0.02)
        except OSError:
            break
    r = invoke(port, data["gen0.png"], "image/png", conn=keep)
    check("503 while draining", r.status == 503 and r.json()["error"] == "ServiceUnavailable",
          f"{r.status} {r.body[:200]!r}")
    check("503 closes the connection", (r.header("Connection") or "").lower() == "close")
    keep.close()
    check("still running while a request is in flight", srv.p.poll() is None)
    s.sendall(body[100:])
    resp = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        resp += chunk
        if b"\r\n\r\n" in resp:
            h, _, rest = resp.partition(b"\r\n\r\n")
            n = [int(l.split(b":")[1]) for l in h.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if n and len(rest) >= n[0]:
                break
    s.close()
    h, _, rest = resp.partition(b"\r\n\r\n")
    ok = h.startswith(b"HTTP/1.1 200")
    check("request in flight completes", ok and rows_close(json.loads(rest), [want["gen3.png"]]), resp[:300])
    code = srv.stop()
    err_text = srv.stderr()
    check("exit 0 after SIGTERM", code == 0, f"{code}\n{err_text}")
    check("no sanitizer report", "Sanitizer" not in err_text and "runtime error" not in err_text, err_text)
    check("ready file removed", not os.path.exists(srv.ready))

    shared_tflite(tmp, servers, fport)
    print(f"{checks} checks, {failures} failed")
    return 1 if failures else 0


def shared_tflite(tmp, servers, fport):
    model = os.path.join(SHARED, "data", "models", "mobilenet_v1_0.25_224.tflite")
    labels = os.path.join(SHARED, "data", "models", "imagenet_labels.txt")
    images = os.path.join(SHARED, "data", "images")
    if not (os.path.exists(model) and os.path.exists(labels) and os.path.isdir(images)):
        print("skipping the mobilenet_v1_0.25_224.tflite part: ../shared/data is absent")
        return
    names = sorted(n for n in os.listdir(images) if n.endswith((".jpg", ".png")))
    files = [os.path.join(images, n) for n in names]
    for n, f in zip(names, files):
        shutil.copyfile(f, os.path.join(tmp, "shared_" + n))
    want = predict(model, files, ["--labels", labels])
    srv = Server(tmp, "tflite", model, "--labels", labels, "--max-batch", "4", "--max-wait-us", "20000")
    servers.append(srv)
    for n, f in zip(names, files):
        ctype = "image/png" if n.endswith(".png") else "image/jpeg"
        r = invoke(srv.port, open(f, "rb").read(), ctype)
        ok = r.status == 200 and rows_close(r.json(), [want[f]], 1e-4) and len(r.json()[0]) == 1001
        check(f"tflite {n}", ok, f"{r.status} {r.body[:200]!r}")
        r = invoke(srv.port, json.dumps({"url": f"http://127.0.0.1:{fport}/shared_{n}"}), "application/json")
        check(f"tflite url {n}", r.status == 200 and rows_close(r.json(), [want[f]], 1e-4),
              f"{r.status} {r.body[:200]!r}")
    body = json.dumps([{"image": base64.b64encode(open(f, "rb").read()).decode()} for f in files])
    r = invoke(srv.port, body, "application/json")
    check("tflite list", r.status == 200 and rows_close(r.json(), [want[f] for f in files], 1e-4),
          f"{r.status} {r.body[:200]!r}")
    code = srv.stop()
    check("tflite exit 0", code == 0, srv.stderr())


if __name__ == "__main__":
    sys.exit(main())
