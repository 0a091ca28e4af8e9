#!/usr/bin/env bash
# Everything hack/lab runs, built or installed once and cached by version:
#   - Debian packages: containerd, runc, CNI plugins, socat, nftables, iptables,
#     conntrack, haproxy, mmdebstrap for the operator's image (installed when missing; needs root);
#   - kubelet and kube-proxy of the control plane's version (hack/build-k8s.sh);
#   - Traefik of the version given as $1, the operator's pinned default (hack/build-traefik.sh);
#   - the lab's own echo backend and pause programs (hack/lab/cmd), keyed by their source.
# Prints NAME=PATH lines on stdout; progress goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
traefik_version="${1:?usage: build-lab.sh TRAEFIK_VERSION}"
cache="${EDGE_OPERATOR_CACHE:-$HOME/.cache/edge-operator}"

declare -A packages=(
  [containerd]=containerd [runc]=runc [/usr/lib/cni/bridge]=containernetworking-plugins
  [socat]=socat [nft]=nftables [iptables]=iptables [conntrack]=conntrack [haproxy]=haproxy
  [mmdebstrap]=mmdebstrap
)
missing=()
for cmd in "${!packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] || missing+=("${packages[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "build-lab: missing Debian packages ${missing[*]}, and only root can install them" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  # -o DPkg::Lock::Timeout waits for another apt instead of failing at once.
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${missing[@]}" >&2
fi

k8s_bin="$(bash "$here/build-k8s.sh" kubelet kube-proxy | tail -n1)"
traefik="$(bash "$here/build-traefik.sh" "$traefik_version" | tail -n1)"

src="$here/lab"
key="$(cat "$src/go.mod" "$src"/cmd/*/*.go | sha256sum | cut -c1-16)"
lab_bin="$cache/lab-$key/bin"
mkdir -p "$cache"
exec 9>"$cache/.build-lab.lock"
flock 9
if [ ! -x "$lab_bin/echo" ] || [ ! -x "$lab_bin/pause" ]; then
  echo "building the lab's echo and pause into $lab_bin" >&2
  mkdir -p "$lab_bin"
  for cmd in echo pause; do
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$lab_bin/$cmd.tmp" "./cmd/$cmd")
    mv "$lab_bin/$cmd.tmp" "$lab_bin/$cmd"
  done
fi
echo "kubelet=$k8s_bin/kubelet"
echo "kube-proxy=$k8s_bin/kube-proxy"
echo "traefik=$traefik"
echo "echo=$lab_bin/echo"
echo "pause=$lab_bin/pause"
