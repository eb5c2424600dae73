#!/usr/bin/env bash
# Real transfer learning: the ImageNet MobileNet V1 (0.25, TFLite) frozen, a
# new head trained on ../shared/data/pets-cats (12 cat breeds x 10 real
# photos), seeded 7/3 split per class. Chance is 1/12 = 8.3 %; the test
# requires at least 35 % test accuracy and prints the figure.
set -u
kennel=${KN_BIN:?KN_BIN not set}
shared=${KN_SHARED:-../shared}
data="$shared/data/pets-cats"
model="$shared/data/models/mobilenet_v1_0.25_224.tflite"
if [ ! -d "$data" ] || [ ! -f "$model" ]; then
  echo "SKIP: $data or $model is absent"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$kennel" train --data "$data" --backbone "$model" --split 7,0,3 --epochs 60 --batch-size 16 \
  --learning-rate 0.003 --seed 0 --cache-dir none --no-progress --model-dir "$tmp/out" > "$tmp/log" 2>&1
rc=$?
grep -E "^(data|backbone|head|features|Testing)" "$tmp/log"
if [ $rc -ne 0 ]; then cat "$tmp/log"; echo "1 passed, 1 failed"; exit 1; fi
acc=$(sed -n 's/^Testing Accuracy: //p' "$tmp/log")
ok=$(/usr/bin/python3 -c "print(1 if float('$acc') >= 0.35 else 0)")
right=$("$kennel" predict --model "$tmp/out/model.tar.gz" --topk 1 "$data"/Sphynx/*.jpg | grep -c '^  1\. Sphynx ')
echo "test accuracy $acc (chance 0.083); package predicts Sphynx for $right of 10 Sphynx photos"
if [ "$ok" = 1 ] && [ "$right" -ge 5 ]; then echo "2 passed, 0 failed"; exit 0; fi
echo "0 passed, 2 failed"
exit 1
