#!/usr/bin/python3
"""Parity of kennel's img module with PIL / torchvision on real photos.

For every image under $KN_SHARED/data/images (recursive) and
$KN_SHARED/data/pets-cats, kennel's helper binary (tests/img_test_img
--dump-batch) writes its decoded RGB, its 224x224 bilinear resize and its
torchvision-recipe tensor; we compare them with

  decode:  PIL.ImageOps.exif_transpose(Image.open(p)).convert("RGB")
  resize:  that image .resize((224, 224), Image.BILINEAR)
  tensor:  Compose([Resize((224, 224)), ToTensor(), Normalize(imagenet)])
           on Image.open(p).convert("RGB")   (what a torchvision user runs;
           kennel applies EXIF orientation, so images that carry a
           non-trivial orientation are compared on the transposed image)

Decode and resize must be byte-exact (libjpeg-turbo is shared with PIL and
the resize reproduces PIL 9.4's fixed-point arithmetic); the tensors must
have mean |diff| <= 1/255. The same decode check runs over the synthetic
images (every PNG kind, gray / CMYK / progressive JPEG, EXIF orientations)
that test_img --write-samples produces. Exit 77 = skipped, with the reason.
"""
import glob
import os
import subprocess
import sys
import tempfile
import warnings


def skip(why):
    print("SKIP:", why)
    sys.exit(77)


try:
    import numpy as np
    import PIL
    from PIL import Image, ImageOps
    import torch  # noqa: F401  (torchvision needs it)
    import torchvision.transforms as T
except ImportError as exc:  # pragma: no cover
    skip(f"python dependency missing: {exc}")

BUILD = os.environ.get("KN_BUILD_DIR", "")
SHARED = os.environ.get("KN_SHARED", "")
TOOL = os.path.join(BUILD, "tests", "img_test_img")
if not os.access(TOOL, os.X_OK):
    skip(f"{TOOL} not built")
if not SHARED or not os.path.isdir(os.path.join(SHARED, "data", "images")):
    skip(f"shared data not found at {SHARED!r}/data/images")

# PIL warns about palette PNGs with tRNS on convert(); irrelevant here.
warnings.filterwarnings("ignore", category=UserWarning)
EXACT_RESIZE = PIL.__version__.startswith("9.4.")
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def read_rgb(path):
    raw = open(path, "rb").read()
    w, h = np.frombuffer(raw[:8], dtype=np.int32)
    return np.frombuffer(raw[8:], dtype=np.uint8).reshape(int(h), int(w), 3)


def pil_rgb(path):
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


def check_photos(tmp):
    files = sorted(glob.glob(os.path.join(SHARED, "data", "images", "**", "*.*"), recursive=True))
    cats = sorted(glob.glob(os.path.join(SHARED, "data", "pets-cats", "*", "*.jpg")))
    images = [f for f in files if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    run = subprocess.run([TOOL, "--dump-batch", tmp] + images + cats, capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"img_test_img --dump-batch failed: {run.stderr.strip()}")
        return
    tf = T.Compose([
        T.Resize((224, 224)),
        T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    print(f"PIL {PIL.__version__}; {len(images)} images + {len(cats)} pets-cats photos")
    print(f"{'image':46s} {'size':>10s} {'decode':>7s} {'resize':>7s} {'max|d|':>9s} {'mean|d|':>9s}")
    tot = {"decode": 0, "resize": 0, "max": 0.0, "mean": 0.0, "n": 0}
    for i, path in enumerate(images + cats):
        ours = read_rgb(os.path.join(tmp, f"{i}.rgb"))
        ref_img = pil_rgb(path)
        ref = np.asarray(ref_img)
        if ours.shape != ref.shape:
            fail(f"{path}: decoded shape {ours.shape} vs PIL {ref.shape}")
            continue
        d_dec = int((ours != ref).sum())
        ours_r = np.fromfile(os.path.join(tmp, f"{i}.resized"), dtype=np.uint8).reshape(224, 224, 3)
        ref_r = np.asarray(ref_img.resize((224, 224), Image.BILINEAR))
        d_res = int((ours_r != ref_r).sum())
        ours_t = np.fromfile(os.path.join(tmp, f"{i}.tensor"), dtype=np.float32).reshape(3, 224, 224)
        plain = Image.open(path).convert("RGB")
        oriented = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        src = oriented if oriented.size != plain.size or np.any(np.asarray(oriented) != np.asarray(plain)) else plain
        ref_t = tf(src).numpy()
        diff = np.abs(ours_t.astype(np.float64) - ref_t.astype(np.float64))
        dmax, dmean = float(diff.max()), float(diff.mean())
        tot["decode"] += d_dec
        tot["resize"] += d_res
        tot["max"] = max(tot["max"], dmax)
        tot["mean"] += dmean
        tot["n"] += 1
        rel = os.path.relpath(path, os.path.join(SHARED, "data"))
        if i < len(images) or d_dec or d_res or dmax > 0:
            size = f"{ref.shape[1]}x{ref.shape[0]}"
            print(f"{rel:46s} {size:>10s} {d_dec:7d} {d_res:7d} {dmax:9.2e} {dmean:9.2e}")
        if d_dec:
            fail(f"{rel}: {d_dec} decoded bytes differ from PIL")
        if d_res and EXACT_RESIZE:
            fail(f"{rel}: {d_res} resized bytes differ from PIL {PIL.__version__}")
        if dmean > 1.0 / 255:
            fail(f"{rel}: tensor mean |diff| {dmean:.3g} > 1/255")
    if tot["n"]:
        print(f"all {tot['n']} photos: decode bytes differing {tot['decode']}, "
              f"resize bytes differing {tot['resize']}, tensor max |diff| {tot['max']:.3g}, "
              f"mean of mean |diff| {tot['mean'] / tot['n']:.3g}")


def check_samples(tmp):
    sdir = os.path.join(tmp, "samples")
    os.mkdir(sdir)
    run = subprocess.run([TOOL, "--write-samples", sdir, "61"], capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"img_test_img --write-samples failed: {run.stderr.strip()}")
        return
    samples = sorted(glob.glob(os.path.join(sdir, "*")))
    out = os.path.join(tmp, "sample.rgb")
    bad = 0
    for path in samples:
        name = os.path.basename(path)
        run = subprocess.run([TOOL, "--dump-rgb", path, out], capture_output=True, text=True)
        if run.returncode != 0:
            fail(f"sample {name}: {run.stderr.strip()}")
            continue
        ours = read_rgb(out)
        im = Image.open(path)
        if name == "gray16.png":
            # img.h keeps the high byte of 16-bit samples; PIL 9.4 clips
            # 16-bit gray ("I" mode) to 255 instead, so compare with >> 8.
            ref = np.repeat((np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)[..., None], 3, 2)
        else:
            ref = np.asarray(pil_rgb(path))
        d = -1 if ours.shape != ref.shape else int((ours != ref).sum())
        if d:
            bad += 1
            fail(f"sample {name} ({im.mode}): {d} bytes differ from PIL (shape {ours.shape} vs {ref.shape})")
    print(f"synthetic samples: {len(samples)} files, {bad} differ from PIL")


def main():
    with tempfile.TemporaryDirectory(prefix="kn_parity_") as tmp:
        check_photos(tmp)
        check_samples(tmp)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
