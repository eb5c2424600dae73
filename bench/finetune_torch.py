#!/usr/bin/python3
"""PyTorch side of bench/finetune_bench.c (bench/train_run.sh runs both): one
training step of resnet50 -- forward, backward of the mean cross-entropy,
Adam update -- at batch 16 on 2 threads (torch.set_num_threads), random
weights and inputs:

  finetune  layer4 + fc train (requires_grad only there, train mode); the
            frozen prefix (conv1 .. layer3) runs in eval mode under no_grad,
            as a careful PyTorch user fine-tunes;
  full      every parameter trains, the whole model in train mode.

Best mode: each mode is timed in contiguous and channels_last memory format
and the faster is reported (both are printed). Gradients are released with
zero_grad(set_to_none=True); Adam uses its default (single-tensor) loop.

  /usr/bin/python3 bench/finetune_torch.py [finetune|full|both] [--steps 3]
        [--warmup 1] [--batch 16] [--threads 2] [--opt adam|none]
Prints a readable line and one JSON line per mode."""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision


def measure(mode, fmt, a):
    torch.manual_seed(1)
    m = torchvision.models.resnet50()
    x = torch.randn(a.batch, 3, 224, 224)
    labels = torch.arange(a.batch) * 7 % 1000
    if fmt == "channels_last":
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    m.train()
    for p in m.parameters():
        p.requires_grad_(mode == "full")
    prefix = []
    if mode == "finetune":
        prefix = [m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3]
        for mod in prefix:
            mod.eval()
        for p in list(m.layer4.parameters()) + list(m.fc.parameters()):
            p.requires_grad_(True)
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3) if a.opt == "adam" else None

    def step():
        if prefix:
            with torch.no_grad():
                f = x
                for mod in prefix:
                    f = mod(f)
            out = m.fc(torch.flatten(m.avgpool(m.layer4(f)), 1))
        else:
            out = m(x)
        F.cross_entropy(out, labels).backward()
        if opt:
            opt.step()

    ts, cpu = [], []
    for i in range(a.warmup + a.steps):
        if opt:
            opt.zero_grad(set_to_none=True)
        else:
            for p in params:
                p.grad = None
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if i >= a.warmup:
            ts.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return a.batch / statistics.median(ts), 1e3 * statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="both", choices=["finetune", "full", "both"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--opt", default="adam", choices=["adam", "none"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    modes = ["finetune", "full"] if a.mode == "both" else [a.mode]
    for mode in modes:
        both = {fmt: measure(mode, fmt, a) for fmt in ("contiguous", "channels_last")}
        res = {fmt: v[0] for fmt, v in both.items()}
        best = max(res, key=res.get)
        name = "finetune1" if mode == "finetune" else "full"
        print("pytorch resnet50 %s batch %d, %d threads, %s: %.2f img/s (%s, cpu %.0f ms; "
              "contiguous %.2f, channels_last %.2f)" % (name, a.batch, a.threads, a.opt, res[best],
                                                       best, both[best][1], res["contiguous"],
                                                       res["channels_last"]), flush=True)
        print(json.dumps({"bench": name, "engine": "pytorch", "arch": "resnet50",
                          "batch": a.batch, "threads": a.threads, "optimizer": a.opt,
                          "img_per_s": round(res[best], 2), "format": best,
                          "cpu_ms": round(both[best][1], 1),
                          "contiguous": round(res["contiguous"], 2),
                          "channels_last": round(res["channels_last"], 2)}), flush=True)


if __name__ == "__main__":
    main()
