#!/usr/bin/env bash
# examples/reference_flow.py (boto3, with examples/lambda_function.py as the
# function) against a kennel server of its own; see flow_lib.sh.
. "$(dirname "$0")/flow_lib.sh"
EPOCHS=3 /usr/bin/python3 "$src/examples/reference_flow.py" --endpoint-url "$url" --data "$data" \
  --backbone "$backbone" --photo "$photo" --out "$tmp/out" --epochs 3 > "$tmp/flow.out" 2>&1
check "reference_flow.py: exit 0" test $? -eq 0
check_flow "$tmp/flow.out"
finish
