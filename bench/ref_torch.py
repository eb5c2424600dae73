#!/usr/bin/python3
"""PyTorch reference for bench/run.sh: times one (arch, batch) cell in its own
process and prints one JSON line.

Best mode for CPU inference with Debian's torch 1.13 (which embeds oneDNN
2.6.3): torchvision model with seeded random weights, eval(), channels_last,
torch.jit.trace + torch.jit.freeze (folds batch norm into conv), an explicit
torch.set_num_threads, and runs under torch.inference_mode().

The timed region is the same for every engine: an NCHW float32 batch in,
logits out. For PyTorch that includes converting the input to channels_last
(a copy of 0.6 MB per image, a few microseconds against milliseconds of
convolutions).

Input values follow a pattern every engine reproduces exactly
(x[i] = (i % 251) / 125 - 1 over the flat NCHW batch), so PyTorch and ONNX
Runtime, which run the same weights, can be checked against each other by the
checksum of their logits.
"""

import argparse
import json
import sys
import time


def vm_status():
    """Peak and current resident set size in kB, from /proc/self/status."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out.get("VmHWM", -1), out.get("VmRSS", -1)


def count_flops(torch, model, size):
    """Multiply-adds of conv and linear layers x2, per image (eager model)."""
    total = [0]

    def conv_hook(m, inp, out):
        k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        total[0] += 2 * out[0].numel() * k

    def linear_hook(m, inp, out):
        total[0] += 2 * m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return total[0]


def pattern_input(torch, n, size):
    numel = n * 3 * size * size
    x = (torch.arange(numel, dtype=torch.int64) % 251).to(torch.float32) / 125.0 - 1.0
    return x.reshape(n, 3, size, size).contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, choices=["resnet50", "mobilenet_v2"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=["freeze", "ofi", "eager"], default="freeze",
                    help="freeze: trace+freeze (default); ofi: also "
                         "torch.jit.optimize_for_inference; eager: no TorchScript")
    ap.add_argument("--no-channels-last", action="store_true")
    a = ap.parse_args()

    t_start = time.perf_counter()
    import torch
    import torchvision

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = getattr(torchvision.models, a.arch)(weights=None).eval()
    flops = count_flops(torch, model, a.size)

    cl = not a.no_channels_last
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = pattern_input(torch, a.batch, a.size)
    with torch.no_grad():
        if a.mode == "eager":
            fn = model
        else:
            traced = torch.jit.trace(model, x.contiguous(memory_format=fmt))
            fn = torch.jit.freeze(traced)
            del traced
            if a.mode == "ofi":
                fn = torch.jit.optimize_for_inference(fn)
    if a.mode != "eager":
        del model
    setup_ms = (time.perf_counter() - t_start) * 1e3

    def run():
        return fn(x.contiguous(memory_format=fmt))

    times = []
    with torch.inference_mode():
        for _ in range(a.warmup):
            out = run()
        for _ in range(a.iters):
            t0 = time.perf_counter_ns()  # CLOCK_MONOTONIC on Linux
            out = run()
            times.append((time.perf_counter_ns() - t0) / 1e6)
    out = out.float().contiguous()
    hwm, rss = vm_status()
    s = sorted(times)
    med = s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])
    rec = {
        "engine": "pytorch",
        "version": torch.__version__,
        "arch": a.arch,
        "batch": a.batch,
        "threads": torch.get_num_threads(),
        "mode": a.mode + ("+channels_last" if cl else ""),
        "warmup": a.warmup,
        "iters": a.iters,
        "setup_ms": round(setup_ms, 1),
        "times_ms": [round(t, 4) for t in times],
        "median_ms": round(med, 4),
        "vmhwm_kb": hwm,
        "vmrss_kb": rss,
        "flops_per_image": flops,
        "checksum": float(out.double().sum()),
        "out_absmax": float(out.abs().max()),
        "out_head": [float(v) for v in out[0, :8]],
    }
    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
