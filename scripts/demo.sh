#!/usr/bin/env bash
# The main job: classify real photos with a real pretrained model, then show
# the model's structure. Uses ../shared/data when present; otherwise builds a
# clearly labelled random-weight ResNet-18 package and classifies a generated
# image, so the pipeline still runs end to end on a bare clone.
set -euo pipefail
kennel=${1:-build/kennel}
top=$(cd "$(dirname "$0")/.." && pwd)
shared="$top/../shared/data"
if [ -f "$shared/models/mobilenet_v1_0.25_224.tflite" ]; then
  echo "== kennel predict: MobileNet V1 (ImageNet, TFLite) on the photos in ../shared/data/images"
  "$kennel" predict --model "$shared/models/mobilenet_v1_0.25_224.tflite" \
    --labels "$shared/models/imagenet_labels.txt" --topk 3 \
    "$shared"/images/*.jpg "$shared"/images/dogs/*.jpg
  echo
  echo "== kennel predict --json: the endpoint's answer for one photo (first 5 of 1001 scores)"
  "$kennel" predict --model "$shared/models/mobilenet_v1_0.25_224.tflite" --json \
    "$shared/images/burger.jpg" | cut -c1-80
else
  echo "== ../shared/data is absent: a random-weight ResNet-18 with 10 classes on a generated"
  echo "   image (the pipeline runs end to end; the scores mean nothing)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$kennel" model package --arch resnet18 --init random --classes 10 --out "$tmp/pkg" \
    --tar "$tmp/model.tar.gz"
  /usr/bin/python3 - "$tmp/gradient.png" <<'PY'
import struct, sys, zlib
w = h = 64
rows = b"".join(b"\0" + bytes(v for x in range(w) for v in (x * 4, y * 4, 128)) for y in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
  "$kennel" predict --model "$tmp/model.tar.gz" --topk 3 "$tmp/gradient.png"
  "$kennel" model inspect "$tmp/model.tar.gz" | tail -9
  exit 0
fi
echo
echo "== kennel model inspect (summary)"
"$kennel" model inspect "$shared/models/mobilenet_v1_0.25_224.tflite" | tail -9
