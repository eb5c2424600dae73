"""kennel demo --download when the network answers, against a mirror on
loopback (KENNEL_RESNET50_URL / KENNEL_DOGIMAGES_URL): the weights URL
answers with a redirect first, as the public one does; the archive is a
small dogImages.zip of the real layout (dogImages/{train,valid,test}/NNN.Breed/),
the weights a ResNet-50 of torchvision names written by `kennel model package
--init random` (the public file's names and shapes).

  - the whole demo runs on what was fetched: it says the downloaded data and
    ResNet-50, tunes, deploys dog-ep and answers with one score per breed;
  - what was fetched stays in $XDG_CACHE_HOME/kennel/downloads (the archive
    unpacked, no .part file left) and a second run takes it from there
    without the network (the mirror is gone by then);
  - an archive that is not dogImages is refused in one line that says so, and
    the demo falls back to the local data; nothing half-unpacked is kept."""
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kn_testlib as lib  # noqa: E402

BREEDS = ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]


def jpeg(rng, shade):
    from PIL import Image
    img = Image.new("RGB", (96, 80), shade)
    px = img.load()
    for _ in range(400):
        px[rng.randrange(96), rng.randrange(80)] = tuple(rng.randrange(256) for _ in range(3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def dog_images_zip(path):
    rng = random.Random(5)
    shades = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    with zipfile.ZipFile(path, "w") as z:
        for split, n in (("train", 4), ("valid", 1), ("test", 2)):
            for b, breed in enumerate(BREEDS):
                for i in range(n):
                    name = f"dogImages/{split}/{breed}/{breed.split('.')[1]}_{i:05d}.jpg"
                    z.writestr(name, jpeg(rng, shades[b]))


def run_until(cmd, env, line_has, timeout=60):
    """Starts cmd, reads its output until a line contains line_has, then
    stops it; returns the output so far."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    out = []
    timer = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
    timer.start()
    for line in p.stdout:
        out.append(line)
        if line_has in line:
            break
    os.killpg(p.pid, signal.SIGTERM)
    p.wait()
    timer.cancel()
    return "".join(out)


def main():
    kn = lib.KN
    if not kn:
        print("KN_BIN not set")
        return 1
    if os.environ.get("KN_SANITIZE") == "1":
        print("skip: training jobs cannot start under ASan's shadow memory with RLIMIT_DATA")
        return 77
    try:
        import PIL  # noqa: F401
    except ImportError as e:
        print(f"skip: {e} (needs python3-pil to write the test photos)")
        return 77
    tmp = tempfile.TemporaryDirectory()
    d = tmp.name
    dog_images_zip(f"{d}/dogImages.zip")
    r = subprocess.run([kn, "model", "package", "--arch", "resnet50", "--init", "random",
                        "--classes", "1000", "--out", f"{d}/rn50"], capture_output=True, text=True)
    if not lib.check("random ResNet-50 written", r.returncode == 0, r.stderr[-500:]):
        return 1
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("cats/train/a/1.jpg", b"x")
    files = {"/cdn/model.safetensors": open(f"{d}/rn50/model.safetensors", "rb").read(),
             "/s3/dogImages.zip": open(f"{d}/dogImages.zip", "rb").read(),
             "/s3/other.zip": buf.getvalue()}
    # the public weights URL answers with a redirect to a CDN: so does the mirror
    mirror = {"files": files, "redirects": {"/hf/resnet50": "/cdn/model.safetensors"}}
    httpd = lib.serve_bytes(**mirror)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    cache = f"{d}/cache"
    env = dict(os.environ, XDG_CACHE_HOME=cache, TMPDIR=f"{d}/t", no_proxy="127.0.0.1",
               NO_PROXY="127.0.0.1", KENNEL_RESNET50_URL=f"{base}/hf/resnet50",
               KENNEL_DOGIMAGES_URL=f"{base}/s3/dogImages.zip")
    os.makedirs(f"{d}/t")
    dl = f"{cache}/kennel/downloads"

    # the whole demo on what was fetched
    r = subprocess.run([kn, "demo", "--download", "--load-seconds", "8"], env=env,
                       capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    print(out, flush=True)
    lib.check("demo exit 0", r.returncode == 0, out[-3000:])
    lib.check("fetched both", "--download: fetching " + base + "/hf/resnet50" in out and
              "--download: fetching " + base + "/s3/dogImages.zip" in out, out[:1500])
    lib.check("says the downloaded data and backbone",
              f"data: the reference project's dogImages (3 breeds, downloaded to {dl}) on "
              "ImageNet ResNet-50 weights (downloaded)" in out, out[:1500])
    lib.check("no fallback", "falling back" not in out, out[:1500])
    lib.check("tuned two trials", out.count("trial dog-hpo-") == 2, out[:3000])
    lib.check("dog-ep in service", "dog-ep InService" in out, out[-3000:])
    rows = [ln for ln in out.splitlines() if ln.startswith("response: ")]
    scores = None
    if rows:
        body = json.loads(rows[0][len("response: "):])
        if isinstance(body, dict):
            body = json.loads(body["body"])
        scores = body[0] if isinstance(body, list) and body else body
    lib.check("one score per breed", isinstance(scores, list) and len(scores) == 3, rows[:1])
    lib.check("demo done", "kennel demo done in" in out, out[-500:])
    lib.check("run directory removed", os.listdir(f"{d}/t") == [], os.listdir(f"{d}/t"))
    kept = sorted(os.listdir(dl)) if os.path.isdir(dl) else None
    lib.check("downloads kept, unpacked, no partial file",
              kept == ["dogImages", "resnet50.tv_in1k.safetensors"], kept)
    lib.check("the archive's three splits",
              sorted(os.listdir(f"{dl}/dogImages")) == ["test", "train", "valid"]
              and sorted(os.listdir(f"{dl}/dogImages/train")) == BREEDS)
    lib.check("weights byte for byte",
              open(f"{dl}/resnet50.tv_in1k.safetensors", "rb").read()
              == files["/cdn/model.safetensors"])

    # the mirror is gone: a second run takes both from the cache
    httpd.shutdown()
    httpd.server_close()
    out = run_until([kn, "demo", "--download"], env, "== 1.")
    lib.check("second run: weights from the cache",
              f"--download: ResNet-50 weights from {dl}/resnet50.tv_in1k.safetensors "
              "(fetched by an earlier run)" in out, out)
    lib.check("second run: data from the cache",
              f"--download: dogImages from {dl}/dogImages (fetched by an earlier run)" in out and
              "data: the reference project's dogImages (3 breeds" in out, out)
    lib.check("second run: nothing fetched", "--download: fetching" not in out, out)

    # an archive that is not dogImages: one line, the local data instead
    shutil.rmtree(dl)
    httpd = lib.serve_bytes(**mirror)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    env.update(KENNEL_RESNET50_URL=f"{base}/hf/resnet50",
               KENNEL_DOGIMAGES_URL=f"{base}/s3/other.zip")
    out = run_until([kn, "demo", "--download"], env, "== 1.")
    lib.check("not dogImages: said in one line",
              f"--download: {base}/s3/other.zip is not the dogImages archive (no dogImages/train/ "
              "in it); falling back to the local data" in out, out)
    lib.check("not dogImages: local data used", "data: " in out and "dogImages (" not in out, out)
    left = sorted(os.listdir(dl)) if os.path.isdir(dl) else None
    lib.check("not dogImages: no archive or half data set kept",
              left == ["resnet50.tv_in1k.safetensors"], left)
    httpd.shutdown()
    print(f"{lib.checks - lib.failures} passed, {lib.failures} failed")
    return 1 if lib.failures else 0


if __name__ == "__main__":
    sys.exit(main())
