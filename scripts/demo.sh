#!/usr/bin/env bash
# The main job, as far as kennel goes today: classify real photos with a real
# pretrained model, transfer-learn a cat-breed classifier on a frozen
# backbone, classify photos with the trained package, deploy it to an
# endpoint on a kennel server (a temporary data directory), invoke it and
# put the reference project's autoscaling on it, and check the reference
# project's least-privilege policy against a full-access one.
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
  step "1/5 kennel predict: MobileNet V1 (ImageNet, TFLite) on the photos in ../shared/data/images"
  "$kennel" predict --model "$model" --labels "$shared/models/imagenet_labels.txt" --topk 3 \
    "$shared"/images/*.jpg "$shared"/images/dogs/*.jpg
  echo "-- the endpoint's answer for one photo (kennel predict --json, first 80 characters):"
  "$kennel" predict --model "$model" --json "$shared/images/burger.jpg" | cut -c1-80

  step "2/5 kennel train: 12 cat breeds (../shared/data/pets-cats, 10 photos each, seeded 7/3 split)," \
    "frozen MobileNet backbone, new head, Adam"
  "$kennel" train --data "$shared/pets-cats" --backbone "$model" --split 7,0,3 --epochs 60 \
    --learning-rate 0.003 --batch-size 16 --cache-dir "$tmp/cache" --model-dir "$tmp/cats" \
    > "$tmp/train.log" 2>&1 || { cat "$tmp/train.log"; exit 1; }
  grep -E "^(Testing Loss|Testing Accuracy)" "$tmp/train.log"
  echo "(chance is 1/12 = 0.083)"

  step "3/5 kennel predict with the trained package (a photo it never saw, and a Sphynx from the data set)"
  pkg="$tmp/cats/model.tar.gz"
  photo="$shared/images/cats_and_dogs.jpg"
  "$kennel" predict --model "$pkg" --topk 3 "$photo" \
    "$shared/pets-cats/Sphynx/$(ls "$shared/pets-cats/Sphynx" | head -1)"
else
  step "../shared/data is absent: the steps run on a synthetic data set (coloured shapes) and"
  echo "   a random-weight ResNet-18 backbone; the numbers show the pipeline, not a real model"
  "$kennel" dataset synth "$tmp/shapes" --classes 3 --per-class 12 --seed 1
  "$kennel" model package --arch resnet18 --init random --classes 1000 --out "$tmp/rand"
  step "1/5 kennel predict with the random-weight package"
  "$kennel" predict --model "$tmp/rand" --topk 3 "$tmp/shapes/test/01.red_circle/test_0001.jpg"
  step "2/5 kennel train: 3 synthetic classes, frozen random ResNet-18 at 64 px, new head"
  "$kennel" train --data "$tmp/shapes" --arch resnet18 --weights "$tmp/rand/model.safetensors" \
    --image-size 64 --epochs 10 --learning-rate 0.01 --batch-size 8 --cache-dir "$tmp/cache" \
    --model-dir "$tmp/out" > "$tmp/train.log" 2>&1 || { cat "$tmp/train.log"; exit 1; }
  grep -E "^(Testing Loss|Testing Accuracy)" "$tmp/train.log"
  step "3/5 kennel predict with the trained package"
  pkg="$tmp/out/model.tar.gz"
  photo="$tmp/shapes/test/01.red_circle/test_0001.jpg"
  "$kennel" predict --model "$pkg" --topk 2 \
    "$tmp/shapes/test/01.red_circle/test_0001.jpg" "$tmp/shapes/test/03.blue_triangle/test_0001.jpg"
fi

step "4/5 kennel server: deploy the trained package to endpoint cats-ep, invoke it, autoscale it"
"$kennel" server --data-dir "$tmp/server" --port 0 --ready-file "$tmp/ready" > "$tmp/server.log" 2>&1 &
server_pid=$!
# the client commands sign with the administrator key the daemon writes on first start
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export KENNEL_DATA_DIR="$tmp/server"
trap 'kill "$server_pid" 2> /dev/null; wait "$server_pid" 2> /dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
[ -s "$tmp/ready" ] || { echo "the server did not start:"; cat "$tmp/server.log"; exit 1; }
url="http://$(cat "$tmp/ready")"
echo "-- server at $url (data in a temporary directory)"
"$kennel" deploy --model "$pkg" --name cats-ep --instances 1 --wait --endpoint-url "$url"
"$kennel" endpoints --endpoint-url "$url"
echo "-- kennel invoke cats-ep $(basename "$photo") (raw scores, one row per image, as the reference endpoint answered):"
"$kennel" invoke cats-ep "$photo" --endpoint-url "$url"
echo "-- the reference project's scaling: 1..3 instances, scale-in cooldown 300 s, scale-out 30 s"
"$kennel" autoscale cats-ep --min 1 --max 3 --target 70 --scale-in-cooldown 300 \
  --scale-out-cooldown 30 --endpoint-url "$url"
"$kennel" undeploy cats-ep --endpoint-url "$url" > /dev/null

step "5/5 kennel iam lint: the reference project's least-privilege role vs AmazonSageMakerFullAccess-style"
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
