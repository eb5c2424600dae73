#!/usr/bin/env bash
# The main job, as far as kennel goes today: classify real photos with a real
# pretrained model, transfer-learn a cat-breed classifier on a frozen
# backbone, classify held-out photos with the trained package, and check the
# reference project's least-privilege policy against a full-access one.
#
# Uses ../shared/data when present (real photos, MobileNet V1 ImageNet TFLite,
# the pets-cats data set). Otherwise it says so and runs the same steps on a
# clearly labelled synthetic data set and random weights, so the pipeline
# still runs end to end on a bare clone.
set -euo pipefail
kennel=${1:-build/kennel}
top=$(cd "$(dirname "$0")/.." && pwd)
shared="$top/../shared/data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
step() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

if [ -f "$shared/models/mobilenet_v1_0.25_224.tflite" ] && [ -d "$shared/pets-cats" ]; then
  model="$shared/models/mobilenet_v1_0.25_224.tflite"
  step "1/4 kennel predict: MobileNet V1 (ImageNet, TFLite) on the photos in ../shared/data/images"
  "$kennel" predict --model "$model" --labels "$shared/models/imagenet_labels.txt" --topk 3 \
    "$shared"/images/*.jpg "$shared"/images/dogs/*.jpg
  echo "-- the endpoint's answer for one photo (kennel predict --json, first 80 characters):"
  "$kennel" predict --model "$model" --json "$shared/images/burger.jpg" | cut -c1-80

  step "2/4 kennel train: 12 cat breeds (../shared/data/pets-cats, 10 photos each, seeded 7/3 split)," \
    "frozen MobileNet backbone, new head, Adam"
  "$kennel" train --data "$shared/pets-cats" --backbone "$model" --split 7,0,3 --epochs 60 \
    --learning-rate 0.003 --batch-size 16 --cache-dir "$tmp/cache" --model-dir "$tmp/cats" \
    > "$tmp/train.log" 2>&1 || { cat "$tmp/train.log"; exit 1; }
  grep -E "^(Testing Loss|Testing Accuracy)" "$tmp/train.log"
  echo "(chance is 1/12 = 0.083)"

  step "3/4 kennel predict with the trained package (a photo it never saw, and a Sphynx from the data set)"
  "$kennel" predict --model "$tmp/cats/model.tar.gz" --topk 3 "$shared/images/cats_and_dogs.jpg" \
    "$shared/pets-cats/Sphynx/$(ls "$shared/pets-cats/Sphynx" | head -1)"
else
  step "../shared/data is absent: the steps run on a synthetic data set (coloured shapes) and"
  echo "   a random-weight ResNet-18 backbone; the numbers show the pipeline, not a real model"
  "$kennel" dataset synth "$tmp/shapes" --classes 3 --per-class 12 --seed 1
  "$kennel" model package --arch resnet18 --init random --classes 1000 --out "$tmp/rand"
  step "1/4 kennel predict with the random-weight package"
  "$kennel" predict --model "$tmp/rand" --topk 3 "$tmp/shapes/test/01.red_circle/test_0001.jpg"
  step "2/4 kennel train: 3 synthetic classes, frozen random ResNet-18 at 64 px, new head"
  "$kennel" train --data "$tmp/shapes" --arch resnet18 --weights "$tmp/rand/model.safetensors" \
    --image-size 64 --epochs 10 --learning-rate 0.01 --batch-size 8 --cache-dir "$tmp/cache" \
    --model-dir "$tmp/out" > "$tmp/train.log" 2>&1 || { cat "$tmp/train.log"; exit 1; }
  grep -E "^(Testing Loss|Testing Accuracy)" "$tmp/train.log"
  step "3/4 kennel predict with the trained package"
  "$kennel" predict --model "$tmp/out/model.tar.gz" --topk 2 \
    "$tmp/shapes/test/01.red_circle/test_0001.jpg" "$tmp/shapes/test/03.blue_triangle/test_0001.jpg"
fi

step "4/4 kennel iam lint: the reference project's least-privilege role vs AmazonSageMakerFullAccess-style"
EP=arn:aws:sagemaker:us-east-1:123456789012:endpoint
cat > "$tmp/least.json" << JSON
{"Version":"2012-10-17","Statement":[{"Sid":"InvokeOneEndpoint","Effect":"Allow",
 "Action":"sagemaker:InvokeEndpoint","Resource":"$EP/dog-ep"}]}
JSON
cat > "$tmp/full.json" << JSON
{"Version":"2012-10-17","Statement":[{"Sid":"FullAccess","Effect":"Allow","Action":"sagemaker:*","Resource":"*"},
 {"Sid":"PassAnyRole","Effect":"Allow","Action":"iam:PassRole","Resource":"*"}]}
JSON
echo "-- least privilege:"
"$kennel" iam lint "$tmp/least.json" && echo "   clean"
echo "-- full access:"
"$kennel" iam lint "$tmp/full.json" | sed "s|$tmp/||" || true
echo "-- may the function's role invoke another endpoint?"
"$kennel" iam simulate --policy "$tmp/least.json" --action sagemaker:InvokeEndpoint \
  --resource "$EP/cat-ep" --principal arn:aws:sts::123456789012:assumed-role/dog-fn-role/dog-fn |
  sed 's/^/   /' || true

printf '\n== done in %d s\n' "$(($(date +%s) - t0))"
