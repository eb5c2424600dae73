#!/usr/bin/env bash
# make demo's script, both ways: with ../shared (real photos, pretrained
# MobileNet, pets-cats: the trained head must beat chance by far) when it is
# present, and as on a bare clone (the script copied where ../shared does not
# exist: synthetic data and random weights, said so). Each run must finish
# with exit 0 and print every step.
set -u
kennel=${KN_BIN:?KN_BIN not set}
src=${KN_SOURCE_DIR:?KN_SOURCE_DIR not set}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
check() { # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}

mkdir -p "$tmp/bare/scripts"
cp "$src/scripts/demo.sh" "$tmp/bare/scripts/"
bash "$tmp/bare/scripts/demo.sh" "$kennel" > "$tmp/bare.out" 2>&1
check "bare clone: exit 0" test $? -eq 0
check "bare clone: says the data is synthetic" grep -q "../shared/data is absent" "$tmp/bare.out"
for s in 1/5 2/5 3/5 4/5 5/5; do check "bare clone: step $s" grep -q "== $s" "$tmp/bare.out"; done
check "bare clone: trained" grep -q "^Testing Accuracy: " "$tmp/bare.out"
check "bare clone: lint flags full access" grep -q "PrivilegeEscalation" "$tmp/bare.out"
check "bare clone: endpoint answered" grep -q "^\[\[" "$tmp/bare.out"
check "bare clone: done" grep -q "^== done in" "$tmp/bare.out"

if [ -d "$src/../shared/data/pets-cats" ]; then
  bash "$src/scripts/demo.sh" "$kennel" > "$tmp/shared.out" 2>&1
  check "shared: exit 0" test $? -eq 0
  for s in 1/5 2/5 3/5 4/5 5/5; do check "shared: step $s" grep -q "== $s" "$tmp/shared.out"; done
  check "shared: endpoint answered 12 scores" /usr/bin/python3 -c "
import json, sys
rows = [l for l in open(sys.argv[1]) if l.startswith('[[')]
assert rows and rows[-1].count(',') == 11, rows[-1]" "$tmp/shared.out"
  check "shared: cheeseburger" grep -A1 "burger.jpg" "$tmp/shared.out" | grep -q cheeseburger
  acc=$(sed -n 's/^Testing Accuracy: //p' "$tmp/shared.out")
  check "shared: accuracy far above chance ($acc)" awk -v a="$acc" 'BEGIN { exit !(a > 0.3) }'
else
  echo "SKIP part: ../shared/data/pets-cats is absent"
fi
if [ "$fail" -ne 0 ]; then
  echo "--- bare clone output"; cat "$tmp/bare.out"
  [ -f "$tmp/shared.out" ] && { echo "--- shared output"; cat "$tmp/shared.out"; }
fi
echo "$pass passed, $fail failed"
test "$fail" -eq 0
