#!/usr/bin/env bash
# `make demo`: on the local control plane (already up), install the CRD, start the
# operator in the background, apply examples/basic.yaml and show the result.
# The operator keeps running; `make cluster-down` stops it with the cluster.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${CLUSTER_DIR:-$HOME/.cache/edge-operator/cluster}"
eval "$(python3 "$repo/hack/localcluster.py" env --dir "$dir")"
timeout="${DEMO_TIMEOUT:-60s}"

kubectl apply --server-side --field-manager=edge-operator-demo -f "$repo/crds/"
kubectl wait --for=condition=Established crd/edgegateways.edgeoperator.dev --timeout=60s

# The operator runs out of cluster as part of the local cluster: cluster-down stops it.
python3 "$repo/hack/localcluster.py" spawn --dir "$dir" --name edge-operator -- \
  "$repo/.venv/bin/python" -m edge_operator run --kubeconfig "$dir/kubeconfig"

kubectl apply -f "$repo/examples/basic.yaml"
if ! kubectl wait egw/public --for=condition=Ready --timeout="$timeout"; then
  echo "egw/public is not Ready after $timeout; see $dir/logs/edge-operator.log"
fi
echo
kubectl get egw
echo
kubectl get nodes -L nodepool,topology.kubernetes.io/zone,edgeoperator.dev/gateway
echo
kubectl get nodes -o custom-columns='NAME:.metadata.name,TAINTS:.spec.taints[*].key'
echo
kubectl describe egw public | sed -n '/^Status:/,$p'
cat <<MSG

To use this cluster:  eval "\$(python3 hack/localcluster.py env --dir $dir)"
To stop everything:   make cluster-down
MSG
