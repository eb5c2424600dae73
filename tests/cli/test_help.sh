#!/usr/bin/env bash
# --help for every command, through the real binary:
#  - `kennel help`, `kennel --help` and `kennel -h` list the commands, exit 0;
#  - for every command `kennel help` lists, `kennel CMD --help` and
#    `kennel help CMD` exit 0, print a usage text naming the command (at
#    least 60 characters, on stdout) and nothing on stderr;
#  - every subcommand a usage text names (`kennel model inspect ...`,
#    `kennel tune results ...`) answers --help the same way;
#  - `kennel` alone and an unknown command exit 2.
set -u
. "$(dirname "$0")/../kn_testlib.sh"

# a daemon is never needed for --help: point clients at a closed port
export KENNEL_ENDPOINT=http://127.0.0.1:9

for form in help --help -h; do
  rc=0
  "$kennel" $form >"$tmp/out" 2>"$tmp/err" || rc=$?
  check "kennel $form exits 0" test "$rc" -eq 0
  check "kennel $form lists commands" grep -q '^commands:' "$tmp/out"
done
"$kennel" help >"$tmp/help"
mapfile -t cmds < <(awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}' "$tmp/help")
check "kennel help lists at least 15 commands" test "${#cmds[@]}" -ge 15

usage_ok() { # usage_ok LABEL WORDS... : "kennel WORDS --help" prints a usage text
  local label=$1
  shift
  local rc=0
  "$kennel" "$@" --help >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
  check "$label: exit 0 (got $rc)" test "$rc" -eq 0
  check "$label: usage on stdout" test "$(wc -c <"$tmp/out")" -ge 60
  check "$label: names 'kennel $*'" grep -qF "kennel $*" "$tmp/out"
  check "$label: nothing on stderr" test ! -s "$tmp/err"
  [ -s "$tmp/err" ] && sed 's/^/  stderr: /' "$tmp/err" | head -3
  return 0
}

for c in "${cmds[@]}"; do
  [ "$c" = help ] && continue
  usage_ok "kennel $c --help" "$c"
  cp "$tmp/out" "$tmp/usage-$c"
  rc=0
  "$kennel" help "$c" >"$tmp/out2" 2>/dev/null || rc=$?
  check "kennel help $c exits 0" test "$rc" -eq 0
  check "kennel help $c prints the same usage" cmp -s "$tmp/usage-$c" "$tmp/out2"
  # subcommands: "kennel CMD WORD ..." lines of the usage, WORD lower-case
  for sub in $(grep -oE "kennel $c [a-z][a-z-]+" "$tmp/usage-$c" | awk '{print $3}' | sort -u); do
    usage_ok "kennel $c $sub --help" "$c" "$sub"
  done
done

rc=0
"$kennel" >/dev/null 2>&1 || rc=$?
check "kennel alone exits 2" test "$rc" -eq 2
rc=0
"$kennel" no-such-command >/dev/null 2>"$tmp/err" || rc=$?
check "unknown command exits 2" test "$rc" -eq 2
check "unknown command named" grep -q "no-such-command" "$tmp/err"

kn_done
