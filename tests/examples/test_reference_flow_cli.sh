#!/usr/bin/env bash
# examples/reference_flow.sh (the AWS CLI v2 at /usr/bin/aws, with
# examples/lambda_function.py as the function) against a kennel server of its
# own; see flow_lib.sh.
. "$(dirname "$0")/flow_lib.sh"
[ -x /usr/bin/aws ] || { echo "skip: /usr/bin/aws (AWS CLI v2) is absent"; exit 77; }
EPOCHS=3 AWS_CLI=/usr/bin/aws bash "$src/examples/reference_flow.sh" "$url" "$data" "$backbone" \
  "$photo" "$tmp/out" > "$tmp/flow.out" 2>&1
check "reference_flow.sh: exit 0" test $? -eq 0
check_flow "$tmp/flow.out"
finish
