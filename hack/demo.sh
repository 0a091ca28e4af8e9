#!/usr/bin/env bash
# `make demo`: on the local control plane (already up), install the Helm chart, start
# the operator in the background with the chart's ServiceAccount, apply
# examples/basic.yaml, play the cloud's load balancer, and show the result.
# The operator keeps running; `make cluster-down` stops it with the cluster.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${CLUSTER_DIR:-$HOME/.cache/edge-operator/cluster}"
eval "$(python3 "$repo/hack/localcluster.py" env --dir "$dir")"
# The example keeps the default drain timing: pods count as available after 40 s.
timeout="${DEMO_TIMEOUT:-120s}"

# Install the chart the way users do, without its operator pod (there is no image
# registry here): CRD, provider ClusterRoles, the operator's RBAC and node policy.
helm upgrade --install edge-operator "$repo/deploy/helm/edge-operator" \
  --namespace edge-system --create-namespace --set replicaCount=0 --wait >/dev/null
kubectl wait --for=condition=Established crd/edgegateways.edgeoperator.dev --timeout=60s

# The operator runs out of cluster with the chart's ServiceAccount and nothing more (a
# token from the TokenRequest API), as part of the local cluster: cluster-down stops it.
sa_kubeconfig="$dir/kubeconfigs/edge-operator-sa.kubeconfig"
server="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
KUBECONFIG="$sa_kubeconfig" kubectl config set-cluster local --server="$server" \
  --certificate-authority="$dir/pki/ca.crt" >/dev/null
KUBECONFIG="$sa_kubeconfig" kubectl config set-credentials edge-operator \
  --token="$(kubectl -n edge-system create token edge-operator --duration=24h)" >/dev/null
KUBECONFIG="$sa_kubeconfig" kubectl config set-context local --cluster=local \
  --user=edge-operator >/dev/null
KUBECONFIG="$sa_kubeconfig" kubectl config use-context local >/dev/null
chmod 600 "$sa_kubeconfig"
python3 "$repo/hack/localcluster.py" spawn --dir "$dir" --name edge-operator -- \
  "$repo/.venv/bin/python" -m edge_operator run --kubeconfig "$sa_kubeconfig"

kubectl apply -f "$repo/examples/basic.yaml"
# No cloud here: once the Service exists, publish an address the way a cloud's
# load-balancer controller would (192.0.2.0/24 is reserved for documentation).
for _ in $(seq 60); do
  kubectl -n edge-system get service public >/dev/null 2>&1 && break
  sleep 1
done
kubectl -n edge-system patch service public --subresource=status --type=merge \
  -p '{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"}]}}}' >/dev/null
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
kubectl -n edge-system get deployment,pods,service -o wide
echo
kubectl describe egw public | sed -n '/^Status:/,$p'
cat <<MSG

To use this cluster:  eval "\$(python3 hack/localcluster.py env --dir $dir)"
To stop everything:   make cluster-down
MSG
