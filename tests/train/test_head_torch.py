#!/usr/bin/python3
"""Head training parity with PyTorch: the same initial head weights, the same
batch order, no augmentation; the loss of each of 20 steps must match
PyTorch's within 1e-4 relative, for SGD with momentum (and nesterov + weight
decay), Adam and AdamW. Features are 2048-d like ResNet-50's, the head is the
reference project's Linear(2048,128) -> ReLU -> Linear(128,133)."""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as ex:
    print("SKIP: PyTorch/NumPy not installed (%s); scripts/install-deps.sh installs them" % ex)
    sys.exit(77)

N, D, H, C, B, S = 512, 2048, 128, 133, 32, 20
tool = os.path.join(os.environ["KN_BUILD_DIR"], "tests", "tool_headtrain")
tmp = tempfile.mkdtemp(prefix="kn-head-")
torch.set_num_threads(2)
g = torch.Generator().manual_seed(5)
# features like post-ReLU pooled activations: non-negative, a few large
feats = torch.relu(torch.randn(N, D, generator=g)) * 0.5
labels = torch.randint(0, C, (N,), generator=g, dtype=torch.int64)
order = torch.cat([torch.randperm(N, generator=g)[: B] for _ in range(S)]).to(torch.int32)
feats.numpy().astype(np.float32).tofile(os.path.join(tmp, "f.bin"))
labels.numpy().astype(np.int32).tofile(os.path.join(tmp, "l.bin"))
order.numpy().astype(np.int32).tofile(os.path.join(tmp, "o.bin"))


def head():
    torch.manual_seed(11)
    return torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, C))


def save(model, path):
    hdr, blobs, off = {}, [], 0
    for k, v in model.state_dict().items():
        b = v.detach().numpy().astype(np.float32).tobytes()
        hdr["fc." + k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


cases = [
    ("sgd+momentum", dict(opt="sgd", lr=0.05, momentum=0.9),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    ("sgd+nesterov+wd", dict(opt="sgd", lr=0.05, momentum=0.9, nesterov=True, wd=1e-3),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("adam", dict(opt="adam", lr=1e-3), lambda p: torch.optim.Adam(p, lr=1e-3)),
    ("adamw", dict(opt="adamw", lr=1e-3, wd=1e-2),
     lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-2)),
]
failures = 0
for name, kargs, make_opt in cases:
    m = head()
    w = os.path.join(tmp, "init.safetensors")
    save(m, w)
    opt = make_opt(m.parameters())
    want = []
    for s in range(S):
        idx = order[s * B:(s + 1) * B].long()
        loss = torch.nn.functional.cross_entropy(m(feats[idx]), labels[idx])
        want.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    cmd = [tool, "--features", os.path.join(tmp, "f.bin"), "--labels", os.path.join(tmp, "l.bin"),
           "--order", os.path.join(tmp, "o.bin"), "--n", str(N), "--dim", str(D), "--classes", str(C),
           "--hidden", str(H), "--weights", w, "--batch", str(B), "--steps", str(S),
           "--opt", kargs["opt"], "--lr", str(kargs["lr"])]
    if "momentum" in kargs:
        cmd += ["--momentum", str(kargs["momentum"])]
    if kargs.get("nesterov"):
        cmd += ["--nesterov"]
    if "wd" in kargs:
        cmd += ["--wd", str(kargs["wd"])]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print("FAIL %s: %s" % (name, r.stderr.strip()))
        failures += 1
        continue
    got = [float(x) for x in r.stdout.split()]
    rel = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(got, want))
    ok = len(got) == S and rel <= 1e-4
    failures += not ok
    print("%-4s %-16s loss %.5f -> %.5f (PyTorch %.5f -> %.5f), max relative diff over %d steps %.2e"
          % ("ok" if ok else "FAIL", name, got[0], got[-1], want[0], want[-1], S, rel))
print("%d passed, %d failed" % (len(cases) - failures, failures))
sys.exit(1 if failures else 0)
