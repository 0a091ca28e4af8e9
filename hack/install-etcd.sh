#!/usr/bin/env bash
# Makes sure an etcd binary is on PATH for the local control plane: Debian's
# etcd-server (3.4.x; a newer kube-apiserver only logs that it lacks
# RequestWatchProgress). Needs root, as on CI and the developer machines.
set -euo pipefail
if command -v etcd >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "etcd is not installed: run 'sudo apt-get install etcd-server' (Debian/Ubuntu)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the package from starting its own etcd service on install.
apt-get install -y -qq etcd-server >/dev/null
command -v etcd >/dev/null
