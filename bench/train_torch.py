#!/usr/bin/python3
"""PyTorch side of the training benchmarks (bench/train_bench.c; bench/
train_run.sh runs both). 2 threads set explicitly. One JSON line per
measurement, after a readable line.

  features  frozen resnet50 feature extraction (fc = Identity: the 2048-d
            pooled features), batch 32, eval mode, channels_last, under
            inference_mode, in its best mode: TorchScript trace + freeze, and
            trace + freeze + optimize_for_inference (prepacked oneDNN
            weights); both are timed, the faster is reported.
  head      one epoch of the reference head Linear(2048,128)-ReLU-
            Linear(128,133) with Adam (lr 1e-3) and mean cross-entropy on
            6680 cached 2048-d features, batch 32, shuffled; seconds per
            epoch, median over the epochs after one warm-up epoch. Adam is
            timed with its single-tensor and its foreach loop, each with 2
            threads and with 1 (small products run faster on one thread when
            the other core is busy); the fastest is reported.

  /usr/bin/python3 bench/train_torch.py features|head [REPS]"""
import json
import statistics
import sys
import time

import torch
import torchvision

torch.set_num_threads(2)
what = sys.argv[1] if len(sys.argv) > 1 else "head"
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5


def features(mode):
    torch.manual_seed(1)
    m = torchvision.models.resnet50()
    m.fc = torch.nn.Identity()
    m.eval()
    x = torch.randn(32, 3, 224, 224).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        m = m.to(memory_format=torch.channels_last)
        f = torch.jit.freeze(torch.jit.trace(m, x))
        if mode == "optimize_for_inference":
            f = torch.jit.optimize_for_inference(f)
        f(x)
        f(x)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f(x)
            ts.append(time.perf_counter() - t0)
    return 32 / statistics.median(ts)


def head(foreach, threads):
    torch.set_num_threads(threads)
    N, D, B = 6680, 2048, 32
    g = torch.Generator().manual_seed(4)
    feats = torch.rand(N, D, generator=g) * 2
    labels = torch.randint(0, 133, (N,), generator=g)
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(D, 128), torch.nn.ReLU(), torch.nn.Linear(128, 133))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, foreach=foreach)
    loss_fn = torch.nn.CrossEntropyLoss()
    secs = []
    for ep in range(reps + 1):
        order = torch.randperm(N, generator=g)
        t0 = time.perf_counter()
        for b in range(0, N, B):
            idx = order[b:b + B]
            loss = loss_fn(net(feats[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if ep:
            secs.append(time.perf_counter() - t0)
    return statistics.median(secs)


if what == "features":
    res = {mode: features(mode) for mode in ("freeze", "optimize_for_inference")}
    best = max(res, key=res.get)
    print("pytorch resnet50 features batch 32, 2 threads: %.2f img/s (%s; freeze %.2f, "
          "optimize_for_inference %.2f)" % (res[best], best, res["freeze"],
                                            res["optimize_for_inference"]), flush=True)
    print(json.dumps({"bench": "features", "engine": "pytorch", "batch": 32, "threads": 2,
                      "img_per_s": round(res[best], 2), "mode": best,
                      **{k: round(v, 2) for k, v in res.items()}}), flush=True)
elif what == "head":
    res = {"%s/%dt" % ("foreach" if fe else "single", t): head(fe, t)
           for fe in (False, True) for t in (2, 1)}
    best = min(res, key=res.get)
    print("pytorch head epoch (6680 x 2048, batch 32, Adam): %.4f s (%s; %s)" % (
        res[best], best, ", ".join("%s %.4f" % kv for kv in res.items())), flush=True)
    print(json.dumps({"bench": "head_epoch", "engine": "pytorch", "n": 6680, "batch": 32,
                      "threads": int(best[-2]), "seconds": round(res[best], 4), "adam": best,
                      **{k: round(v, 4) for k, v in res.items()}}), flush=True)
else:
    sys.exit("usage: train_torch.py features|head [REPS]")
