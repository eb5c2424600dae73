# What the shell tests share; source it from a test with
#   . "$(dirname "$0")/../kn_testlib.sh"
# It sets kennel (from KN_BIN), makes $tmp (removed at exit, with the
# server started by kn_start_server stopped first) and keeps the check tally.
kennel=${KN_BIN:?KN_BIN not set}
tmp=$(mktemp -d)
server_pid=
pass=0
fail=0
# kn_cleanup_more: a test's own cleanup, run first at exit (define it to use it)
kn_cleanup() {
  if declare -F kn_cleanup_more > /dev/null; then kn_cleanup_more; fi
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap kn_cleanup EXIT

check() { # check NAME COMMAND...
  local name=$1
  shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}

# kn_done: the tally line; its status is the test's (last command of a test)
kn_done() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}

# kn_need_aws / kn_need_pil: exit 77 (skip) with the reason when absent
kn_need_aws() {
  if [ ! -x /usr/bin/aws ]; then
    echo "skip: /usr/bin/aws (Debian awscli) is not installed"
    exit 77
  fi
}
kn_need_pil() {
  if ! /usr/bin/python3 -c 'import PIL' 2>/dev/null; then
    echo "skip: /usr/bin/python3 has no PIL (python3-pil) to make a JPEG"
    exit 77
  fi
}

# kn_client_env KEY SECRET: the clients sign with KEY/SECRET and nothing from
# the user's AWS setup; the daemon seeds its administrator with the same key.
kn_client_env() {
  export AWS_ACCESS_KEY_ID=$1 AWS_SECRET_ACCESS_KEY=$2
  export KENNEL_ROOT_ACCESS_KEY_ID=$1 KENNEL_ROOT_SECRET_ACCESS_KEY=$2
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=
  unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
}

# kn_start_server [SERVER ARGS...]: kennel server on $tmp/data on a free
# port; sets server_pid, port (empty if it did not get ready) and url.
kn_start_server() {
  rm -f "$tmp/ready"
  "$kennel" server --data-dir "$tmp/data" --port 0 --ready-file "$tmp/ready" "$@" \
    > /dev/null 2>> "$tmp/server.err" &
  server_pid=$!
  for _ in $(seq 1 200); do
    [ -s "$tmp/ready" ] && break
    sleep 0.05
  done
  port=$(cut -d: -f2 "$tmp/ready" 2>/dev/null)
  url="http://$(cat "$tmp/ready" 2>/dev/null)"
}
