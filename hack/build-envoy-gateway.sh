#!/usr/bin/env bash
# Usage: hack/build-envoy-gateway.sh VERSION   (e.g. v1.9.1)
#
# Builds the Envoy Gateway control plane (github.com/envoyproxy/gateway/cmd/envoy-gateway,
# the binary of the envoyproxy/gateway image; also the proxy pods' shutdown-manager and
# the certgen Job) from the Go module proxy into a cache keyed by version, and prints
# NAME=PATH lines on stdout (progress on stderr):
#   envoy-gateway  the binary
#   source         the module in the Go module cache (Helm chart, CRDs, API types)
# A second run finds the binary and returns at once. Cold: about 6 min and 2 GB of
# RAM on 2 cores (v1.9.1, Go 1.26.8, empty build cache); the binary is 190 MB.
#
# No workaround is needed for v1.9.1: its go.mod has no replace or exclude directives,
# the proxy serves every module the build needs, and it asks for go 1.26.7, which the
# installed Go (1.26.8) satisfies; so `go install module/cmd/envoy-gateway@VERSION`
# builds it, unlike Traefik (see hack/build-traefik.sh). Should a later VERSION ask for
# a newer Go, go fails with "requires go >= ... (GOTOOLCHAIN=local)": the only approved
# way then is `export GOTOOLCHAIN=go1.27.3` before running this (the proxy serves that
# toolchain); do not install another Go.
#
# The version is stamped as upstream's tools/make/golang.mk does
# (-X .../internal/cmd/version.envoyGatewayVersion); the git commit stays empty, the
# module zip has none. The Envoy and Gateway API versions it reports come from the
# source (api/v1alpha1 DefaultEnvoyProxyImage, the build list).
set -euo pipefail

if [ "$#" -ne 1 ] || [[ "$1" != v[0-9]* ]]; then
  echo "usage: $0 VERSION   (e.g. v1.9.1)" >&2
  exit 2
fi
version="$1"
cache="${EDGE_OPERATOR_CACHE:-$HOME/.cache/edge-operator}"
bin_dir="$cache/envoy-gateway-$version/bin"
bin="$bin_dir/envoy-gateway"
mod=github.com/envoyproxy/gateway

source_dir() {
  local dir
  dir="$(go env GOMODCACHE)/$mod@$version"
  if [ ! -d "$dir" ]; then # a cleaned module cache: fetch the source alone
    dir="$(cd "$(mktemp -d)" && printf 'module m\n\ngo 1.24\n' >go.mod &&
      go mod download -json "$mod@$version" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')"
  fi
  [ -d "$dir" ] || {
    echo "could not fetch $mod@$version" >&2
    return 1
  }
  echo "$dir"
}
report() {
  echo "envoy-gateway=$bin"
  echo "source=$(source_dir)"
}

if [ -x "$bin" ]; then
  report
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.envoy-gateway-$version.lock"
if ! flock -n 9; then
  echo "waiting for another build of envoy-gateway $version (lock $cache/.envoy-gateway-$version.lock)" >&2
  flock 9
fi
if [ -x "$bin" ]; then # built by whoever held the lock
  report
  exit 0
fi

echo "building envoy-gateway $version into $bin_dir (cold: about 6 min on 2 cores)" >&2
tmp_bin="$bin_dir/tmp"
rm -rf "$tmp_bin"
mkdir -p "$tmp_bin"
echo "  go install $mod/cmd/envoy-gateway@$version" >&2
GOBIN="$tmp_bin" CGO_ENABLED=0 go install -trimpath \
  -ldflags="-s -w -X $mod/internal/cmd/version.envoyGatewayVersion=$version" \
  "$mod/cmd/envoy-gateway@$version"

out="$("$tmp_bin/envoy-gateway" version)"
if ! grep -qx "ENVOY_GATEWAY_VERSION: $version" <<<"$out"; then
  echo "$tmp_bin/envoy-gateway version does not report $version:" >&2
  echo "$out" >&2
  exit 1
fi
while IFS= read -r line; do echo "  | $line"; done <<<"$out" >&2
mv "$tmp_bin/envoy-gateway" "$bin"
rmdir "$tmp_bin"
echo "built $bin" >&2
report
