#!/usr/bin/env python3
"""Integer reference executor for quantized (uint8 / int8) TFLite classifiers.

Used by test_tflite_quant_parity.py as the oracle against which kennel's
float import of the same model (src/nn/tflite.c, dequantized weights, float
arithmetic) is compared.

Why this is an independent reference:
  * It shares no code with kennel. It has its own flatbuffer reader (a small
    generic table/vector walker on struct.unpack_from, written from the
    FlatBuffers binary format description and TFLite's schema.fbs), not the C
    reader, and it never asks kennel how a model is laid out.
  * It executes a different computation. kennel dequantizes weights and runs
    float32 NCHW kernels; this file keeps activations as uint8 (or int8) NHWC
    codes and does what TFLite's reference kernels specify: int32
    accumulation of (q - zero_point) products, int32 bias, requantisation by a
    Q31 fixed-point multiplier with rounding right shift, output zero point,
    and clamping to the quantized range of the fused activation. ADD rescales
    both inputs with the 20-bit left shift scheme, AVERAGE_POOL rounds the
    integer mean, SOFTMAX uses the gemmlowp fixed-point exp / reciprocal.
    Agreement therefore checks kennel's layout conversions (OHWI -> OIHW,
    depthwise channel order, SAME padding, NHWC flatten order) and
    dequantization against arithmetic that never goes through float weights.
  * run_float executes the same graph in float64 without rounding
    (dequantized weights, activations clipped to their quantized ranges).
    It separates what quantization rounding changes (run vs run_float) from
    what an importer gets wrong (kennel vs run_float).
  * Its input is the image bytes only: the 224x224 RGB pixels come from
    kennel's resizer (so that a PIL-vs-kennel resize difference cannot cause a
    disagreement) and are fed as the uint8 input tensor directly.

Usage as a tool:
  tflite_quant_ref.py MODEL RGB.bin       # prints the top-5 of the uint8 output
  tflite_quant_ref.py --list MODEL        # lists the operators

Only numpy and the standard library are used.
"""

import math
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- flatbuffers


class FlatTable:
    """One flatbuffer table: a position in the buffer plus its vtable."""

    def __init__(self, buf, pos):
        self.buf = buf
        self.pos = pos
        (soff,) = struct.unpack_from("<i", buf, pos)
        self.vt = pos - soff
        (self.vt_size,) = struct.unpack_from("<H", buf, self.vt)

    def _slot(self, i):
        o = 4 + 2 * i
        if o + 2 > self.vt_size:
            return 0
        (rel,) = struct.unpack_from("<H", self.buf, self.vt + o)
        return rel

    def scalar(self, i, fmt, default=0):
        rel = self._slot(i)
        if rel == 0:
            return default
        return struct.unpack_from("<" + fmt, self.buf, self.pos + rel)[0]

    def _indirect(self, i):
        rel = self._slot(i)
        if rel == 0:
            return None
        at = self.pos + rel
        (u,) = struct.unpack_from("<I", self.buf, at)
        return at + u

    def table(self, i):
        at = self._indirect(i)
        return None if at is None else FlatTable(self.buf, at)

    def vector(self, i, fmt):
        """A vector of scalars as a numpy array (empty when absent)."""
        at = self._indirect(i)
        if at is None:
            return np.zeros(0, dtype=np.dtype("<" + fmt))
        (n,) = struct.unpack_from("<I", self.buf, at)
        dt = np.dtype("<" + fmt)
        if at + 4 + n * dt.itemsize > len(self.buf):
            raise ValueError("vector runs past the end of the file")
        return np.frombuffer(self.buf, dtype=dt, count=n, offset=at + 4)

    def tables(self, i):
        at = self._indirect(i)
        if at is None:
            return []
        (n,) = struct.unpack_from("<I", self.buf, at)
        out = []
        for k in range(n):
            el = at + 4 + 4 * k
            (u,) = struct.unpack_from("<I", self.buf, el)
            out.append(FlatTable(self.buf, el + u))
        return out

    def string(self, i):
        at = self._indirect(i)
        if at is None:
            return ""
        (n,) = struct.unpack_from("<I", self.buf, at)
        return bytes(self.buf[at + 4:at + 4 + n]).decode("utf-8", "replace")


# TFLite schema: the builtin operator codes and tensor types used here.
OPS = {0: "ADD", 1: "AVERAGE_POOL_2D", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
       6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 17: "MAX_POOL_2D", 22: "RESHAPE",
       25: "SOFTMAX", 43: "SQUEEZE", 114: "QUANTIZE"}
T_FLOAT32, T_INT32, T_UINT8, T_INT8 = 0, 2, 3, 9


class Tensor:
    def __init__(self, t, buffers):
        self.shape = [int(v) for v in t.vector(0, "i4")]
        self.type = t.scalar(1, "b", 0)
        self.name = t.string(3)
        buf_index = t.scalar(2, "I", 0)
        q = t.table(4)
        self.scale = np.zeros(0, dtype=np.float32)
        self.zero = np.zeros(0, dtype=np.int64)
        self.qdim = 0
        if q is not None:
            self.scale = np.array(q.vector(2, "f4"), dtype=np.float32)
            self.zero = np.array(q.vector(3, "i8"), dtype=np.int64)
            self.qdim = q.scalar(6, "i", 0)
        self.data = None
        if 0 < buf_index < len(buffers) and buffers[buf_index] is not None:
            raw = buffers[buf_index].vector(0, "u1")
            if len(raw):
                dt = {T_FLOAT32: "<f4", T_INT32: "<i4", T_UINT8: "u1", T_INT8: "i1"}[self.type]
                self.data = np.frombuffer(raw.tobytes(), dtype=dt).reshape(self.shape)


class Op:
    def __init__(self, o, codes):
        self.code = codes[o.scalar(0, "I", 0)]
        self.name = OPS.get(self.code, "builtin_%d" % self.code)
        self.inputs = [int(v) for v in o.vector(1, "i4")]
        self.outputs = [int(v) for v in o.vector(2, "i4")]
        self.opt = o.table(4)

    def opt_scalar(self, i, fmt, default=0):
        return default if self.opt is None else self.opt.scalar(i, fmt, default)


class Model:
    def __init__(self, data):
        if data[4:8] != b"TFL3":
            raise ValueError("not a TFLite file (no TFL3 identifier)")
        (root,) = struct.unpack_from("<I", data, 0)
        m = FlatTable(data, root)
        codes = []
        for oc in m.tables(1):
            # builtin_code (slot 3, int32) superseded the int8 slot 0 at 127;
            # TFLite reads the larger of the two.
            codes.append(max(oc.scalar(0, "b", 0), oc.scalar(3, "i", 0)))
        buffers = m.tables(4)
        sg = m.tables(2)[0]
        self.tensors = [Tensor(t, buffers) for t in sg.tables(0)]
        self.inputs = [int(v) for v in sg.vector(1, "i4")]
        self.outputs = [int(v) for v in sg.vector(2, "i4")]
        self.ops = [Op(o, codes) for o in sg.tables(3)]


# ------------------------------------------------------ fixed-point helpers
# Everything below works on int64 numpy arrays holding int32 values.

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def round_away(x):
    """std::round: halves go away from zero."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(m):
    """double -> (Q31 multiplier, exponent) with m ~= q * 2^(exponent - 31)."""
    if m == 0.0:
        return 0, 0
    frac, exp = math.frexp(m)
    q = round_away(frac * (1 << 31))
    if q == (1 << 31):
        q //= 2
        exp += 1
    if exp < -31:
        return 0, 0
    return int(q), exp


def trunc_div(a, d):
    """C integer division (toward zero) for int64 arrays, d > 0."""
    q = np.abs(a) // d
    return np.where(a < 0, -q, q)


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul on int32 values."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == I32_MIN) & (b == I32_MIN)
    ab = a * b  # |ab| <= 2^62: fits int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    res = trunc_div(ab + nudge, 1 << 31)
    return np.where(overflow, I32_MAX, res)


def rdivpot(x, e):
    """RoundingDivideByPOT: x / 2^e rounded half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(e, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def mul_by_qm(x, q, exp):
    """MultiplyByQuantizedMultiplier(x, q, exp): x * q * 2^(exp-31), rounded."""
    exp = np.asarray(exp, dtype=np.int64)
    left = np.maximum(exp, 0)
    right = np.maximum(-exp, 0)
    return rdivpot(srdhm(np.asarray(x, dtype=np.int64) * (np.int64(1) << left), q), right)


def sat_shift_left(x, e):
    """SaturatingRoundingMultiplyByPOT with a positive exponent."""
    x = np.asarray(x, dtype=np.int64)
    thr = (1 << (31 - e)) - 1
    return np.clip(np.where(x > thr, I32_MAX, np.where(x < -thr, I32_MIN, x << e)),
                   I32_MIN, I32_MAX)


def wrap32(x):
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def exp_quarter(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor series at -1/8)."""
    const_term = 1895147668           # exp(-1/8)
    one_third = 715827883
    x = a + (1 << 28)                 # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_4 = rdivpot(x4, 2)
    poly = rdivpot(srdhm(x4_4 + x3, one_third) + x2, 1)
    return wrap32(const_term + srdhm(const_term, x + poly))


def exp_neg(a):
    """exp(a) for a <= 0: input Q5.26, output Q0.31 (gemmlowp's algorithm)."""
    a = np.asarray(a, dtype=np.int64)
    frac_bits = 26
    quarter = 1 << (frac_bits - 2)
    mask = quarter - 1
    a_mod = (a & mask) - quarter
    result = exp_quarter(sat_shift_left(a_mod, 5))
    remainder = a_mod - a
    # exp(-1/4), exp(-1/2), exp(-1), exp(-2), exp(-4), exp(-8), exp(-16) in Q0.31
    for k, mult in ((-2, 1672461947), (-1, 1302514674), (0, 790015084),
                    (1, 290630308), (2, 39332535), (3, 720401), (4, 242)):
        bit = 1 << (frac_bits + k)
        result = np.where((remainder & bit) != 0, srdhm(result, mult), result)
    return np.where(a == 0, I32_MAX, result)


def recip_one_plus(x):
    """1 / (1 + x) for x in [0, 1): Q0.31 in, Q0.31 out (Newton-Raphson)."""
    x = np.asarray(x, dtype=np.int64)
    s = x + I32_MAX
    half_den = trunc_div(s + np.where(s >= 0, 1, -1), 2)
    one_q2 = 1 << 29
    r = 1515870810 + srdhm(half_den, -1010580540)       # 48/17 - 32/17 * d, Q2.29
    for _ in range(3):
        t = one_q2 - srdhm(half_den, r)
        r = r + sat_shift_left(srdhm(r, t), 2)
    return sat_shift_left(r, 1)


# ------------------------------------------------------------------ kernels

ACT_NONE, ACT_RELU, ACT_RELU6 = 0, 1, 3


def act_range(act, t, qmin, qmax):
    scale, zp = float(t.scale[0]), int(t.zero[0])

    def q(f):
        return zp + int(round_away(float(np.float32(f) / np.float32(scale))))
    if act == ACT_NONE:
        return qmin, qmax
    if act == ACT_RELU:
        return max(qmin, q(0.0)), qmax
    if act == ACT_RELU6:
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    raise ValueError("unsupported fused activation %d" % act)


def qrange(t):
    return (0, 255) if t.type == T_UINT8 else (-128, 127)


def same_pad(n, k, s, d):
    out = (n + s - 1) // s
    eff = (k - 1) * d + 1
    total = max((out - 1) * s + eff - n, 0)
    return out, total // 2


def valid_out(n, k, s, d):
    return (n - ((k - 1) * d + 1)) // s + 1


def window(op, x_shape, kh, kw, sh, sw, dh=1, dw=1):
    h, w = x_shape[1], x_shape[2]
    if op.opt_scalar(0, "b", 0) == 0:  # SAME
        oh, pt = same_pad(h, kh, sh, dh)
        ow, pl = same_pad(w, kw, sw, dw)
    else:
        oh, ow, pt, pl = valid_out(h, kh, sh, dh), valid_out(w, kw, sw, dw), 0, 0
    return oh, ow, pt, pl


def multipliers(tin, tw, tout, n):
    """Per output channel (Q31, exponent); per-tensor scales are broadcast."""
    ws = tw.scale if len(tw.scale) == n else np.repeat(tw.scale[:1], n)
    qs, es = [], []
    for s in ws:
        q, e = quantize_multiplier(float(tin.scale[0]) * float(s) / float(tout.scale[0]))
        qs.append(q)
        es.append(e)
    return np.array(qs, dtype=np.int64), np.array(es, dtype=np.int64)


def zero_points(t, n):
    """Per-channel zero points; an absent list means zero (int32 biases)."""
    if len(t.zero) == 0:
        return np.zeros(n, dtype=np.int64)
    z = t.zero.astype(np.int64)
    return z if len(z) == n else np.repeat(z[:1], n)


def patches(x, kh, kw, sh, sw, dh, dw, oh, ow, pt, pl, pad_value):
    """(oh, ow, kh, kw, C) windows of one NHWC sample; pad_value fills the border."""
    h, w, c = x.shape
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    ph = max((oh - 1) * sh + eh - h - pt, 0)
    pw = max((ow - 1) * sw + ew - w - pl, 0)
    dt = np.float64 if np.issubdtype(x.dtype, np.floating) else np.int64
    xp = np.full((h + pt + ph, w + pl + pw, c), pad_value, dtype=dt)
    xp[pt:pt + h, pl:pl + w] = x
    out = np.empty((oh, ow, kh, kw, c), dtype=dt)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i, j, :] = xp[i * dh:i * dh + (oh - 1) * sh + 1:sh,
                                    j * dw:j * dw + (ow - 1) * sw + 1:sw]
    return out


def requant(acc, q, e, tout, act):
    qmin, qmax = qrange(tout)
    lo, hi = act_range(act, tout, qmin, qmax)
    y = mul_by_qm(acc, q, e) + int(tout.zero[0])
    return np.clip(y, lo, hi)


def op_conv(m, op, vals, depthwise):
    tin, tw, tout = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]], m.tensors[op.outputs[0]]
    x = vals[op.inputs[0]][0]
    sw, sh = op.opt_scalar(1, "i", 1), op.opt_scalar(2, "i", 1)
    if depthwise:
        act = op.opt_scalar(4, "b", 0)
        dw, dh = op.opt_scalar(5, "i", 1), op.opt_scalar(6, "i", 1)
    else:
        act = op.opt_scalar(3, "b", 0)
        dw, dh = op.opt_scalar(4, "i", 1), op.opt_scalar(5, "i", 1)
    w = tw.data.astype(np.int64)
    if depthwise:  # [1, kh, kw, C*mult]
        _, kh, kw, oc = w.shape
    else:          # [oc, kh, kw, ic]
        oc, kh, kw, _ = w.shape
    oh, ow, pt, pl = window(op, [1] + list(x.shape), kh, kw, sh, sw, dh, dw)
    in_zp = int(tin.zero[0])
    p = patches(x, kh, kw, sh, sw, dh, dw, oh, ow, pt, pl, in_zp) - in_zp
    wq = w - zero_points(tw, oc).reshape((1, 1, 1, oc) if depthwise else (oc, 1, 1, 1))
    if depthwise:
        mult = oc // x.shape[2]
        p = np.repeat(p, mult, axis=4)  # output channel o reads input o // mult
        acc = np.einsum("hwijc,ijc->hwc", p, wq[0])
    else:
        acc = np.tensordot(p, wq, axes=([2, 3, 4], [1, 2, 3]))
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        acc = acc + m.tensors[op.inputs[2]].data.astype(np.int64)
    q, e = multipliers(tin, tw, tout, oc)
    return requant(acc, q, e, tout, act)[None]


def op_fc(m, op, vals):
    tin, tw, tout = m.tensors[op.inputs[0]], m.tensors[op.inputs[1]], m.tensors[op.outputs[0]]
    w = tw.data.astype(np.int64)           # [out, in]
    x = vals[op.inputs[0]].reshape(-1, w.shape[1]) - int(tin.zero[0])
    acc = x @ (w - zero_points(tw, w.shape[0])[:, None]).T
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        acc = acc + m.tensors[op.inputs[2]].data.astype(np.int64)
    q, e = multipliers(tin, tw, tout, w.shape[0])
    return requant(acc, q, e, tout, op.opt_scalar(0, "b", 0))


def op_pool(m, op, vals, is_avg):
    tout = m.tensors[op.outputs[0]]
    x = vals[op.inputs[0]][0]
    sw, sh = op.opt_scalar(1, "i", 1), op.opt_scalar(2, "i", 1)
    fw, fh = op.opt_scalar(3, "i", 1), op.opt_scalar(4, "i", 1)
    act = op.opt_scalar(5, "b", 0)
    oh, ow, pt, pl = window(op, [1] + list(x.shape), fh, fw, sh, sw)
    qmin, qmax = qrange(tout)
    lo, hi = act_range(act, tout, qmin, qmax)
    if is_avg:
        p = patches(x, fh, fw, sh, sw, 1, 1, oh, ow, pt, pl, 0)
        ones = patches(np.ones(x.shape[:2] + (1,), dtype=np.int64), fh, fw, sh, sw, 1, 1,
                       oh, ow, pt, pl, 0)
        count = ones.sum(axis=(2, 3))                 # in-bounds elements only
        acc = p.sum(axis=(2, 3))
        half = count // 2                             # rounds half away from 0
        y = np.where(acc > 0, trunc_div(acc + half, count), trunc_div(acc - half, count))
    else:
        p = patches(x, fh, fw, sh, sw, 1, 1, oh, ow, pt, pl, qmin - 1)
        y = p.max(axis=(2, 3))
    return np.clip(y, lo, hi)[None]


def op_add(m, op, vals):
    ta, tb, tout = (m.tensors[op.inputs[0]], m.tensors[op.inputs[1]], m.tensors[op.outputs[0]])
    sa, sb, so = np.float32(ta.scale[0]), np.float32(tb.scale[0]), np.float32(tout.scale[0])
    left = 20
    twice_max = float(np.float32(2) * max(sa, sb))
    qa, ea = quantize_multiplier(float(sa) / twice_max)
    qb, eb = quantize_multiplier(float(sb) / twice_max)
    qo, eo = quantize_multiplier(twice_max / float(np.float32(1 << left) * so))
    a = (vals[op.inputs[0]] - int(ta.zero[0])) * (1 << left)
    b = (vals[op.inputs[1]] - int(tb.zero[0])) * (1 << left)
    sa_ = rdivpot(srdhm(a, qa), -ea)
    sb_ = rdivpot(srdhm(b, qb), -eb)
    y = rdivpot(srdhm(sa_ + sb_, qo), -eo) + int(tout.zero[0])
    qmin, qmax = qrange(tout)
    lo, hi = act_range(op.opt_scalar(0, "b", 0), tout, qmin, qmax)
    return np.clip(y, lo, hi)


def op_softmax(m, op, vals):
    tin, tout = m.tensors[op.inputs[0]], m.tensors[op.outputs[0]]
    beta = op.opt_scalar(0, "f", 1.0)
    int_bits = 5
    real = min(float(beta) * float(tin.scale[0]) * (1 << (31 - int_bits)), (1 << 31) - 1.0)
    qm, left = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << int_bits) - 1) * (1 << (31 - int_bits)) / (1 << left))
    diff_min = -radius
    x = vals[op.inputs[0]]
    rows = x.reshape(-1, x.shape[-1])
    out = np.zeros_like(rows)
    out_zp = int(tout.zero[0])
    for r in range(rows.shape[0]):
        d = rows[r] - rows[r].max()
        use = d >= diff_min
        scaled = srdhm(d * (1 << left), qm)
        e = np.where(use, exp_neg(np.where(use, scaled, 0)), 0)
        total = int(rdivpot(e, 12).sum())               # Q12.19 accumulator
        headroom = 32 - total.bit_length()
        bits_over_unit = 12 - headroom
        shifted = ((total << headroom) & 0xFFFFFFFF) - (1 << 31)
        recip = recip_one_plus(shifted)
        p = rdivpot(srdhm(recip, e), bits_over_unit + 31 - 8)
        # TFLite's uint8 softmax output is fixed at scale 1/256, zero point 0
        # (int8: zero point -128); the codes are offset by that.
        qmin, qmax = qrange(tout)
        out[r] = np.where(use, np.clip(p + out_zp, qmin, qmax), qmin)
    return out.reshape(x.shape)


def deq(t, q):
    """Dequantizes codes q of tensor t (per tensor or along t.qdim)."""
    q = np.asarray(q, dtype=np.float64)
    if len(t.scale) == 0:
        return q  # not quantized (e.g. a RESHAPE's int32 shape)
    if len(t.scale) > 1:
        shp = [1] * q.ndim
        shp[t.qdim] = len(t.scale)
        zp = zero_points(t, len(t.scale)).reshape(shp)
        return (q - zp) * t.scale.astype(np.float64).reshape(shp)
    return (q - float(zero_points(t, 1)[0])) * float(t.scale[0])


def float_op(m, op, act_value):
    """The same operator in float64: constants dequantized, activations from
    act_value(tensor index). Used to cross-check the fixed-point code and for
    run_float."""
    ins = [None if i < 0 else
           act_value(i) if m.tensors[i].data is None else deq(m.tensors[i], m.tensors[i].data)
           for i in op.inputs]
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        dw = op.name == "DEPTHWISE_CONV_2D"
        x, w = ins[0][0], ins[1]
        sw, sh = op.opt_scalar(1, "i", 1), op.opt_scalar(2, "i", 1)
        act = op.opt_scalar(4 if dw else 3, "b", 0)
        dil_w, dil_h = op.opt_scalar(5 if dw else 4, "i", 1), op.opt_scalar(6 if dw else 5, "i", 1)
        oc, kh, kw = (w.shape[3], w.shape[1], w.shape[2]) if dw else w.shape[:3]
        oh, ow, pt, pl = window(op, [1] + list(x.shape), kh, kw, sh, sw, dil_h, dil_w)
        p = patches(x, kh, kw, sh, sw, dil_h, dil_w, oh, ow, pt, pl, 0)
        if dw:
            y = np.einsum("hwijc,ijc->hwc", np.repeat(p, oc // x.shape[2], axis=4), w[0])
        else:
            y = np.tensordot(p, w, axes=([2, 3, 4], [1, 2, 3]))
        y = y + (ins[2] if len(ins) > 2 and ins[2] is not None else 0)
    elif op.name == "FULLY_CONNECTED":
        w = ins[1]
        y = ins[0].reshape(-1, w.shape[1]) @ w.T
        y = y + (ins[2] if len(ins) > 2 and ins[2] is not None else 0)
        act = op.opt_scalar(0, "b", 0)
    elif op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        x = ins[0][0]
        sw, sh = op.opt_scalar(1, "i", 1), op.opt_scalar(2, "i", 1)
        fw, fh = op.opt_scalar(3, "i", 1), op.opt_scalar(4, "i", 1)
        act = op.opt_scalar(5, "b", 0)
        oh, ow, pt, pl = window(op, [1] + list(x.shape), fh, fw, sh, sw)
        if op.name == "AVERAGE_POOL_2D":
            p = patches(x, fh, fw, sh, sw, 1, 1, oh, ow, pt, pl, 0)
            ones = patches(np.ones(x.shape[:2] + (1,)), fh, fw, sh, sw, 1, 1, oh, ow, pt, pl, 0)
            y = p.sum(axis=(2, 3)) / ones.sum(axis=(2, 3))
        else:
            y = patches(x, fh, fw, sh, sw, 1, 1, oh, ow, pt, pl, -np.inf).max(axis=(2, 3))
    elif op.name == "ADD":
        y, act = ins[0] + ins[1], op.opt_scalar(0, "b", 0)
    elif op.name == "SOFTMAX":
        z = ins[0] - ins[0].max(axis=-1, keepdims=True)
        y, act = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True), ACT_NONE
    else:
        return None
    if act in (ACT_RELU, ACT_RELU6):
        y = np.maximum(y, 0)
    if act == ACT_RELU6:
        y = np.minimum(y, 6)
    return y


def run(m, pixels, check=None):
    """pixels: HxWx3 uint8 -> (output codes, output tensor). With a list as
    `check`, each operator's integer result is compared with float_op and
    (name, max error in output quantization steps) is appended."""
    tin = m.tensors[m.inputs[0]]
    if tin.type not in (T_UINT8, T_INT8):
        raise ValueError("input tensor is not quantized")
    x = pixels.astype(np.int64).reshape(tin.shape)
    if tin.type == T_INT8:
        x = x - 128
    vals = {m.inputs[0]: x}
    for op in m.ops:
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            y = op_conv(m, op, vals, op.name == "DEPTHWISE_CONV_2D")
        elif op.name == "FULLY_CONNECTED":
            y = op_fc(m, op, vals)
        elif op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            y = op_pool(m, op, vals, op.name == "AVERAGE_POOL_2D")
        elif op.name == "ADD":
            y = op_add(m, op, vals)
        elif op.name in ("RESHAPE", "SQUEEZE"):
            y = vals[op.inputs[0]]
        elif op.name == "SOFTMAX":
            y = op_softmax(m, op, vals)
        else:
            raise ValueError("operator %s is not handled by the reference" % op.name)
        t = m.tensors[op.outputs[0]]
        if check is not None:
            f = float_op(m, op, lambda i: deq(m.tensors[i], vals[i]))
            if f is not None:
                qmin, qmax = qrange(t)
                lo, hi = deq(t, qmin), deq(t, qmax)  # the codes saturate there
                err = np.abs(np.clip(f.reshape(t.shape), lo, hi) - deq(t, y.reshape(t.shape)))
                check.append((op.name, float(err.max() / float(t.scale[0]))))
        vals[op.outputs[0]] = y.reshape(t.shape)
    return vals[m.outputs[0]].reshape(-1), m.tensors[m.outputs[0]]


def run_float(m, pixels):
    """The quantized graph's real-valued meaning without rounding: float64
    arithmetic on dequantized weights, each activation clipped to the range
    its quantized tensor can represent. Separates what quantization rounding
    changes (run vs run_float) from what an importer gets wrong."""
    tin = m.tensors[m.inputs[0]]
    q = pixels.astype(np.int64).reshape(tin.shape) - (128 if tin.type == T_INT8 else 0)
    fv = {m.inputs[0]: deq(tin, q)}
    for op in m.ops:
        t = m.tensors[op.outputs[0]]
        if op.name in ("RESHAPE", "SQUEEZE"):
            y = fv[op.inputs[0]]
        else:
            y = float_op(m, op, lambda i: fv[i])
            if y is None:
                raise ValueError("operator %s is not handled by the reference" % op.name)
            if op.name != "SOFTMAX":
                qmin, qmax = qrange(t)
                y = np.clip(y, deq(t, qmin), deq(t, qmax))
        fv[op.outputs[0]] = np.asarray(y).reshape(t.shape)
    return fv[m.outputs[0]].reshape(-1)


def self_check():
    """The fixed-point exp and reciprocal against math (guards typos above)."""
    for v in (-0.001, -0.1, -0.25, -0.7, -1.0, -2.5, -6.0, -15.0, -31.0):
        got = int(exp_neg(int(round(v * (1 << 26))))) / 2.0 ** 31
        if abs(got - math.exp(v)) > 2e-6:
            raise AssertionError("exp(%g): %g vs %g" % (v, got, math.exp(v)))
    for v in (0.0, 0.1, 0.5, 0.9, 0.999):
        got = int(recip_one_plus(int(v * 2 ** 31))) / 2.0 ** 31
        if abs(got - 1.0 / (1.0 + v)) > 2e-6:
            raise AssertionError("1/(1+%g): %g" % (v, got))


def main(argv):
    if len(argv) == 3 and argv[1] == "--list":
        m = Model(open(argv[2], "rb").read())
        for i, op in enumerate(m.ops):
            print(i, op.name, [m.tensors[t].shape if t >= 0 else None for t in op.inputs],
                  "->", [m.tensors[t].shape for t in op.outputs])
        return 0
    if len(argv) != 3:
        print(__doc__)
        return 2
    self_check()
    m = Model(open(argv[1], "rb").read())
    tin = m.tensors[m.inputs[0]]
    pixels = np.frombuffer(open(argv[2], "rb").read(), dtype=np.uint8)
    pixels = pixels.reshape(tin.shape[1], tin.shape[2], tin.shape[3])
    out, _ = run(m, pixels)
    order = np.argsort(-out, kind="stable")[:5]
    for k in order:
        print(int(k), int(out[k]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
