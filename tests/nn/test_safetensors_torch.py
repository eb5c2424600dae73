"""Cross-checks kennel's safetensors code against PyTorch.

Debian has no python3-safetensors, so this test carries a small writer and
reader that follow the published format (8-byte little-endian header length,
JSON header, data buffer) and lets torch produce and judge the numbers:

1. torch makes F16, BF16, F32 and F64 tensors (random plus edge values:
   subnormals, infinities, NaN, -0); they are written as one safetensors file
   and, converted to float32 by torch, as a second one. The C test binary
   (`nn_test_safetensors --compare`) converts the first with kn_st_to_f32 and
   must match the second bit for bit.
2. The C binary writes fixed tensors with kn_st_write (`--write`); this file
   checks the layout the reference writer produces (8-aligned header padded
   with spaces, "__metadata__" {"format": "pt"}, tensors sorted by name and
   packed back to back covering the whole buffer) and the values via torch.

If the real `safetensors` package is importable, it also loads kennel's file
and writes an extra input for step 1. Skips (exit 77) when torch is missing.
Needs KN_BUILD_DIR (set by CTest).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("SKIP: torch is not installed for /usr/bin/python3")
    sys.exit(77)

try:
    import safetensors.torch as st_ref
except ImportError:
    st_ref = None

DTYPES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32",
          torch.float64: "F64"}
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)


def tensor_bytes(t):
    t = t.contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    # Safetensors data is little-endian.
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def write_st(path, tensors, metadata=None):
    """tensors: list of (name, tensor); written in list order, back to back."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, t in tensors:
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_st(path):
    """Returns (header dict in file order, header length, raw header, data)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr_bytes = raw[8:8 + n]
    hdr = json.loads(hdr_bytes)  # dicts keep file order
    return hdr, n, hdr_bytes, raw[8 + n:]


def find_binary():
    build = os.environ.get("KN_BUILD_DIR")
    if not build:
        print("FAIL: KN_BUILD_DIR is not set (run through ctest)")
        sys.exit(1)
    exe = os.path.join(build, "tests", "nn_test_safetensors")
    if not os.path.exists(exe):
        print("FAIL: %s not built" % exe)
        sys.exit(1)
    return exe


def torch_inputs():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    inf, nan = float("inf"), float("nan")
    return [
        # An odd-sized F16 tensor first: every later tensor is misaligned.
        ("h.odd", torch.randn(3, generator=g).half()),
        ("h.rand", torch.randn(4, 5, generator=g).half()),
        ("h.edge", torch.tensor([1.0, -2.0, 65504.0, 2.0 ** -24, 2.0 ** -14, 1 / 3, inf,
                                 -inf, -0.0, nan, 1e-8, 7e4], dtype=torch.float16)),
        ("b.rand", torch.randn(3, 7, generator=g).bfloat16()),
        ("b.edge", torch.tensor([1.0, -3.140625, 3e38, 2.0 ** -133, inf, nan, -0.0, 1e-45],
                                dtype=torch.bfloat16)),
        ("d.rand", torch.randn(2, 2, 3, generator=g, dtype=torch.float64)),
        ("d.edge", torch.tensor([1e40, -1e40, 1e-50, 3.141592653589793, 2.0 ** -149,
                                 2.0 ** -150 * 1.5, nan, -0.0], dtype=torch.float64)),
        ("f.rand", torch.randn(1, 2, 3, 2, generator=g)),
        ("f.scalar", torch.tensor(2.5)),
        ("f.empty", torch.zeros(0, 4)),
        ("conv.weight", torch.nn.Conv2d(3, 4, 3).weight.detach().half()),
    ]


def main():
    exe = find_binary()
    with tempfile.TemporaryDirectory(prefix="kn_st_torch_") as tmp:
        got = os.path.join(tmp, "mixed.safetensors")
        want = os.path.join(tmp, "want.safetensors")
        tensors = torch_inputs()
        write_st(got, tensors, {"format": "pt", "source": "test_safetensors_torch.py"})
        write_st(want, [(n, t.to(torch.float32)) for n, t in tensors])
        r = subprocess.run([exe, "--compare", got, want], capture_output=True, text=True)
        sys.stdout.write(r.stdout)
        sys.stdout.write(r.stderr)
        check(r.returncode == 0, "kn_st_to_f32 differs from torch's .float()")

        if st_ref is not None:
            ref = os.path.join(tmp, "ref.safetensors")
            st_ref.save_file({n: t for n, t in tensors}, ref)
            r = subprocess.run([exe, "--compare", ref, want], capture_output=True, text=True)
            sys.stdout.write(r.stdout + r.stderr)
            check(r.returncode == 0, "file from safetensors.torch.save_file differs")

        out = os.path.join(tmp, "kennel.safetensors")
        r = subprocess.run([exe, "--write", out], capture_output=True, text=True)
        sys.stdout.write(r.stdout + r.stderr)
        check(r.returncode == 0, "kn_st_write failed")
        if r.returncode != 0:
            return
        hdr, n, hdr_bytes, data = read_st(out)
        check(n % 8 == 0, "header length %d is not a multiple of 8" % n)
        text = hdr_bytes.decode()
        check(text.rstrip(" ") == text.strip() and text.strip().endswith("}"),
              "header padding is not trailing spaces")
        keys = list(hdr)
        check(keys[0] == "__metadata__", "__metadata__ is not first: %r" % keys)
        check(hdr.get("__metadata__") == {"format": "pt"}, "metadata %r" % hdr.get("__metadata__"))
        names = keys[1:]
        check(names == sorted(names), "tensors not sorted by name: %r" % names)
        off = 0
        for name in names:
            info = hdr[name]
            check(info["dtype"] == "F32", "%s dtype %s" % (name, info["dtype"]))
            b, e = info["data_offsets"]
            check(b == off, "%s starts at %d, expected %d (packed)" % (name, b, off))
            off = e
        check(off == len(data), "tensors cover %d of %d data bytes" % (off, len(data)))

        def load(name):
            info = hdr[name]
            b, e = info["data_offsets"]
            t = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32)
            return t.reshape(info["shape"])

        expect = {
            "conv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.25 - 1,
            "odd": torch.tensor([2.0 ** -100, -1.5 * 2.0 ** 127, 7.0], dtype=torch.float32),
            "alpha": ((torch.arange(20, dtype=torch.float32) - 10) / 8).reshape(4, 1, 1, 5),
        }
        check(sorted(names) == sorted(expect), "tensor names %r" % names)
        for name, t in expect.items():
            if name in hdr:
                got_t = load(name)
                check(got_t.shape == t.shape and torch.equal(got_t, t),
                      "%s: %r vs %r" % (name, got_t, t))
        if st_ref is not None:
            loaded = st_ref.load_file(out)
            for name, t in expect.items():
                check(torch.equal(loaded[name], t), "safetensors.torch.load_file: %s" % name)
        else:
            print("note: python safetensors package absent; used the built-in reader/writer")

    print("%s (%d failures)" % ("ok" if failures == 0 else "FAILED", failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
