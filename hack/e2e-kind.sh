#!/usr/bin/env bash
# The e2e tier on a kind cluster, for machines with a Docker engine.
# kind provides real kubelets; cloud-provider-kind gives LoadBalancer Services
# real addresses (the e2e Services use a loadBalancerClass of their own, so the
# tests' stand-in LB controller and cloud-provider-kind never fight); kwok, run
# out of cluster, keeps the tests' fake nodes Ready.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
. "$repo/hack/versions.env"
if ! docker info >/dev/null 2>&1; then
  echo "make e2e-kind needs a running Docker engine (none here); use 'make test' instead" >&2
  exit 1
fi
cache="${EDGE_OPERATOR_CACHE:-$HOME/.cache/edge-operator}"
tools="$cache/kind-$KIND_VERSION/bin"
mkdir -p "$tools"
[ -x "$tools/kind" ] || GOBIN="$tools" go install "sigs.k8s.io/kind@$KIND_VERSION"
[ -x "$tools/cloud-provider-kind" ] || GOBIN="$tools" go install sigs.k8s.io/cloud-provider-kind@latest
bash "$repo/hack/build-k8s.sh" >/dev/null
kwok="$cache/kwok-$KWOK_VERSION/bin/kwok"

work="$(mktemp -d)"
kubeconfig="$work/kubeconfig"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$tools/kind" delete cluster --name edge-operator-e2e || true
  rm -rf "$work"
}
trap cleanup EXIT

"$tools/kind" create cluster --config "$repo/hack/kind.yaml" --kubeconfig "$kubeconfig" --wait 120s
"$tools/cloud-provider-kind" >"$work/cloud-provider-kind.log" 2>&1 &
pids+=("$!")
"$kwok" --kubeconfig "$kubeconfig" --manage-all-nodes=false --node-lease-duration-seconds=10 \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake >"$work/kwok.log" 2>&1 &
pids+=("$!")
"$repo/.venv/bin/pytest" "$repo/tests" --kubeconfig "$kubeconfig" "$@"
