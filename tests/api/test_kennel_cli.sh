#!/usr/bin/env bash
# kennel's own client commands against a real kennel server (no AWS tooling):
# deploy --wait -> endpoints (text and --json) -> invoke with a JPEG file and
# with an http URL served on loopback (same scores as kennel predict) ->
# autoscale -> activities -> metrics (the invocations just made are counted)
# -> undeploy; and the errors: invoke of a missing endpoint, deploy of a
# name in use, an unreachable server (exit 1 with a message).
set -u
. "$(dirname "$0")/../kn_testlib.sh"
kn_need_pil
web_pid=
kn_cleanup_more() { [ -n "$web_pid" ] && kill "$web_pid" 2>/dev/null; }

"$kennel" model package --arch resnet18 --init random --classes 5 --seed 11 --out "$tmp/pkg" > /dev/null
mkdir -p "$tmp/web"
/usr/bin/python3 -c "
from PIL import Image
Image.new('RGB', (50, 70), (90, 160, 20)).save('$tmp/web/dog.jpg')"
# a loopback web server for the URL form
/usr/bin/python3 -c "
import http.server, functools, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory='$tmp/web')
h.log_message = lambda *a: None
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), h)
open('$tmp/web.port', 'w').write(str(s.server_address[1]))
s.serve_forever()" &
web_pid=$!

# the daemon seeds its administrator with the key the client signs with
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
export KENNEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID KENNEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
unset AWS_SESSION_TOKEN
kn_start_server --clock-rate 60
for _ in $(seq 1 200); do [ -s "$tmp/web.port" ] && break; sleep 0.05; done
export KENNEL_ENDPOINT=$url

"$kennel" deploy --model "$tmp/pkg" --name dogs --instances 2 --instance-type ml.t2.medium \
  --wait > "$tmp/deploy.out" 2>&1
check "deploy --wait" grep -q "endpoint dogs is InService" "$tmp/deploy.out"
"$kennel" deploy --model "$tmp/pkg" --name dogs > /dev/null 2> "$tmp/err"
check "deploy of a name in use" grep -q "CreateModel failed (ValidationException" "$tmp/err"

"$kennel" endpoints > "$tmp/eps.txt"
check "endpoints" grep -Eq "^dogs +InService +AllTraffic +2/2$" "$tmp/eps.txt"
"$kennel" endpoints --json > "$tmp/eps.json"
check "endpoints --json" /usr/bin/python3 -c "
import json; d = json.load(open('$tmp/eps.json'))
assert d[0]['EndpointName'] == 'dogs' and d[0]['ProductionVariants'][0]['CurrentInstanceCount'] == 2"

"$kennel" invoke dogs "$tmp/web/dog.jpg" > "$tmp/inv1.json"
check "invoke FILE" test $? -eq 0
"$kennel" invoke dogs "http://127.0.0.1:$(cat "$tmp/web.port")/dog.jpg" > "$tmp/inv2.json"
check "invoke URL" test $? -eq 0
"$kennel" predict --model "$tmp/pkg" --json "$tmp/web/dog.jpg" > "$tmp/pred.json" 2> /dev/null
check "same scores as predict, both ways" /usr/bin/python3 -c "
import json
a = json.load(open('$tmp/inv1.json'))[0]; b = json.load(open('$tmp/inv2.json'))[0]
c = json.load(open('$tmp/pred.json'))[0]
assert len(a) == 5 and a == b and max(abs(x - y) for x, y in zip(a, c)) < 1e-4"
"$kennel" invoke nope "$tmp/web/dog.jpg" > /dev/null 2> "$tmp/err"
rc=$?
check "invoke missing endpoint" test $rc -eq 1
check "invoke missing endpoint message" grep -q "ValidationError.*Endpoint nope of account" "$tmp/err"

"$kennel" autoscale dogs --min 1 --max 3 --target 1000 --scale-in-cooldown 300 \
  --scale-out-cooldown 30 > "$tmp/as.out"
check "autoscale" grep -q "endpoint/dogs/variant/AllTraffic: 1..3 instances" "$tmp/as.out"
# with a target this high the 2 instances are more than needed: after 15
# clock minutes (15 s here) below 0.9 x target it scales in to 1
for _ in $(seq 1 300); do
  "$kennel" activities dogs > "$tmp/act.txt"
  grep -q "Successful  Setting desired instance count to 1." "$tmp/act.txt" && break
  sleep 0.2
done
check "activities: scale-in to 1" grep -q "Successful  Setting desired instance count to 1." "$tmp/act.txt"
check "activities: cause" grep -q "AlarmLow.*triggered policy kennel-target-tracking" "$tmp/act.txt"

"$kennel" metrics dogs --json > "$tmp/m.json"
check "metrics count the invocations" /usr/bin/python3 -c "
import json
s = json.load(open('$tmp/m.json'))['Variants']['AllTraffic']
assert sum(p['Invocations'] for p in s) == 2, s"
"$kennel" metrics dogs > "$tmp/m.txt"
check "metrics table" grep -q "INVOCATIONS" "$tmp/m.txt"

"$kennel" undeploy dogs > "$tmp/un.out"
check "undeploy" grep -q "endpoint dogs deleted" "$tmp/un.out"
"$kennel" endpoints > "$tmp/eps2.txt"
check "no endpoints left" test "$(wc -l < "$tmp/eps2.txt")" -eq 1

KENNEL_ENDPOINT=http://127.0.0.1:1 "$kennel" endpoints > /dev/null 2> "$tmp/err"
rc=$?
check "unreachable server" test $rc -eq 1
check "unreachable server message" grep -q "cannot reach the kennel server at http://127.0.0.1:1" "$tmp/err"
"$kennel" invoke > /dev/null 2>&1
check "usage error exit 2" test $? -eq 2

echo "$pass passed, $fail failed"
[ "$fail" -ne 0 ] && tail -30 "$tmp/server.err"
[ "$fail" -eq 0 ]
