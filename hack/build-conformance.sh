#!/usr/bin/env bash
# Usage: hack/build-conformance.sh GATEWAY_API_VERSION COREDNS_VERSION
#
# Builds what the Gateway API conformance suite runs, from the Go module proxy, into a
# cache keyed by version, and prints NAME=PATH lines on stdout (progress on stderr):
#   conformance  the suite (`go test -c` of sigs.k8s.io/gateway-api/conformance)
#   echo-basic   its echo backend (sigs.k8s.io/gateway-api/conformance/echo-basic)
#   coredns      the UDP backend its base manifests run (github.com/coredns/coredns)
#   source       the suite's module in the Go module cache (its manifests name the images)
# A second run finds them and returns at once. Cold: about 3 min on 2 cores.
set -euo pipefail

if [ "$#" -ne 2 ] || [[ "$1" != v[0-9]* ]] || [[ "$2" != v[0-9]* ]]; then
  echo "usage: $0 GATEWAY_API_VERSION COREDNS_VERSION   (e.g. v1.6.1 v1.12.2)" >&2
  exit 2
fi
version="$1"
coredns_version="$2"
cache="${EDGE_OPERATOR_CACHE:-$HOME/.cache/edge-operator}"
bin_dir="$cache/conformance-$version/bin"
coredns_dir="$cache/coredns-$coredns_version/bin"
mod=sigs.k8s.io/gateway-api/conformance

source_dir() {
  local dir
  dir="$(go env GOMODCACHE)/$mod@$version"
  if [ ! -d "$dir" ]; then # a cleaned module cache: fetch the source alone
    dir="$(cd "$(mktemp -d)" && printf 'module m\n\ngo 1.24\n' >go.mod &&
      go mod download -json "$mod@$version" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')"
  fi
  echo "$dir"
}
report() {
  echo "source=$(source_dir)"
  echo "conformance=$bin_dir/conformance.test"
  echo "echo-basic=$bin_dir/echo-basic"
  echo "coredns=$coredns_dir/coredns"
}
built() { [ -x "$bin_dir/conformance.test" ] && [ -x "$bin_dir/echo-basic" ] && [ -x "$coredns_dir/coredns" ]; }

if built; then
  report
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.conformance-$version.lock"
if ! flock -n 9; then
  echo "waiting for another build of the conformance suite (lock $cache/.conformance-$version.lock)" >&2
  flock 9
fi
if built; then # built by whoever held the lock
  report
  exit 0
fi

work="$cache/build/conformance-$version"
rm -rf "$work"
mkdir -p "$work" "$bin_dir" "$coredns_dir"
cd "$work"
# A throw-away module that requires the suite at VERSION: `go test -c` builds a test
# binary only from a package of the main module's build list. The suite's go.mod
# requires sigs.k8s.io/gateway-api v0.0.0 replaced by its parent directory (one
# repository), which no module proxy serves: the API module is required at VERSION too.
printf 'module edge-operator.local/conformance-build\n\ngo 1.24\n\nrequire (\n\t%s %s\n\t%s %s\n)\n' \
  "$mod" "$version" sigs.k8s.io/gateway-api "$version" >go.mod
printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "%s"\n\t_ "%s/echo-basic"\n)\n' \
  "$mod" "$mod" >tools.go
echo "building the Gateway API conformance suite $version into $bin_dir" >&2
GOFLAGS=-mod=mod go mod tidy >&2
if [ ! -x "$bin_dir/conformance.test" ]; then
  echo "  go test -c $mod" >&2
  CGO_ENABLED=0 go test -c -trimpath -o "$bin_dir/conformance.test.tmp" "$mod"
  mv "$bin_dir/conformance.test.tmp" "$bin_dir/conformance.test"
fi
if [ ! -x "$bin_dir/echo-basic" ]; then
  echo "  go build $mod/echo-basic" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin_dir/echo-basic.tmp" "$mod/echo-basic"
  mv "$bin_dir/echo-basic.tmp" "$bin_dir/echo-basic"
fi
if [ ! -x "$coredns_dir/coredns" ]; then
  echo "  go install github.com/coredns/coredns@$coredns_version" >&2
  # coredns's go.mod has no replace directives, so `go install module@version` builds it.
  GOBIN="$coredns_dir/tmp" CGO_ENABLED=0 go install -trimpath -ldflags='-s -w' \
    "github.com/coredns/coredns@$coredns_version"
  mv "$coredns_dir/tmp/coredns" "$coredns_dir/coredns"
  rmdir "$coredns_dir/tmp"
fi
rm -rf "$work"
report
