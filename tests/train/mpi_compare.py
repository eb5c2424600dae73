"""Compares two kennel model directories trained on the same global batches:
the training loss of every step (metrics.json step_loss) and every tensor of
model.safetensors, relative to the tensor's largest magnitude.

usage: mpi_compare.py DIR_A DIR_B TOLERANCE
Prints the worst relative differences; exit 0 when both are within
TOLERANCE, 1 otherwise."""
import json
import struct
import sys

import numpy as np


def tensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    n = struct.unpack('<Q', raw[:8])[0]
    out = {}
    for name, t in json.loads(raw[8:8 + n]).items():
        if name == '__metadata__':
            continue
        if t['dtype'] != 'F32':
            sys.exit('%s: %s is %s, expected F32' % (path, name, t['dtype']))
        s, e = t['data_offsets']
        out[name] = np.frombuffer(raw[8 + n + s:8 + n + e], dtype='<f4').astype(np.float64)
    return out


def main():
    a, b, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ma = json.load(open(a + '/metrics.json'))
    mb = json.load(open(b + '/metrics.json'))
    la, lb = np.array(ma['step_loss']), np.array(mb['step_loss'])
    if len(la) == 0 or len(la) != len(lb):
        print('step counts differ: %d vs %d' % (len(la), len(lb)))
        return 1
    loss_rel = float(np.max(np.abs(la - lb) / np.maximum(np.abs(la), 1e-12)))
    wa, wb = tensors(a + '/model.safetensors'), tensors(b + '/model.safetensors')
    if sorted(wa) != sorted(wb):
        print('the two models have other tensors')
        return 1
    w_rel, worst = 0.0, ''
    for k in wa:
        scale = max(float(np.max(np.abs(wa[k]))), 1e-12)
        d = float(np.max(np.abs(wa[k] - wb[k]))) / scale
        if d > w_rel:
            w_rel, worst = d, k
    print('%d steps: loss max rel diff %.3g; weights max rel diff %.3g (%s)' %
          (len(la), loss_rel, w_rel, worst or '-'))
    return 0 if loss_rel <= tol and w_rel <= tol else 1


if __name__ == '__main__':
    sys.exit(main())
