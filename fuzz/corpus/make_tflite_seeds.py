#!/usr/bin/env python3
"""Writes the seed corpus for fuzz/fuzz_tflite.c into fuzz/corpus/tflite/.

Tiny hand-built TFLite models (a few hundred bytes each, random weights) that
between them use every operator and feature the importer translates, plus a
few broken variants so the fuzzer starts next to the error paths:

  conv_fc_softmax     float: CONV_2D (SAME, stride 2, RELU) -> RESHAPE of a
                      spatial map -> FULLY_CONNECTED -> SOFTMAX
  dw_add_pool         float: DEPTHWISE_CONV_2D (multiplier 2, RELU6), a 1x1
                      CONV_2D, ADD, AVERAGE_POOL_2D, MAX_POOL_2D, SQUEEZE
  uint8_per_tensor    uint8 weights, int32 bias, uint8 activations whose
                      [0, 6] range implies ReLU6
  int8_per_channel    int8 per-channel weights behind QUANTIZE / DEQUANTIZE
  fp16_dequantize     float16 weights behind DEQUANTIZE
  unsupported_logistic, truncated, bad_tensor_index, bad_root: broken ones

The fz_* files beside them are not generated here: they are inputs a
libFuzzer run found reaching new paths (header, vtable and index faults, an
oversized input, an unsupported reshape), kept as regression seeds.

Usage: make_tflite_seeds.py [OUT_DIR]   (default: the tflite/ folder here)
The flatbuffer writer below is written from the FlatBuffers format and
TFLite's schema.fbs; run it again to regenerate (output is deterministic).
"""
import os
import random
import struct
import sys

# ------------------------------------------------------------------ writer


class Writer:
    """Front-to-back flatbuffer writer: offset fields are patched once their
    target is written (targets always lie later, as the format requires)."""

    def __init__(self):
        self.b = bytearray()

    def align(self, a):
        while len(self.b) % a:
            self.b.append(0)

    def table(self, fields):
        """fields: list of None (absent) or (fmt, value) scalars or "ref"
        placeholders. Returns (position, {slot: field position})."""
        self.align(4)
        vt = len(self.b)
        n = len(fields)
        layout, size = [], 4
        for f in fields:
            if f is None:
                layout.append(0)
                continue
            fmt = "I" if f == "ref" else f[0]
            sz = struct.calcsize("<" + fmt)
            size = (size + sz - 1) // sz * sz
            layout.append(size)
            size += sz
        size = (size + 3) // 4 * 4
        self.b += struct.pack("<HH", 4 + 2 * n, size)
        for off in layout:
            self.b += struct.pack("<H", off)
        self.align(4)
        pos = len(self.b)
        self.b += bytes(size)
        struct.pack_into("<i", self.b, pos, pos - vt)
        refs = {}
        for i, f in enumerate(fields):
            if f is None:
                continue
            at = pos + layout[i]
            if f == "ref":
                refs[i] = at
            else:
                struct.pack_into("<" + f[0], self.b, at, f[1])
        return pos, refs

    def patch(self, field, target):
        struct.pack_into("<I", self.b, field, target - field)

    def vector(self, fmt, values, align=4):
        a = max(align, 4)
        self.align(4)
        while (len(self.b) + 4) % a:
            self.b.append(0)
        at = len(self.b)
        self.b += struct.pack("<I", len(values))
        for v in values:
            self.b += struct.pack("<" + fmt, v)
        return at

    def ref_vector(self, n):
        """A vector of n offsets; returns (position, [element positions])."""
        at = self.vector("I", [0] * n)
        return at, [at + 4 + 4 * i for i in range(n)]

    def string(self, s):
        at = self.vector("B", list(s.encode()) + [0])
        struct.pack_into("<I", self.b, at, len(s))
        return at


# TFLite numbers used here.
F32, F16, I32, U8, I8 = 0, 1, 2, 3, 9
ADD, AVG, CONV, DW, DEQ, FC, LOGISTIC, MAX, RESHAPE, SOFTMAX, SQUEEZE, QUANT = (
    0, 1, 3, 4, 6, 9, 14, 17, 22, 25, 43, 114)
O_CONV, O_DW, O_POOL, O_FC, O_SOFTMAX, O_ADD, O_RESHAPE, O_SQUEEZE = 1, 2, 5, 8, 9, 11, 17, 30
SAME, VALID = 0, 1
NONE, RELU, RELU6 = 0, 1, 3


class Model:
    def __init__(self):
        self.tensors = []  # dict(shape, type, data(bytes|None), quant(None|(scales, zeros, dim)))
        self.ops = []      # (code, inputs, outputs, opt_type, opt_fields)
        self.inputs = []
        self.outputs = []

    def tensor(self, shape, ttype=F32, data=None, quant=None):
        self.tensors.append(dict(shape=shape, type=ttype, data=data, quant=quant))
        return len(self.tensors) - 1

    def op(self, code, inputs, outputs, opt_type=0, opt=None):
        self.ops.append((code, inputs, outputs, opt_type, opt or []))

    def build(self):
        w = Writer()
        w.b += bytes(4) + b"TFL3"
        codes = sorted(set(op[0] for op in self.ops))
        model, mref = w.table([("I", 3), "ref", "ref", None, "ref"])
        w.patch(0, model)
        cv, cels = w.ref_vector(len(codes))
        w.patch(mref[1], cv)
        for el, c in zip(cels, codes):
            t, _ = w.table([("b", min(c, 127)), None, ("i", 1), ("i", c)])
            w.patch(el, t)
        sgv, sgel = w.ref_vector(1)
        w.patch(mref[2], sgv)
        sg, sref = w.table(["ref", "ref", "ref", "ref", None])
        w.patch(sgel[0], sg)
        tv, tel = w.ref_vector(len(self.tensors))
        w.patch(sref[0], tv)
        nbuf = 1
        buf_of = []
        for i, t in enumerate(self.tensors):
            buf = 0
            if t["data"] is not None:
                buf = nbuf
                nbuf += 1
            buf_of.append(buf)
            tt, tref = w.table(["ref", ("b", t["type"]), ("I", buf), "ref",
                                "ref" if t["quant"] else None])
            w.patch(tel[i], tt)
            w.patch(tref[0], w.vector("i", t["shape"]))
            w.patch(tref[3], w.string("t%d" % i))
            if t["quant"]:
                scales, zeros, dim = t["quant"]
                q, qref = w.table([None, None, "ref", "ref", None, None, ("i", dim)])
                w.patch(tref[4], q)
                w.patch(qref[2], w.vector("f", scales))
                w.patch(qref[3], w.vector("q", zeros, 8))
        w.patch(sref[1], w.vector("i", self.inputs))
        w.patch(sref[2], w.vector("i", self.outputs))
        ov, oel = w.ref_vector(len(self.ops))
        w.patch(sref[3], ov)
        for el, (code, ins, outs, opt_type, opt) in zip(oel, self.ops):
            fields = [("I", codes.index(code)), "ref", "ref"]
            fields += [("B", opt_type), "ref"] if opt_type else []
            o, oref = w.table(fields)
            w.patch(el, o)
            w.patch(oref[1], w.vector("i", ins))
            w.patch(oref[2], w.vector("i", outs))
            if opt_type:
                ot, oref2 = w.table(["ref" if x[0] == "vec" else x for x in opt])
                w.patch(oref[4], ot)
                for k, x in enumerate(opt):
                    if isinstance(x, tuple) and x[0] == "vec":
                        w.patch(oref2[k], w.vector("i", x[1]))
        bv, bel = w.ref_vector(nbuf)
        w.patch(mref[4], bv)
        empty, _ = w.table([])
        w.patch(bel[0], empty)
        k = 1
        for t in self.tensors:
            if t["data"] is None:
                continue
            bt, bref = w.table(["ref"])
            w.patch(bel[k], bt)
            w.patch(bref[0], w.vector("B", list(t["data"]), 16))
            k += 1
        return bytes(w.b)


# ------------------------------------------------------------------ models

rng = random.Random(20240601)


def floats(n, a=0.5):
    return struct.pack("<%df" % n, *[rng.uniform(-a, a) for _ in range(n)])


def codes(n, lo, hi, fmt):
    return struct.pack("<%d%s" % (n, fmt), *[rng.randint(lo, hi) for _ in range(n)])


def conv_opt(pad, stride, act):
    return [("b", pad), ("i", stride), ("i", stride), ("b", act), ("i", 1), ("i", 1)]


def pool_opt(pad, stride, k, act=NONE):
    return [("b", pad), ("i", stride), ("i", stride), ("i", k), ("i", k), ("b", act)]


def conv_fc_softmax():
    m = Model()
    x = m.tensor([1, 8, 8, 3])
    w = m.tensor([4, 3, 3, 3], data=floats(108))
    b = m.tensor([4], data=floats(4))
    a = m.tensor([1, 4, 4, 4])
    shape = m.tensor([2], I32, struct.pack("<2i", 1, 64))
    flat = m.tensor([1, 64])
    fw = m.tensor([10, 64], data=floats(640))
    fb = m.tensor([10], data=floats(10))
    logits = m.tensor([1, 10])
    prob = m.tensor([1, 10])
    m.inputs, m.outputs = [x], [prob]
    m.op(CONV, [x, w, b], [a], O_CONV, conv_opt(SAME, 2, RELU))
    m.op(RESHAPE, [a, shape], [flat], O_RESHAPE, [("vec", [1, 64])])
    m.op(FC, [flat, fw, fb], [logits], O_FC, [("b", NONE), ("b", 0)])
    m.op(SOFTMAX, [logits], [prob], O_SOFTMAX, [("f", 1.0)])
    return m.build()


def dw_add_pool():
    m = Model()
    x = m.tensor([1, 5, 5, 2])
    dw = m.tensor([1, 3, 3, 4], data=floats(36))
    dwb = m.tensor([4], data=floats(4))
    d = m.tensor([1, 5, 5, 4])
    pw = m.tensor([4, 1, 1, 2], data=floats(8))
    p = m.tensor([1, 5, 5, 4])
    s = m.tensor([1, 5, 5, 4])
    ap = m.tensor([1, 3, 3, 4])
    mp = m.tensor([1, 1, 1, 4])
    out = m.tensor([1, 4])
    m.inputs, m.outputs = [x], [out]
    m.op(DW, [x, dw, dwb], [d], O_DW,
         [("b", SAME), ("i", 1), ("i", 1), ("i", 2), ("b", RELU6), ("i", 1), ("i", 1)])
    m.op(CONV, [x, pw, -1], [p], O_CONV, conv_opt(VALID, 1, NONE))
    m.op(ADD, [d, p], [s], O_ADD, [("b", RELU)])
    m.op(AVG, [s], [ap], O_POOL, pool_opt(SAME, 2, 2))
    m.op(MAX, [ap], [mp], O_POOL, pool_opt(VALID, 1, 3, RELU))
    m.op(SQUEEZE, [mp], [out], O_SQUEEZE, [("vec", [1, 2])])
    return m.build()


def uint8_per_tensor():
    m = Model()
    q_in = ([1 / 128], [128], 0)
    x = m.tensor([1, 4, 4, 3], U8, quant=q_in)
    w = m.tensor([6, 3, 3, 3], U8, codes(162, 0, 255, "B"), ([0.01], [120], 0))
    b = m.tensor([6], I32, codes(6, -500, 500, "i"), ([0.01 / 128], [0], 0))
    a = m.tensor([1, 2, 2, 6], U8, quant=([6 / 255], [0], 0))
    ap = m.tensor([1, 1, 1, 6], U8, quant=([6 / 255], [0], 0))
    flat = m.tensor([1, 6], U8, quant=([6 / 255], [0], 0))
    prob = m.tensor([1, 6], U8, quant=([1 / 256], [0], 0))
    m.inputs, m.outputs = [x], [prob]
    m.op(CONV, [x, w, b], [a], O_CONV, conv_opt(SAME, 2, NONE))
    m.op(AVG, [a], [ap], O_POOL, pool_opt(VALID, 2, 2))
    m.op(RESHAPE, [ap], [flat], O_RESHAPE, [("vec", [-1, 6])])
    m.op(SOFTMAX, [flat], [prob], O_SOFTMAX, [("f", 1.0)])
    return m.build()


def int8_per_channel():
    m = Model()
    x = m.tensor([1, 3, 3, 2])
    xq = m.tensor([1, 3, 3, 2], I8, quant=([0.02], [-3], 0))
    w = m.tensor([3, 1, 1, 2], I8, codes(6, -127, 127, "b"), ([0.01, 0.02, 0.03], [0, 0, 0], 0))
    b = m.tensor([3], I32, codes(3, -100, 100, "i"),
                 ([0.0002, 0.0004, 0.0006], [0, 0, 0], 0))
    a = m.tensor([1, 3, 3, 3], I8, quant=([0.05], [-128], 0))
    fw = m.tensor([2, 27], I8, codes(54, -127, 127, "b"), ([0.01, 0.02], [0, 0], 0))
    y = m.tensor([1, 2], I8, quant=([0.1], [0], 0))
    yf = m.tensor([1, 2])
    m.inputs, m.outputs = [x], [yf]
    m.op(QUANT, [x], [xq])
    m.op(CONV, [xq, w, b], [a], O_CONV, conv_opt(SAME, 1, RELU))
    m.op(FC, [a, fw, -1], [y], O_FC, [("b", NONE)])
    m.op(DEQ, [y], [yf])
    return m.build()


def fp16_dequantize():
    m = Model()
    x = m.tensor([1, 2, 2, 3])
    w16 = m.tensor([5, 12], F16, struct.pack("<60e", *[rng.uniform(-1, 1) for _ in range(60)]))
    w = m.tensor([5, 12])
    y = m.tensor([1, 5])
    prob = m.tensor([1, 5])
    m.inputs, m.outputs = [x], [prob]
    m.op(DEQ, [w16], [w])
    m.op(FC, [x, w, -1], [y], O_FC, [("b", RELU)])
    m.op(SOFTMAX, [y], [prob], O_SOFTMAX, [("f", 1.0)])
    return m.build()


def unsupported_logistic():
    m = Model()
    x = m.tensor([1, 1, 1, 4])
    y = m.tensor([1, 1, 1, 4])
    m.inputs, m.outputs = [x], [y]
    m.op(LOGISTIC, [x], [y])
    return m.build()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "tflite")
    os.makedirs(out, exist_ok=True)
    seeds = {
        "conv_fc_softmax": conv_fc_softmax(),
        "dw_add_pool": dw_add_pool(),
        "uint8_per_tensor": uint8_per_tensor(),
        "int8_per_channel": int8_per_channel(),
        "fp16_dequantize": fp16_dequantize(),
        "unsupported_logistic": unsupported_logistic(),
    }
    good = seeds["conv_fc_softmax"]
    seeds["truncated"] = good[:len(good) * 2 // 3]
    bad = bytearray(good)
    bad[0:4] = struct.pack("<I", len(good) + 100)
    seeds["bad_root"] = bytes(bad)
    # the CONV's filter index (the second element of its inputs vector)
    bad = bytearray(good)
    pat = struct.pack("<4i", 3, 0, 1, 2)
    at = bad.find(pat)
    if at >= 0:
        struct.pack_into("<i", bad, at + 8, 4000)
    seeds["bad_tensor_index"] = bytes(bad)
    for name, data in seeds.items():
        with open(os.path.join(out, name + ".tflite"), "wb") as f:
            f.write(data)
    print("wrote %d seeds (%d bytes) to %s" % (len(seeds), sum(map(len, seeds.values())), out))


if __name__ == "__main__":
    main()
