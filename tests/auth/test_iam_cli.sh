#!/usr/bin/env bash
# kennel iam lint and simulate, through the real binary:
#  - the reference project's least-privilege policy lints clean (exit 0);
#  - the same role with sagemaker:* on "*" is flagged (wildcard action and
#    resource), iam:PassRole on "*" is a privilege-escalation error, a typo'd
#    action is an error, Allow + NotAction is flagged (exit 1), --json gives
#    one object per finding;
#  - a malformed policy is MalformedPolicyDocument naming the problem (exit 2),
#    and one over 128 KiB is refused naming the limit;
#  - simulate allows the one endpoint, names the deciding statement, denies
#    another endpoint with AWS's AccessDenied wording, and an explicit deny
#    wins over sagemaker:*; trust policies with --service;
#  - usage errors exit 2.
set -u
. "$(dirname "$0")/../kn_testlib.sh"
EP=arn:aws:sagemaker:us-east-1:123456789012:endpoint

cat > "$tmp/least.json" <<JSON
{"Version":"2012-10-17","Statement":[
 {"Sid":"InvokeOneEndpoint","Effect":"Allow","Action":"sagemaker:InvokeEndpoint","Resource":"$EP/dog-ep"},
 {"Effect":"Allow","Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents"],
  "Resource":"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/dog-fn:*"}]}
JSON
cat > "$tmp/full.json" <<JSON
{"Version":"2012-10-17","Statement":[
 {"Sid":"Everything","Effect":"Allow","Action":"sagemaker:*","Resource":"*"},
 {"Sid":"Pass","Effect":"Allow","Action":["iam:PassRole","sagemaker:InvokeEndpiont"],"Resource":"*"},
 {"Sid":"AllButIam","Effect":"Allow","NotAction":"iam:*","Resource":"$EP/x"}]}
JSON
cat > "$tmp/deny.json" <<JSON
{"Version":"2012-10-17","Statement":{"Sid":"NoCat","Effect":"Deny","Action":"sagemaker:Invoke*","Resource":"$EP/cat-*"}}
JSON
cat > "$tmp/trust.json" <<JSON
{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}}
JSON
printf '{"Statement":{"Effect":"Allow","Action":"sagemaker:InvokeEndpoint","Resource":"dog-ep"}}' > "$tmp/bad.json"

"$kennel" iam lint "$tmp/least.json" > "$tmp/l1.out" 2> "$tmp/l1.err"
check "least privilege: exit 0" test $? -eq 0
check "least privilege: no findings" test ! -s "$tmp/l1.out"
check "least privilege: summary" grep -q "0 findings in 1 file" "$tmp/l1.err"

"$kennel" iam lint "$tmp/full.json" > "$tmp/l2.out" 2> "$tmp/l2.err"
check "sagemaker:* flagged: exit 1" test $? -eq 1
check "wildcard action" grep -q "Statement\[0\] (Everything): warning WildcardAction: 'sagemaker:\*' allows all" "$tmp/l2.out"
check "wildcard resource" grep -q "Statement\[0\] (Everything): warning WildcardResource" "$tmp/l2.out"
check "PassRole on *" grep -q "Statement\[1\] (Pass): error PrivilegeEscalation: iam:PassRole .*every resource" "$tmp/l2.out"
check "typo" grep -q "error UnknownAction: 'sagemaker:InvokeEndpiont' matches no sagemaker action" "$tmp/l2.out"
check "NotAction" grep -q "Statement\[2\] (AllButIam): warning AllowNotAction" "$tmp/l2.out"
"$kennel" iam lint --json "$tmp/full.json" > "$tmp/l3.out" 2>/dev/null
check "json: exit 1" test $? -eq 1
check "json: one object per finding" test "$(wc -l < "$tmp/l3.out")" -eq "$(wc -l < "$tmp/l2.out")"
check "json: parses" /usr/bin/python3 -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert {r['code'] for r in rows} >= {'WildcardAction', 'PrivilegeEscalation', 'UnknownAction'}
assert all(r['file'].endswith('full.json') for r in rows)" "$tmp/l3.out"

"$kennel" iam lint "$tmp/bad.json" > /dev/null 2> "$tmp/l4.err"
check "malformed: exit 2" test $? -eq 2
check "malformed: named" grep -q "MalformedPolicyDocument: Statement\[0\]: Resource 'dog-ep' must be an ARN" "$tmp/l4.err"
"$kennel" iam lint "$tmp/missing.json" > /dev/null 2> "$tmp/l5.err"
check "missing file: exit 2" test $? -eq 2
check "missing file: named" grep -q "missing.json" "$tmp/l5.err"
/usr/bin/python3 -c "print('{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\",\"Sid\":\"' + 'a' * 200000 + '\"}}')" > "$tmp/big.json"
"$kennel" iam lint "$tmp/big.json" > /dev/null 2> "$tmp/l6.err"
check "over 128 KiB: exit 2" test $? -eq 2
check "over 128 KiB: the limit named" grep -q "131072" "$tmp/l6.err"
"$kennel" iam lint --trust "$tmp/trust.json" > /dev/null 2>&1
check "trust policy lints clean" test $? -eq 0

"$kennel" iam simulate --policy "$tmp/least.json" --action sagemaker:InvokeEndpoint --resource "$EP/dog-ep" > "$tmp/s1.out"
check "simulate allow: exit 0" test $? -eq 0
check "simulate allow: deciding statement" grep -q "allowed: .* Statement\[0\] (InvokeOneEndpoint)" "$tmp/s1.out"
"$kennel" iam simulate --policy "$tmp/least.json" --action sagemaker:InvokeEndpoint --resource "$EP/cat-ep" \
  --principal arn:aws:sts::123456789012:assumed-role/dog-fn-role/dog-fn > "$tmp/s2.out"
check "simulate other endpoint: exit 1" test $? -eq 1
check "simulate: AccessDenied wording" grep -q "AccessDenied: User: arn:aws:sts::123456789012:assumed-role/dog-fn-role/dog-fn is not authorized to perform: sagemaker:InvokeEndpoint on resource: $EP/cat-ep because no identity-based policy allows the sagemaker:InvokeEndpoint action" "$tmp/s2.out"
"$kennel" iam simulate --policy "$tmp/full.json" --policy "$tmp/deny.json" --action sagemaker:InvokeEndpoint --resource "$EP/cat-ep" > "$tmp/s3.out"
check "explicit deny wins: exit 1" test $? -eq 1
check "explicit deny named" grep -q "explicit deny in .*deny.json Statement\[0\] (NoCat)" "$tmp/s3.out"
"$kennel" iam simulate --trust --policy "$tmp/trust.json" --action sts:AssumeRole --service lambda.amazonaws.com > /dev/null
check "trust: lambda may assume" test $? -eq 0
"$kennel" iam simulate --trust --policy "$tmp/trust.json" --action sts:AssumeRole --service ec2.amazonaws.com > /dev/null
check "trust: ec2 may not" test $? -eq 1
cat > "$tmp/cond.json" <<JSON
{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sagemaker:InvokeEndpoint","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}
JSON
"$kennel" iam simulate --policy "$tmp/cond.json" --action sagemaker:InvokeEndpoint --context aws:SourceIp=10.1.2.3 > /dev/null
check "condition key: inside" test $? -eq 0
"$kennel" iam simulate --policy "$tmp/cond.json" --action sagemaker:InvokeEndpoint --context aws:SourceIp=192.168.0.1 > /dev/null
check "condition key: outside" test $? -eq 1

"$kennel" iam > /dev/null 2>&1
check "no subcommand: exit 2" test $? -eq 2
"$kennel" iam frobnicate > /dev/null 2>&1
check "unknown subcommand: exit 2" test $? -eq 2
"$kennel" iam simulate --action x:y > /dev/null 2>&1
check "simulate without policy: exit 2" test $? -eq 2
"$kennel" iam simulate --policy "$tmp/least.json" --action a:b --context novalue > /dev/null 2>&1
check "bad context: exit 2" test $? -eq 2
"$kennel" iam lint --help > /dev/null
check "help: exit 0" test $? -eq 0

echo "$pass passed, $fail failed"
test "$fail" -eq 0
