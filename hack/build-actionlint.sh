#!/usr/bin/env bash
# Builds actionlint (the linter of .github/workflows) of ACTIONLINT_VERSION from the Go
# module proxy into a cache keyed by version, and prints the directory it is in.
# A second run finds the binary and returns at once; a lock keeps two runs (two
# checkouts, CI and a developer) from building into the cache at the same time.
# actionlint's go.mod has no replace directives: a plain `go install` (about 30 s cold on 2 cores).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
cache="${EDGE_OPERATOR_CACHE:-$HOME/.cache/edge-operator}"
bin="$cache/actionlint-$ACTIONLINT_VERSION/bin"
mkdir -p "$cache"
exec 9>"$cache/.build-actionlint.lock"
flock 9

if [ ! -x "$bin/actionlint" ]; then
  echo "building actionlint $ACTIONLINT_VERSION into $bin" >&2
  mkdir -p "$bin"
  # Into a temporary GOBIN first: an interrupted build leaves no half-written binary
  # that the check above would take for a finished one.
  tmp="$(mktemp -d "$cache/.actionlint-XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" go install -trimpath -ldflags='-s -w' \
    "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  mv "$tmp/actionlint" "$bin/actionlint"
fi
echo "$bin"
