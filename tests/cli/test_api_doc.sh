#!/usr/bin/env bash
# docs/API.md against the route table in src/api/api.c (scripts/api_routes.py):
#  - every route is mentioned (an operation in backquotes, kennel's own routes
#    by their path), and every operation the page lists as implemented has a route;
#  - every member a handler refuses as unsupported (kn_val_unsupported lists)
#    is named, so the page's "Refused:" lists follow the code;
#  - the check itself fails on a page missing one operation, one kennel path
#    or one refused member, or listing an operation with no route;
#  - the route table parses to a plausible number of rows per service.
set -u
src=${KN_SOURCE_DIR:?KN_SOURCE_DIR not set}
py=/usr/bin/python3
tool="$src/scripts/api_routes.py"
api="$src/src/api/api.c"
doc="$src/docs/API.md"
. "$(dirname "$0")/../kn_testlib.sh"

"$py" "$tool" --src "$api" >"$tmp/routes.tsv"
check "route table parses" test -s "$tmp/routes.tsv"
count() { awk -F'\t' -v s="$1" '$1 == s' "$tmp/routes.tsv" | wc -l; }
check "sagemaker rows found" test "$(count sagemaker)" -ge 20
check "iam rows found" test "$(count iam)" -ge 15
check "sts rows found" test "$(count sts)" -ge 2
check "application-autoscaling rows found" test "$(count application-autoscaling)" -ge 7
check "kennel rows found" test "$(count kennel)" -ge 5
check "lambda rows found" test "$(count lambda)" -ge 20
check "InvokeEndpoint has its path" grep -qP '^sagemaker\tInvokeEndpoint\tPOST\t/endpoints/' "$tmp/routes.tsv"

# the page as it is
if ! "$py" "$tool" --src "$api" --check "$doc"; then
  fail=$((fail + 1))
  echo "FAIL: docs/API.md does not match src/api/api.c (see above)"
else
  pass=$((pass + 1))
fi

# the check must catch a missing operation, a missing kennel path and an extra row
bad_page() { # bad_page NAME FILE WORD: the check fails on FILE and names WORD
  local rc=0
  "$py" "$tool" --src "$api" --check "$2" >"$tmp/out" 2>&1 || rc=$?
  check "$1: check fails" test "$rc" -eq 1
  check "$1: names $3" grep -q -- "$3" "$tmp/out"
}
sed 's/`DescribeScalingActivities`/DescribeScalingActivities/g' "$doc" >"$tmp/no-op.md"
bad_page "missing operation" "$tmp/no-op.md" "route DescribeScalingActivities"
sed 's#`GET /kennel/health`#GET /kennel/health#g; s#`/kennel/health`#/kennel/health#g' "$doc" >"$tmp/no-path.md"
bad_page "missing kennel path" "$tmp/no-path.md" "/kennel/health"
sed 's/`ShadowProductionVariants`/ShadowProductionVariants/g' "$doc" >"$tmp/no-member.md"
bad_page "unnamed unsupported member" "$tmp/no-member.md" "ShadowProductionVariants"
{ cat "$doc"; printf '\n| `CreateNotebookInstance` | not a route |\n'; } >"$tmp/extra.md"
bad_page "row without a route" "$tmp/extra.md" "CreateNotebookInstance"

kn_done
