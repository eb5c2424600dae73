#!/usr/bin/python3
"""Quantized TFLite parity: kennel's float import of the uint8 MobileNets
(weights dequantized, float arithmetic, both backends) against
tflite_quant_ref.py, an independent NumPy executor of the same file (see that
file's header for why it is independent), for every image under
../shared/data/images:

  * mobilenet_v2_1.0_224_quant: kennel's top-1 must equal the top-1 of the
    reference's true integer execution (uint8 activations, int32
    accumulators, requantization, TFLite's fixed-point softmax).
  * both models: kennel's top-1 must equal the top-1 of the reference's
    float64 execution of the same quantized graph (run_float: dequantized
    weights, activations clipped to their quantized ranges, no rounding),
    i.e. kennel is a correct float execution of the file.
  * mobilenet_v1_0.25_224_quant, a much smaller net, is also compared with
    the integer execution, but there rounding of 8-bit activations alone can
    swap two near-equal classes (sparrow.png: the float64 execution and kennel
    say flamingo 0.100 / hummingbird 0.098, integer arithmetic says
    hummingbird 29/256 / flamingo 19/256); such a swap is reported as drift
    and only fails when the integer top-1 is not in kennel's top-3.

Both sides see the same pixels: kennel's own 224x224 bilinear resize, dumped
by `nn_test_tflite --dump-rgb224`; the reference takes those bytes as its
uint8 input tensor, kennel as in_scale * (q - in_zero). The reference's output
is TFLite's uint8 softmax (steps of 1/256), so several classes can share its
top code: kennel agrees when its top-1 is one of them (the tie is printed).
Before comparing, the reference checks itself on the first image: every
operator's integer result must lie within one quantization step of the same
operator computed in float64 on the dequantized inputs.
"""
import os
import subprocess
import sys
import tempfile

shared = os.environ.get("KN_SHARED", "")
images_dir = os.path.join(shared, "data", "images")
models_dir = os.path.join(shared, "data", "models")
if not os.path.isdir(images_dir) or not os.path.isdir(models_dir):
    print("SKIP: ../shared/data is absent (KN_SHARED=%r)" % shared)
    sys.exit(77)
try:
    import numpy as np
except ImportError as ex:
    print("SKIP: NumPy is not installed (%s); scripts/install-deps.sh installs python3-numpy"
          % ex)
    sys.exit(77)

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import tflite_quant_ref as ref  # noqa: E402

tool = os.path.join(os.environ["KN_BUILD_DIR"], "tests", "nn_test_tflite")
# model -> whether kennel's top-1 must equal the integer execution's
models = {"mobilenet_v2_1.0_224_quant.tflite": True,
          "mobilenet_v1_0.25_224_quant.tflite": False}
labels = open(os.path.join(models_dir, "imagenet_labels.txt")).read().split("\n")

images = []
for root, _, files in os.walk(images_dir):
    for f in files:
        if f.lower().endswith((".jpg", ".jpeg", ".png")):
            images.append(os.path.join(root, f))
images.sort()
if not images:
    print("FAIL: no images under %s" % images_dir)
    sys.exit(1)


def fmt_top5(scores, fmt):
    order = np.argsort(-scores, kind="stable")[:5]
    return " | ".join("%d %s %s" % (k, labels[k].split(",")[0], fmt % scores[k]) for k in order)


failures = 0
with tempfile.TemporaryDirectory() as tmp:
    rgb = {}
    for k, img in enumerate(images):
        path = os.path.join(tmp, "img%d.rgb" % k)
        subprocess.run([tool, "--dump-rgb224", img, path], check=True)
        rgb[img] = np.fromfile(path, dtype=np.uint8).reshape(224, 224, 3)

    for name, strict in models.items():
        model_path = os.path.join(models_dir, name)
        model = ref.Model(open(model_path, "rb").read())
        ref.self_check()
        print("== %s (%d operators)" % (name, len(model.ops)))
        for k, img in enumerate(images):
            check = [] if k == 0 else None
            codes, _ = ref.run(model, rgb[img], check)
            if check is not None:
                worst = max(check, key=lambda c: c[1])
                print("reference self-check: worst operator %s, %.3f quantization steps from "
                      "float64" % worst)
                if worst[1] >= 1.0:
                    print("FAIL: the integer reference disagrees with its float cross-check")
                    failures += 1
            tie = set(np.flatnonzero(codes == codes.max()).tolist())
            fl = ref.run_float(model, rgb[img])
            fl_top = set(np.flatnonzero(fl >= fl.max() - 1e-6).tolist())
            rel = os.path.relpath(img, images_dir)
            print("%s\n  uint8 ref  : %s%s" % (rel, fmt_top5(codes.astype(np.float64), "%.0f/256"),
                                              "  (tie: %s)" % sorted(tie) if len(tie) > 1 else ""))
            print("  float64 ref: %s" % fmt_top5(fl, "%.4f"))
            for backend in ("ref", "dnnl"):
                out = os.path.join(tmp, "out.bin")
                subprocess.run([tool, "--run", model_path, img, out, "--backend", backend],
                               check=True, stdout=subprocess.DEVNULL)
                probs = np.fromfile(out, dtype=np.float32)
                top1 = int(np.argmax(probs))
                top3 = set(np.argsort(-probs, kind="stable")[:3].tolist())
                if top1 not in fl_top:
                    verdict = "MISMATCH with the float64 execution"
                elif top1 in tie:
                    verdict = "ok"
                elif not strict and tie & top3:
                    verdict = "ok (drift: integer rounding swaps a near tie)"
                else:
                    verdict = "MISMATCH with the integer execution"
                print("  kennel %-4s: %s  %s" % (backend, fmt_top5(probs, "%.4f"), verdict))
                if verdict.startswith("MISMATCH"):
                    failures += 1

print("%d images x %d models, %d disagreements" % (len(images), len(models), failures))
sys.exit(1 if failures else 0)
