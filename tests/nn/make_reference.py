#!/usr/bin/python3
"""Writes PyTorch reference outputs for kennel's network parity test.

For each architecture (resnet18, resnet50 with the dog head
Linear(2048,128)-ReLU-Linear(128,133), mobilenet_v2) it builds the torchvision
model with seeded random weights, gives every batch norm realistic running
statistics (one pass in training mode over the test photos, so activations
stay O(1) and the 1e-3 tolerance means something) and random affine
parameters, and writes:

  OUT/<arch>.safetensors      all float tensors of the state dict (F32)
  OUT/<arch>.logits.bin       float32 [n_images, classes] from model.eval()
  OUT/input_<k>.bin           float32 [3, 224, 224]: torchvision's
                              Resize((224,224)) + ToTensor + Normalize
  OUT/images.txt              the image paths, in input order

Usage: make_reference.py SHARED_IMAGES_DIR OUT_DIR
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

ARCHS = {
    "resnet18": dict(hidden=[], classes=1000),
    "resnet50": dict(hidden=[128], classes=133),
    "mobilenet_v2": dict(hidden=[], classes=1000),
}


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def build(arch, cfg):
    torch.manual_seed(1234)
    m = getattr(torchvision.models, arch)()
    if arch.startswith("resnet") and cfg["hidden"]:
        layers, inf = [], m.fc.in_features
        for h in cfg["hidden"]:
            layers += [torch.nn.Linear(inf, h), torch.nn.ReLU()]
            inf = h
        layers.append(torch.nn.Linear(inf, cfg["classes"]))
        m.fc = torch.nn.Sequential(*layers)
    return m


def image_list(root):
    out = []
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if f.lower().endswith((".jpg", ".jpeg", ".png")):
                out.append(os.path.join(dirpath, f))
    return sorted(out)


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    tf = transforms.Compose([
        transforms.Resize((224, 224)),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    paths = image_list(src)
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])
    for k in range(x.shape[0]):
        x[k].numpy().astype(np.float32).tofile(os.path.join(out, "input_%d.bin" % k))
    with open(os.path.join(out, "images.txt"), "w") as f:
        f.write("\n".join(paths) + "\n")
    for arch, cfg in ARCHS.items():
        m = build(arch, cfg)
        # realistic statistics: cumulative averages over the photos
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = None
                mod.reset_running_stats()
        m.train()
        with torch.no_grad():
            m(x)
        g = torch.Generator().manual_seed(99)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                with torch.no_grad():
                    mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=g))
                    mod.bias.copy_(0.2 * torch.rand(mod.bias.shape, generator=g) - 0.1)
        m.eval()
        with torch.no_grad():
            y = m(x)
        sd = {k: v for k, v in m.state_dict().items() if v.dtype.is_floating_point}
        write_safetensors(os.path.join(out, arch + ".safetensors"), sd)
        y.numpy().astype(np.float32).tofile(os.path.join(out, arch + ".logits.bin"))
        print("%s: %d images, logits range [%.3f, %.3f]" % (arch, y.shape[0], y.min(), y.max()))


if __name__ == "__main__":
    main()
