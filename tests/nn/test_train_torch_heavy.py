#!/usr/bin/python3
"""Fine-tuning gradient parity with PyTorch: resnet18 with --finetune 1
(layer4 + fc trained), one training-mode forward + backward of the mean
cross-entropy on a batch of 4 real photos, on both kennel backends (plain-C
reference and oneDNN).

PyTorch builds resnet18 with seeded random weights and realistic batch-norm
statistics (as tests/nn/make_reference.py: cumulative statistics of one pass
over the photos in training mode, then random affine parameters) and writes
them as safetensors. The prefix (conv1 .. layer3) runs in PyTorch in eval
mode; its output is fed to both PyTorch's layer4 and kennel's tail, so only
the trained part is compared. The PyTorch side of the step is computed in
float64 (the truth); the float32 PyTorch step is printed beside it for scale.

Compared, per parameter tensor p of layer4 and fc:
    max |grad_kennel(p) - grad_torch(p)| / max |grad_torch(p)|  <= 1e-3
and per batch-norm running statistic after the step (momentum 0.1,
unbiased variance):
    max |stat_kennel - stat_torch| / max |stat_torch|            <= 1e-3
plus the loss (relative 1e-4).

Relu kinks: every relu input of layer4 is kept at least 1e-4 from zero in
float64 (a few batch-norm shifts are nudged; see MARGIN below), so the
comparison measures the implementations, not which side of a kink float32
rounding lands on."""
import copy
import json
import os
import struct
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
    import torch
    import torch.nn.functional as F
    import torchvision
    from PIL import Image
    from torchvision import transforms
except ImportError as ex:
    print("SKIP: PyTorch is not installed (%s); scripts/install-deps.sh installs it" % ex)
    sys.exit(77)

build = os.environ["KN_BUILD_DIR"]
work = os.path.join(build, "train-parity")
os.makedirs(work, exist_ok=True)
BATCH = 4


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    raw = open(path, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    out = {}
    for name, d in header.items():
        if name == "__metadata__":
            continue
        a, b = d["data_offsets"]
        out[name] = np.frombuffer(raw[8 + hlen + a:8 + hlen + b], dtype=np.float32).reshape(d["shape"])
    return out


def image_list(root):
    out = []
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if f.lower().endswith((".jpg", ".jpeg", ".png")):
                out.append(os.path.join(dirpath, f))
    return sorted(out)


torch.set_num_threads(2)
tf = transforms.Compose([
    transforms.Resize((224, 224)),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])
paths = image_list(images)
x_all = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])

torch.manual_seed(1234)
m = torchvision.models.resnet18()
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.momentum = None
        mod.reset_running_stats()
m.train()
with torch.no_grad():
    m(x_all)
gen = torch.Generator().manual_seed(99)
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.momentum = 0.1  # the step below uses PyTorch's default, as kennel
        with torch.no_grad():
            mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=gen))
            mod.bias.copy_(0.2 * torch.rand(mod.bias.shape, generator=gen) - 0.1)

# prefix in eval mode: the layer4 input for both sides
x = x_all[:BATCH]
m.eval()
with torch.no_grad():
    f = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    feat = m.layer3(m.layer2(m.layer1(f)))


def relu_inputs(layer4):
    """Inputs of layer4's relus (two per block), float64, training mode, on a copy."""
    l4 = copy.deepcopy(layer4).double().train()
    caps = []
    # a pre-hook and a copy: torchvision's relus work in place
    hooks = [blk.relu.register_forward_pre_hook(lambda mod, inp: caps.append(inp[0].clone()))
             for blk in l4]
    with torch.no_grad():
        l4(feat.double())
    for h in hooks:
        h.remove()
    return caps


# Keep every relu input of layer4 at least MARGIN from the kink in float64: a
# value closer than float32 rounding (~1e-6 here) may take the other branch in
# any float32 implementation (kennel's or PyTorch's own), which moves a whole
# channel's batch-norm gradient and fails a 1e-3 comparison for reasons that
# are not bugs. Channels with such a value get their batch-norm shift (bn1
# before the first relu of a block, bn2 before the second) nudged by 5 x
# MARGIN until none is left; the weights stay random and realistic.
MARGIN = 1e-4
for it in range(50):
    near = 0
    for k, v in enumerate(relu_inputs(m.layer4)):
        blk = m.layer4[k // 2]
        bn = blk.bn1 if k % 2 == 0 else blk.bn2
        ch = (v.abs() < MARGIN).any(dim=3).any(dim=2).any(dim=0)
        near += int(ch.sum())
        with torch.no_grad():
            bn.bias[ch] += 5 * MARGIN
    if near == 0:
        break
margin = min(float(v.abs().min()) for v in relu_inputs(m.layer4))
print("layer4 relu inputs: min |x| = %.2e in float64 (after %d adjustment rounds)" % (margin, it))
if margin < MARGIN:
    print("FAIL: could not keep relu inputs away from 0")
    sys.exit(1)
sd = {k: v.clone() for k, v in m.state_dict().items() if v.dtype.is_floating_point}
write_safetensors(os.path.join(work, "resnet18.safetensors"), sd)
labels = torch.tensor([207, 1, 948, 530], dtype=torch.int64)
feat.numpy().astype(np.float32).tofile(os.path.join(work, "feat.bin"))
labels.numpy().astype(np.int32).tofile(os.path.join(work, "labels.bin"))


def torch_step(dtype):
    """layer4 + fc in training mode from the state before the step."""
    mm = torchvision.models.resnet18()
    mm.load_state_dict(sd, strict=False)  # all float tensors; only the step counters differ
    mm = mm.to(dtype)
    mm.train()
    for mod in mm.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = 0.1
    for p in mm.parameters():
        p.requires_grad_(False)
    for p in list(mm.layer4.parameters()) + list(mm.fc.parameters()):
        p.requires_grad_(True)
    out = mm.fc(torch.flatten(mm.avgpool(mm.layer4(feat.to(dtype))), 1))
    loss = F.cross_entropy(out, labels)
    loss.backward()
    grads = {n: p.grad.double().numpy() for n, p in mm.named_parameters()
             if n.startswith(("layer4.", "fc.")) and p.grad is not None}
    stats = {n: b.double().numpy() for n, b in mm.named_buffers()
             if n.startswith("layer4.") and n.endswith(("running_mean", "running_var"))}
    return grads, stats, float(loss)


ref_grads, ref_stats, ref_loss = torch_step(torch.float64)
f32_grads, f32_stats, f32_loss = torch_step(torch.float32)
print("PyTorch: loss %.6f (float64), %.6f (float32); %d gradient tensors, %d running stats"
      % (ref_loss, f32_loss, len(ref_grads), len(ref_stats)))


def rel(a, b):
    scale = float(np.abs(b).max())
    return float(np.abs(a - b).max()) / (scale if scale > 0 else 1.0)


def group(name):
    if name.startswith("fc."):
        return "fc." + name.split(".")[-1]
    leaf = name.split(".")
    if "downsample" in leaf:
        return "downsample.%s.%s" % (leaf[-2], leaf[-1])
    return ("conv" if leaf[-2].startswith("conv") else "bn") + "." + leaf[-1]


print("float32 PyTorch vs float64: worst gradient %.2e, worst running stat %.2e"
      % (max(rel(f32_grads[n], ref_grads[n]) for n in ref_grads),
         max(rel(f32_stats[n], ref_stats[n]) for n in ref_stats)))

tool = os.path.join(build, "tests", "tool_trainstep")
failures = 0
for backend in ("ref", "dnnl"):
    outp = os.path.join(work, "step.%s.safetensors" % backend)
    cmd = [tool, "--arch", "resnet18", "--classes", "1000", "--weights",
           os.path.join(work, "resnet18.safetensors"), "--finetune", "1", "--backend", backend,
           "--batch", str(BATCH), "--feat", os.path.join(work, "feat.bin"),
           "--labels", os.path.join(work, "labels.bin"), "--out", outp]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print("FAIL %s: tool_trainstep: %s" % (backend, r.stderr.strip()))
        failures += 1
        continue
    got = read_safetensors(outp)
    groups = {}
    bad = []
    for n, want in ref_grads.items():
        key = "grad." + n
        if key not in got:
            bad.append("%s missing" % key)
            continue
        d = rel(got[key].astype(np.float64), want)
        g = group(n)
        groups[g] = max(groups.get(g, 0.0), d)
        if not d <= TOL:
            bad.append("%s: %.2e" % (n, d))
    extra = [k for k in got if k.startswith("grad.") and k[5:] not in ref_grads]
    if extra:
        bad.append("kennel trains parameters PyTorch does not: %s" % ", ".join(extra[:4]))
    worst_stat = 0.0
    for n, want in ref_stats.items():
        d = rel(got[n].astype(np.float64), want)
        worst_stat = max(worst_stat, d)
        if not d <= TOL:
            bad.append("%s: %.2e" % (n, d))
    loss_d = abs(float(got["loss"][0]) - ref_loss) / abs(ref_loss)
    if not loss_d <= 1e-4:
        bad.append("loss %.6f vs %.6f" % (float(got["loss"][0]), ref_loss))
    print("%-4s %-4s %d gradient tensors, loss rel diff %.1e, running stats %.2e"
          % ("ok" if not bad else "FAIL", backend, len(ref_grads), loss_d, worst_stat))
    for g in sorted(groups):
        print("       %-24s max|diff| / max|grad| = %.2e" % (g, groups[g]))
    for b in bad:
        print("       " + b)
    failures += bool(bad)
sys.exit(1 if failures else 0)
