#!/usr/bin/python3
"""Network parity with PyTorch: resnet18, resnet50 (dog head) and
mobilenet_v2 with random weights; both kennel backends (reference C and
oneDNN) at batch 1 and 4 on the real photos in ../shared/data/images must
match PyTorch's logits within max abs diff 1e-3. The reference outputs are
written by tests/nn/make_reference.py (cached in the build directory)."""
import os
import subprocess
import sys

import numpy as np

TOL = 1e-3
shared = os.environ.get("KN_SHARED", "")
images = os.path.join(shared, "data", "images")
if not os.path.isdir(images):
    print("SKIP: ../shared/data/images is absent (KN_SHARED=%r)" % shared)
    sys.exit(77)
try:
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError as ex:
    print("SKIP: PyTorch is not installed (%s); scripts/install-deps.sh installs it" % ex)
    sys.exit(77)

build = os.environ["KN_BUILD_DIR"]
src = os.environ["KN_SOURCE_DIR"]
ref = os.path.join(build, "parity-ref")
stamp = os.path.join(ref, "done")
if not os.path.exists(stamp):
    subprocess.run(["/usr/bin/python3", os.path.join(src, "tests/nn/make_reference.py"),
                    images, ref], check=True)
    open(stamp, "w").close()

paths = open(os.path.join(ref, "images.txt")).read().split()
n = len(paths)
inputs = [os.path.join(ref, "input_%d.bin" % k) for k in range(n)]
tool = os.path.join(build, "tests", "tool_nnrun")
sanitized = os.environ.get("KN_SANITIZE") == "1"
cfgs = {"resnet18": ([], 1000), "resnet50": ([128], 133), "mobilenet_v2": ([], 1000)}
failures = 0
for arch, (hidden, classes) in cfgs.items():
    want = np.fromfile(os.path.join(ref, arch + ".logits.bin"), dtype=np.float32).reshape(n, classes)
    for backend in ("ref", "dnnl"):
        for batch in (1, 4):
            use = n - n % batch
            if backend == "ref" and batch == 1:
                use = min(use, 4)  # the reference is slow; 4 single images suffice
            out = os.path.join(ref, "%s.%s.b%d.out" % (arch, backend, batch))
            cmd = [tool, "--arch", arch, "--classes", str(classes), "--weights",
                   os.path.join(ref, arch + ".safetensors"), "--backend", backend,
                   "--batch", str(batch), "--out", out]
            for h in hidden:
                cmd += ["--hidden", str(h)]
            r = subprocess.run(cmd + inputs[:use], capture_output=True, text=True)
            if r.returncode != 0:
                print("FAIL %s %s b%d: %s" % (arch, backend, batch, r.stderr.strip()))
                failures += 1
                continue
            got = np.fromfile(out, dtype=np.float32).reshape(use, classes)
            diff = float(np.abs(got - want[:use]).max())
            top_ok = bool((got.argmax(1) == want[:use].argmax(1)).all())
            ok = diff <= TOL and top_ok
            failures += not ok
            print("%-4s %-12s %-4s batch %d, %2d images: max abs diff %.2e (scale %.2f) top-1 %s"
                  % ("ok" if ok else "FAIL", arch, backend, batch, use, diff,
                     float(np.abs(want).max()), "same" if top_ok else "DIFFERS"))
print("%d passed, %d failed" % (12 - failures, failures))
sys.exit(1 if failures else 0)
