#!/usr/bin/env bash
# Installs the Debian packages kennel needs to build, test and benchmark.
# Safe to run again: it only installs what is missing. Uses sudo when not root.
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libdnnl-dev libopenblas-dev
  libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev
  libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev
  libssl-dev libarchive-dev libcmocka-dev libpcre2-dev libcairo2-dev
  libopenmpi-dev openmpi-bin
)
test_pkgs=(
  python3 python3-numpy python3-torch python3-torchvision python3-pil
  awscli python3-boto3 wrk chromium curl
)
# The build installs the web console's browser libraries (and the browser
# tests' driver) with npm; machines that have no Node.js get Debian's.
if ! command -v npm > /dev/null; then
  build_pkgs+=(nodejs npm)
fi
pkgs=("${build_pkgs[@]}")
if [ "${1:-}" != "--build-only" ]; then
  pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} Debian packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo > /dev/null; then
    echo "install-deps: missing Debian packages: ${missing[*]}; not root and no sudo: as root," \
      "run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
failed() {
  echo "install-deps: could not install ${missing[*]} ($1; is the network to the Debian" \
    "mirror up, and apt's sources right?). Install them by hand:" \
    "${SUDO:+sudo }apt-get install ${missing[*]}" >&2
  exit 1
}
$SUDO apt-get update -q || failed "apt-get update failed"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
  || failed "apt-get install failed"
