#!/usr/bin/env bash
# Function platform bench: cold start (create -> first response) of the C
# runtime, warm invoke overhead vs calling the handler directly, and warm
# invokes/s under load. Usage: bench/fn_bench.sh [BUILD_DIR] [fn_bench args]
# (default build/, optimised). Prints fn_bench's JSON lines; see fn_bench.c.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
shift || true
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/empty"
cp "$build/functions/empty/bootstrap" "$tmp/empty/bootstrap"
"$build/kennel" function package "$tmp/empty" --out "$tmp/empty.zip" > /dev/null
"$build/bench/fn_bench" "$tmp/empty.zip" "$@"
