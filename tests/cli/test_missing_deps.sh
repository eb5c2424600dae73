#!/usr/bin/env bash
# A first build on a machine that lacks Debian packages: the configure step
# and scripts/install-deps.sh each say which packages are missing and how to
# install them, in one message, and fail.
#   - cmake with no pkg-config module to be found (PKG_CONFIG_LIBDIR empty):
#     one error naming every package the build needs from pkg-config;
#   - install-deps.sh with a package missing and apt-get failing (no network):
#     exit 1 and a line with the apt-get command to run by hand.
set -u
src=${KN_SOURCE_DIR:?KN_SOURCE_DIR not set}
. "$(dirname "$0")/../kn_testlib.sh"
has() { grep -qF -- "$2" "$1"; }

mkdir "$tmp/empty-pc"
PKG_CONFIG_LIBDIR=$tmp/empty-pc PKG_CONFIG_PATH= cmake -S "$src" -B "$tmp/b" > "$tmp/cmake.out" 2>&1
check "cmake: configure fails" test $? -ne 0
# CMake folds a long message over lines: read it as one
tr -s ' \n' '  ' < "$tmp/cmake.out" > "$tmp/cmake.flat"
for deb in libpng-dev libturbojpeg0-dev libjansson-dev libarchive-dev libssl-dev \
  libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev libpcre2-dev libcairo2-dev; do
  check "cmake: names $deb" has "$tmp/cmake.flat" "$deb"
done
check "cmake: says what to do" has "$tmp/cmake.flat" "Run scripts/install-deps.sh (or: sudo apt-get install libpng-dev"
check "cmake: one message, no pkg-config noise" test "$(grep -c "required by 'virtual:world'" "$tmp/cmake.out")" -eq 0

# install-deps.sh: dpkg-query says one package is missing; apt-get fails
mkdir "$tmp/bin"
cat > "$tmp/bin/dpkg-query" << 'SH'
#!/bin/sh
# every package installed but wrk
for a; do last=$a; done
[ "$last" = wrk ] && exit 1
echo "install ok installed"
SH
printf '#!/bin/sh\necho "E: Could not resolve deb.debian.org" >&2\nexit 100\n' > "$tmp/bin/apt-get"
printf '#!/bin/sh\nexec "$@"\n' > "$tmp/bin/sudo"
chmod +x "$tmp/bin/"*
PATH=$tmp/bin:$PATH bash "$src/scripts/install-deps.sh" > "$tmp/deps.out" 2>&1
check "install-deps: exit 1" test $? -eq 1
check "install-deps: names what it installs" has "$tmp/deps.out" "install-deps: installing wrk"
check "install-deps: says what to do" has "$tmp/deps.out" "could not install wrk (apt-get update failed; is the network to the Debian mirror up"
check "install-deps: the command to run" has "$tmp/deps.out" "apt-get install wrk"
if [ $fail -ne 0 ]; then
  echo "--- cmake"; tail -20 "$tmp/cmake.out"; echo "--- install-deps"; cat "$tmp/deps.out"
fi
kn_done
