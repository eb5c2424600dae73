#!/usr/bin/python3
"""PyTorch side of bench/tune_bench.sh: the reference project's hpo.py logic
for the same trials kennel's tuning job ran, one after the other, on 2
threads.

Per trial, as hpo.py does it: a frozen pretrained backbone with a new head
(here mobilenet_v1_0.25_224: the same float weights, read from the same
.tflite file with tests/nn/tflite_quant_ref.py's independent FlatBuffers
reader, as torch Conv2d/ReLU6 layers with TensorFlow's SAME padding; the
head is kennel's default, one Linear(256, classes)), Adam on the head, mean
cross-entropy, `epochs` passes over a DataLoader of the training images
(decoded and resized each epoch: hpo.py has no feature cache), then the test
loss, printed as "Testing Loss: X". The head's initial weights and each
epoch's batch order are drawn exactly as kennel's trainer draws them from
the trial's seed (xoshiro256** seeded by splitmix64, PyTorch's default
uniform bound, Fisher-Yates per epoch), and photos are turned upright from
their EXIF orientation as kennel does, so a trial's loss differs from
kennel's only by arithmetic, not by a different random draw. Data: DATA/train and DATA/test when
DATA is split already (tune_bench.sh writes one split that both engines
use), else the class folders of DATA with a seeded stratified 7/3 split.

  /usr/bin/python3 bench/tune_torch.py DATA MODEL.tflite TRIALS.json EPOCHS [SEED]
TRIALS.json: [{"learning_rate": "0.01", "batch_size": "32"}, ...]
Prints one line per trial, then a JSON line {"seconds": ..., "best_test_loss": ...,
"losses": [per trial, in TRIALS.json's order]}."""
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "nn"))
import tflite_quant_ref as tfl  # noqa: E402

torch.set_num_threads(2)


class SamePadConv(torch.nn.Module):
    def __init__(self, w, b, stride, groups, same):
        super().__init__()
        self.conv = torch.nn.Conv2d(w.shape[1] * groups, w.shape[0], w.shape[2], stride=stride,
                                    groups=groups, bias=True)
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(w))
            self.conv.bias.copy_(torch.from_numpy(b))
        self.k, self.s, self.same = w.shape[2], stride, same

    def forward(self, x):
        if self.same:
            n = x.shape[-1]
            out = (n + self.s - 1) // self.s
            pad = max((out - 1) * self.s + self.k - n, 0)
            x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
        return self.conv(x)


def backbone(path):
    m = tfl.Model(open(path, "rb").read())
    layers = []
    for op in m.ops:
        if op.name == "AVERAGE_POOL_2D":
            break
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            raise SystemExit(f"unexpected op {op.name} before the pooling")
        dw = op.name == "DEPTHWISE_CONV_2D"
        w = m.tensors[op.inputs[1]].data.astype(np.float32)
        b = m.tensors[op.inputs[2]].data.astype(np.float32)
        if dw:  # [1, kh, kw, C] -> [C, 1, kh, kw]
            w = np.ascontiguousarray(w[0].transpose(2, 0, 1)[:, None])
        else:   # OHWI -> OIHW
            w = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
        layers.append(SamePadConv(w, b, op.opt_scalar(1, "i", 1), w.shape[0] if dw else 1,
                                  op.opt_scalar(0, "b", 0) == 0))
        act = op.opt_scalar(4 if dw else 3, "b", 0)
        if act == 3:
            layers.append(torch.nn.ReLU6())
        elif act == 1:
            layers.append(torch.nn.ReLU())
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()]
    net = torch.nn.Sequential(*layers)
    for p in net.parameters():
        p.requires_grad = False
    return net.eval()


class Images(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        img = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((224, 224), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)
        return (x - 127.5) / 127.5, label


M64 = (1 << 64) - 1


class KennelRng:
    """kennel's kn_rng (src/core/util.c): xoshiro256** seeded by splitmix64."""

    def __init__(self, seed):
        x, self.s = seed & M64, []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next(self):
        s = self.s
        out = (self._rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return out

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53


def kennel_head(n_in, n_out, seed):
    """The head kennel's trainer starts from (kn_nn_graph_init_params):
    weight then bias, each U(-1/sqrt(fan_in), 1/sqrt(fan_in)), one stream."""
    r, bound = KennelRng(seed), 1.0 / np.sqrt(n_in)
    draw = lambda n: np.array([(r.uniform() * 2.0 - 1.0) * bound for _ in range(n)],
                              dtype=np.float32)
    head = torch.nn.Linear(n_in, n_out)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(draw(n_in * n_out).reshape(n_out, n_in)))
        head.bias.copy_(torch.from_numpy(draw(n_out)))
    return head


class KennelOrder(torch.utils.data.Sampler):
    """Each epoch's training order as kennel's trainer shuffles it
    (src/train/loop.c shuffle): Fisher-Yates on a stream seeded per epoch."""

    def __init__(self, n, seed):
        self.n, self.seed, self.epoch = n, seed, 0

    def __len__(self):
        return self.n

    def __iter__(self):
        r = KennelRng(self.seed * 1000003 + self.epoch + 1)
        self.epoch += 1
        order = list(range(self.n))
        for i in range(self.n - 1, 0, -1):
            k = r.next() % (i + 1)
            order[i], order[k] = order[k], order[i]
        return iter(order)


def split(root, seed=0):
    if os.path.isdir(os.path.join(root, "train")):  # split already (tune_bench.sh does)
        classes = sorted(os.listdir(os.path.join(root, "train")))
        part = lambda s: [(os.path.join(root, s, c, f), ci) for ci, c in enumerate(classes)
                          for f in sorted(os.listdir(os.path.join(root, s, c)))]
        return classes, part("train"), part("test")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    rng = random.Random(seed)
    train, test = [], []
    for ci, c in enumerate(classes):
        files = sorted(os.listdir(os.path.join(root, c)))
        rng.shuffle(files)
        k = round(len(files) * 0.7)
        train += [(os.path.join(root, c, f), ci) for f in files[:k]]
        test += [(os.path.join(root, c, f), ci) for f in files[k:]]
    return classes, train, test


def trial(base, n_classes, train, test, lr, batch, epochs, seed=0):
    head = kennel_head(256, n_classes, seed)
    model = torch.nn.Sequential(base, head)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    crit = torch.nn.CrossEntropyLoss()
    tl = torch.utils.data.DataLoader(Images(train), batch_size=batch,
                                     sampler=KennelOrder(len(train), seed))
    for epoch in range(epochs):
        head.train()
        for x, y in tl:
            opt.zero_grad()
            loss = crit(model(x), y)
            loss.backward()
            opt.step()
    head.eval()
    total, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(Images(test), batch_size=batch):
            out = model(x)
            total += crit(out, y).item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
    return total / n, correct / n


def main():
    data, model, trials_path, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0  # head init and batch order
    trials = json.load(open(trials_path))
    t0 = time.perf_counter()
    base = backbone(model)
    classes, train, test = split(data)
    losses = []
    for t in trials:
        lr, batch = float(t["learning_rate"]), int(t["batch_size"])
        s = time.perf_counter()
        loss, acc = trial(base, len(classes), train, test, lr, batch, epochs, seed)
        losses.append(loss)
        print(f"trial lr={lr:.5g} batch={batch}: Testing Loss: {loss:.4f} "
              f"Testing Accuracy: {acc:.4f} ({time.perf_counter() - s:.2f} s)", flush=True)
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": secs, "best_test_loss": min(losses), "trials": len(trials),
                      "losses": losses}))


if __name__ == "__main__":
    main()
