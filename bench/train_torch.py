#!/usr/bin/python3
"""PyTorch side of the training benchmarks (see bench/train_bench.c): frozen
resnet50 feature extraction at batch 32 (TorchScript trace + freeze,
channels_last, inference mode) and one Adam epoch of the reference head on
6680 cached 2048-d features at batch 32. 2 threads set explicitly. Prints
one JSON line per measurement."""
import json
import statistics
import sys
import time

import torch
import torchvision

torch.set_num_threads(2)
what = sys.argv[1] if len(sys.argv) > 1 else "head"
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5

if what == "features":
    m = torchvision.models.resnet50()
    m.fc = torch.nn.Identity()
    m.eval()
    x = torch.randn(32, 3, 224, 224).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        m = m.to(memory_format=torch.channels_last)
        f = torch.jit.freeze(torch.jit.trace(m, x))
        f(x)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f(x)
            ts.append(time.perf_counter() - t0)
    print(json.dumps({"bench": "features", "engine": "pytorch", "batch": 32,
                      "img_per_s": round(32 / statistics.median(ts), 2)}))
else:
    N, D, B = 6680, 2048, 32
    g = torch.Generator().manual_seed(4)
    feats = torch.rand(N, D, generator=g) * 2
    labels = torch.randint(0, 133, (N,), generator=g)
    head = torch.nn.Sequential(torch.nn.Linear(D, 128), torch.nn.ReLU(), torch.nn.Linear(128, 133))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    secs = []
    for ep in range(reps + 1):
        order = torch.randperm(N, generator=g)
        t0 = time.perf_counter()
        for b in range(0, N, B):
            idx = order[b:b + B]
            loss = loss_fn(head(feats[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if ep:
            secs.append(time.perf_counter() - t0)
    print(json.dumps({"bench": "head_epoch", "engine": "pytorch", "n": N, "batch": B,
                      "seconds": round(statistics.median(secs), 4)}))
