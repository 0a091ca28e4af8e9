#!/usr/bin/env bash
# `make demo`: start the lab of real nodes (or, where it cannot run, the local control
# plane with kwok nodes), install the Helm chart (in the lab with its operator pod, from
# the image `make image` builds; on kwok nodes, which run no containers, the operator
# runs beside the cluster with the chart's ServiceAccount), apply examples/basic.yaml and
# show the result. In the lab, finish with a real request from a client namespace
# through the load balancer and the edge node to the echo backend, which says what
# client address it saw. `make lab-down` (or `make cluster-down`) stops everything.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
lab_dir="${LAB_DIR:-$HOME/.cache/edge-operator/lab}"
# The example keeps the default drain timing: pods count as available after 40 s.
timeout="${DEMO_TIMEOUT:-180s}"

if reason="$(python3 "$repo/hack/lab" preflight 2>&1)"; then
  mode=lab
  python3 "$repo/hack/lab" up --dir "$lab_dir" | tail -n +2
  dir="$lab_dir/cluster"
  stop="make lab-down"
  probe=on
else
  mode=kwok
  echo "make demo: no lab of real nodes on this machine (${reason#lab: }); running on kwok nodes instead"
  dir="${CLUSTER_DIR:-$HOME/.cache/edge-operator/cluster}"
  python3 "$repo/hack/localcluster.py" up --dir "$dir" >/dev/null
  stop="make cluster-down"
  # kwok nodes run no kube-proxy, and their addresses are not on this machine.
  probe=off
fi
eval "$(python3 "$repo/hack/localcluster.py" env --dir "$dir")"

# The release namespace enforces Pod Security "restricted", as it should in production.
kubectl create namespace edge-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace edge-system --overwrite pod-security.kubernetes.io/enforce=restricted \
  pod-security.kubernetes.io/enforce-version=latest >/dev/null

if [ "$mode" = lab ]; then
  # Install the chart the way users do, operator pod included: its image (`make image`,
  # hack/image.py) is in every node's containerd under the chart's default reference,
  # so the only changes are the pull policy (there is no registry) and the node pool.
  helm upgrade --install edge-operator "$repo/deploy/helm/edge-operator" \
    --namespace edge-system --set image.pullPolicy=Never --set nodeSelector.nodepool=general \
    --wait --timeout 3m >/dev/null
  operator_log="kubectl -n edge-system logs deploy/edge-operator (the lab's kubelet logs are in $lab_dir/nodes/*/pod-logs)"
else
  # kwok nodes run no containers: the chart without its operator pod (CRD, provider
  # ClusterRoles, the operator's RBAC and node policy), and the operator out of
  # cluster with the chart's ServiceAccount and nothing more (a token from the
  # TokenRequest API), as part of the local cluster: stopping it stops this.
  helm upgrade --install edge-operator "$repo/deploy/helm/edge-operator" \
    --namespace edge-system --set replicaCount=0 --wait >/dev/null
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
    "$repo/.venv/bin/python" -m edge_operator run --kubeconfig "$sa_kubeconfig" \
    --probe-edge-nodes="$probe"
  operator_log="$dir/logs/edge-operator.log"
fi
kubectl wait --for=condition=Established crd/edgegateways.edgeoperator.dev --timeout=60s >/dev/null

kubectl apply -f "$repo/examples/basic.yaml"
if [ "$mode" = kwok ]; then
  # No load balancer here: once the Service exists, publish an address the way a
  # cloud's load-balancer controller would (192.0.2.0/24 is for documentation).
  for _ in $(seq 60); do
    kubectl -n edge-system get service public >/dev/null 2>&1 && break
    sleep 1
  done
  kubectl -n edge-system patch service public --subresource=status --type=merge \
    -p '{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"}]}}}' >/dev/null
else
  # Route every path of the gateway's IngressClass to the lab's echo backend.
  kubectl -n lab create ingress echo --class=public --rule='/*=echo:80' \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
fi
if ! kubectl wait egw/public --for=condition=Ready --timeout="$timeout"; then
  echo "egw/public is not Ready after $timeout; see $operator_log"
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

if [ "$mode" = lab ]; then
  echo
  python3 "$repo/hack/lab" status --dir "$lab_dir" | tail -n +2
  address="$(kubectl -n edge-system get service public -o jsonpath='{.status.loadBalancer.ingress[0].ip}')"
  echo
  echo "A request from client-1 (198.51.100.10) to the load balancer at $address:"
  # The load balancer starts sending to a node after its health checks pass
  # (3 x 10 s by default), and Traefik loads its routes just after it reports ready.
  answer=""
  for _ in $(seq 90); do
    if reply="$(python3 "$repo/hack/lab" curl --dir "$lab_dir" --client client-1 \
      --url "http://$address/" 2>/dev/null)"; then
      answer="$reply"
      break
    fi
    sleep 1
  done
  while IFS= read -r line; do echo "  $line"; done <<<"${answer:-no answer after 90 s; see $lab_dir/logs}"
fi
cat <<MSG

To use this cluster:  eval "\$(python3 hack/localcluster.py env --dir $dir)"
To stop everything:   $stop
MSG
if [ "$mode" = lab ]; then
  echo "Send your own:       python3 hack/lab curl --client client-2 --url http://$address/"
  # The last line: what the backend saw of the demo's request.
  if [ -z "${answer:-}" ]; then
    exit 1
  fi
  echo "${answer%%$'\n'*}"
fi
