#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubectl of
# K8S_VERSION from the Go module proxy, and etcd, kwok and helm (and checkov from PyPI),
# into a cache keyed by version. Arguments name more commands of k8s.io/kubernetes/cmd
# to build alongside (hack/lab adds kubelet and kube-proxy).
# A second run finds the binaries and returns at once; a lock keeps two runs (two
# checkouts, CI and a developer) from building into the cache at the same time.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces ~30 staging
# modules with local paths. A throw-away wrapper module requires it and replaces
# every staging module with its published v0.X.Y twin instead.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
cache="${EDGE_OPERATOR_CACHE:-$HOME/.cache/edge-operator}"
bin="$cache/k8s-$K8S_VERSION/bin"
kwok_bin="$cache/kwok-$KWOK_VERSION/bin"
k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl "$@")
mkdir -p "$cache"
exec 9>"$cache/.build-k8s.lock"
flock 9

missing=()
for c in "${k8s_cmds[@]}"; do [ -x "$bin/$c" ] || missing+=("$c"); done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "building ${missing[*]} $K8S_VERSION into $bin (cold: about 6 min on 2 cores)" >&2
  work="$cache/build/k8s-$K8S_VERSION"
  mkdir -p "$work" "$bin"
  cd "$work"
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
  upstream_mod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
  staging_version="v0.${K8S_VERSION#v1.}"
  {
    echo "module edge-operator.local/k8s-build"
    echo
    echo "go $(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -nE 's#^\s*(k8s\.io/[a-z0-9-]+) => \./staging/.*#\1#p' "$upstream_mod" |
      while read -r m; do echo "	$m => $m $staging_version"; done
    echo ")"
  } > go.mod
  echo 'package build' > build.go
  # Stamp the version the way the upstream release build does; without it the
  # binaries report v0.0.0-master and kubectl refuses to parse the server version.
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for c in "${missing[@]}"; do
    echo "  go build $c" >&2
    GOFLAGS=-mod=mod go build -tags providerless -trimpath -ldflags="$ldflags" \
      -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$bin/$c.tmp" "$bin/$c"
  done
fi

etcd_bin="$cache/etcd-$ETCD_VERSION/bin"
if [ ! -x "$etcd_bin/etcd" ]; then
  # Built, not Debian's etcd-server 3.4: that lacks RequestWatchProgress, so the API
  # server refuses watch-list streams and kwok's informers fall behind by up to a
  # minute. server/v3 is etcd's main package; its go.mod replaces its sibling
  # modules, so (as for Kubernetes) a wrapper module builds it at one version.
  echo "building etcd $ETCD_VERSION into $etcd_bin" >&2
  work="$cache/build/etcd-$ETCD_VERSION"
  mkdir -p "$work" "$etcd_bin"
  printf 'module edgeoperator.local/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$ETCD_VERSION" >"$work/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$work/tools.go"
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 &&
    go build -trimpath -ldflags='-s -w' -o "$etcd_bin/etcd" go.etcd.io/etcd/server/v3)
fi

if [ ! -x "$kwok_bin/kwok" ]; then
  echo "building kwok $KWOK_VERSION into $kwok_bin" >&2
  mkdir -p "$kwok_bin"
  GOBIN="$kwok_bin" go install -trimpath -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi
helm_bin="$cache/helm-$HELM_VERSION/bin"
if [ ! -x "$helm_bin/helm" ]; then
  # helm's go.mod has no replace directives: a plain `go install` (about 2 min cold).
  echo "building helm $HELM_VERSION into $helm_bin" >&2
  mkdir -p "$helm_bin"
  GOBIN="$helm_bin" go install -trimpath -ldflags='-s -w' "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
checkov_dir="$cache/checkov-$CHECKOV_VERSION"
if [ ! -e "$checkov_dir/.installed" ]; then
  # checkov pins many packages of its own, so it gets a virtualenv of its own
  # (about 1 min cold), kept with the other tools rather than in each checkout.
  # A virtualenv cannot be moved, hence the marker file for a finished install.
  echo "installing checkov $CHECKOV_VERSION into $checkov_dir" >&2
  rm -rf "$checkov_dir"
  python3 -m venv "$checkov_dir"
  "$checkov_dir/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"
  touch "$checkov_dir/.installed"
fi
echo "$bin"
