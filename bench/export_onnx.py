#!/usr/bin/python3
"""Exports the torchvision models bench/run.sh times to ONNX for ONNX Runtime.

Weights are the same seeded random weights bench/ref_torch.py builds
(torch.manual_seed(seed) then torchvision.models.<arch>(weights=None)), so the
PyTorch and ONNX Runtime runs compute the same function and their logits'
checksums agree. The batch axis is dynamic; one file serves every batch size.

It also writes <arch>.safetensors with the same weights (float32 tensors of
the state dict under their torchvision names; the integer num_batches_tracked
counters are left out) so bench/kn_bench can load them with --weights and all
three engines run one function: the logits can be compared across engines and
no engine gets easier numbers (e.g. denormals) than another.

Debian's torch 1.13 exports without the `onnx` Python package (python3-onnx
is only needed to check or edit models afterwards).

Usage: export_onnx.py --outdir bench/results [--arch resnet50 ...] [--opset 13]
"""

import argparse
import json
import os
import struct
import sys


def write_safetensors(path, tensors, metadata):
    """Minimal safetensors writer (8-byte little-endian header length, JSON
    header padded to 8 bytes, then the raw little-endian data)."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--arch", action="append", choices=["resnet50", "mobilenet_v2"])
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()

    import torch
    import torchvision

    os.makedirs(a.outdir, exist_ok=True)
    for arch in a.arch or ["resnet50", "mobilenet_v2"]:
        torch.manual_seed(a.seed)
        model = getattr(torchvision.models, arch)(weights=None).eval()
        x = torch.zeros(1, 3, a.size, a.size)
        path = os.path.join(a.outdir, f"{arch}.onnx")
        tmp = path + ".tmp"
        with torch.no_grad():
            torch.onnx.export(model, x, tmp, opset_version=a.opset,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              do_constant_folding=True)
        os.replace(tmp, path)  # a killed export never leaves a half file behind
        print(f"export_onnx: {path} ({os.path.getsize(path) / 1e6:.1f} MB, "
              f"opset {a.opset}, torch {torch.__version__}, seed {a.seed})")
        st = os.path.join(a.outdir, f"{arch}.safetensors")
        write_safetensors(st, {k: v for k, v in model.state_dict().items()
                               if v.is_floating_point()},
                          {"arch": arch, "seed": str(a.seed), "torch": torch.__version__})
        print(f"export_onnx: {st} ({os.path.getsize(st) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
