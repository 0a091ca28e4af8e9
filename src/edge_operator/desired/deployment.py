"""The controller Deployment: one pod per edge node that survives rollouts.

Under ``externalTrafficPolicy: Local`` a node receives load-balancer traffic only
while it has a ready local endpoint, so a rollout must never leave an edge node
without one. The recipe (after openshift/cluster-ingress-operator's
``deployment.go``, made stricter):

- the operator stamps a hash of the pod template as a label, because the
  ReplicaSet's pod-template-hash is not known when the Deployment is written;
- required anti-affinity on the hostname among pods with the *same* hash: at most
  one pod of a revision per node;
- preferred affinity to pods with a *different* hash: a new pod lands beside an
  old one, and the ReplicaSet controller then removes the old pod that shares its
  node with a new one (it deletes co-located pods first);
- ``maxUnavailable: 0``: an old pod goes only after its new neighbour is
  Available, that is ready for ``minReadySeconds``;
- ``minReadySeconds`` and the preStop delay are derived from the load balancer's
  health check, so the load balancer has seen a new pod healthy before it gets
  traffic and has seen a leaving node unhealthy before its pod stops serving; the
  preStop delay adds the provider's keep-alive limit, so the leaving pod has closed
  every busy keep-alive connection with a response that says so before SIGTERM;
- ``terminationGracePeriodSeconds`` is the preStop delay plus ``rollout.shutdownGraceSeconds``,
  the time the controller then has to finish open connections and exit.
"""

from __future__ import annotations

import math
from typing import Any

from edge_operator import api, names
from edge_operator.desired.objects import Owner, digest, labels, metadata
from edge_operator.desired.providers import Rendered

CONTAINER = "controller"
#: Old ReplicaSets kept for `kubectl rollout undo`.
REVISION_HISTORY = 3
#: Readiness and startup probes run this often, so a pod is Ready soon after it can serve
#: (liveness and readiness probes wait until the startup probe has passed once).
FAST_PROBE_SECONDS = 2
#: The volume of the provider's ConfigMap, where the provider reads it from a file.
CONFIG_VOLUME = "config"


def drain_seconds(check: api.LoadBalancerHealthCheck) -> int:
    """Seconds the load balancer needs to notice a node's change of health.

    Up to one interval passes before the first check after the change, and it
    then takes ``unhealthyThreshold`` checks in a row to act on it.
    """
    return check.interval_seconds * (check.unhealthy_threshold + 1)


def pre_stop_seconds(rollout: api.Rollout) -> int:
    """How long a leaving pod keeps serving: until the load balancer has stopped sending
    new connections to its node (``drain_seconds``), then until every keep-alive
    connection it still holds is older than the provider's keep-alive limit, so each
    has been closed by a response that says so before SIGTERM."""
    return drain_seconds(rollout.load_balancer_health_check) + rollout.keep_alive_max_seconds


def selector(owner: Owner) -> dict[str, str]:
    """Labels that select the gateway's controller pods (never change: immutable)."""
    return {names.GATEWAY_LABEL: owner.name, names.COMPONENT_LABEL: names.COMPONENT_CONTROLLER}


def mesh_metadata(
    spec: api.EdgeGatewaySpec, rendered: Rendered
) -> tuple[dict[str, str], dict[str, str]]:
    """Pod labels and annotations that put the controller into the service mesh.

    Only outbound (edge -> worker) traffic goes through the mesh: inbound traffic
    comes from the load balancer, which speaks plain TCP to the controller.
    """
    ports = ",".join(
        str(p) for p in (rendered.ports["http"], rendered.ports["https"], *rendered.listener_ports)
    )
    if spec.mesh.provider == "Istio":
        return (
            {"sidecar.istio.io/inject": "true"},
            {"traffic.sidecar.istio.io/includeInboundPorts": ""},
        )
    if spec.mesh.provider == "Linkerd":
        return {}, {"linkerd.io/inject": "enabled", "config.linkerd.io/skip-inbound-ports": ports}
    return {}, {}


def tolerations(spec: api.EdgeGatewaySpec) -> list[dict[str, Any]]:
    """What lets a pod run on the gateway's tainted edge nodes."""
    taint = spec.nodes.taint
    if taint.effect == "None":
        return []
    return [
        {
            "key": spec.nodes.taint_key,
            "operator": "Equal",
            "value": taint.value,
            "effect": taint.effect,
        }
    ]


def node_selector(owner: Owner, spec: api.EdgeGatewaySpec) -> dict[str, str]:
    """The gateway's edge nodes: its role label and its ownership label."""
    return {spec.nodes.role_label: "", names.GATEWAY_LABEL: owner.name}


def pod_template(owner: Owner, spec: api.EdgeGatewaySpec, rendered: Rendered) -> dict[str, Any]:
    """The pod template without its hash label."""
    provider = spec.controller.provider
    pre_stop = pre_stop_seconds(spec.rollout)
    mesh_labels, mesh_annotations = mesh_metadata(spec, rendered)
    resources = spec.controller.resources.model_dump(exclude_defaults=True)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": rendered.image,
        "args": list(rendered.args),
        "ports": [
            {"name": name, "containerPort": port, "protocol": "TCP"}
            for name, port in rendered.ports.items()
        ],
        "readinessProbe": {
            "httpGet": {"path": rendered.readiness.path, "port": rendered.readiness.port},
            "periodSeconds": FAST_PROBE_SECONDS,
            "failureThreshold": 2,
            "timeoutSeconds": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": rendered.liveness.path, "port": rendered.liveness.port},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 2,
        },
        # Keep serving until the load balancer has stopped sending to this node and the
        # keep-alive connections have been closed.
        "lifecycle": {"preStop": {"sleep": {"seconds": pre_stop}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {
                "drop": ["ALL"],
                **({"add": list(rendered.capabilities)} if rendered.capabilities else {}),
            },
            "readOnlyRootFilesystem": rendered.read_only_root_filesystem,
            "runAsNonRoot": True,
            "runAsUser": rendered.run_as_user,
            "runAsGroup": rendered.run_as_group or rendered.run_as_user,
        },
    }
    if rendered.startup_seconds:
        startup = rendered.startup or rendered.liveness
        get: dict[str, Any] = {"path": startup.path, "port": startup.port}
        if startup.host:
            get["httpHeaders"] = [{"name": "Host", "value": startup.host}]
        container["startupProbe"] = {
            "httpGet": get,
            "periodSeconds": FAST_PROBE_SECONDS,
            "failureThreshold": math.ceil(rendered.startup_seconds / FAST_PROBE_SECONDS),
            "timeoutSeconds": 2,
        }
    if rendered.env:
        container["env"] = [dict(e) for e in rendered.env]
    if resources:
        container["resources"] = resources
    mounts: list[dict[str, Any]] = [
        {"name": volume, "mountPath": path} for path, volume in rendered.scratch.items()
    ]
    # A provider that reads its ConfigMap as a file gets it mounted, with its hash below.
    mounted = bool(rendered.config_mount) and rendered.config is not None
    if mounted:
        mounts.append({"name": CONFIG_VOLUME, "mountPath": rendered.config_mount, "readOnly": True})
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec: dict[str, Any] = {
        "serviceAccountName": names.workload_name(owner.name),
        "nodeSelector": node_selector(owner, spec),
        "tolerations": tolerations(spec),
        "terminationGracePeriodSeconds": pre_stop + spec.rollout.shutdown_grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    volumes: list[dict[str, Any]] = [{"name": v, "emptyDir": {}} for v in rendered.scratch.values()]
    annotations = {**spec.controller.pod_annotations, **mesh_annotations}
    if mounted and rendered.config is not None:
        volumes.append(
            {"name": CONFIG_VOLUME, "configMap": {"name": names.workload_name(owner.name)}}
        )
        # The pods read the file once: a new content is a new revision, rolled out.
        annotations[names.CONFIG_HASH_ANNOTATION] = digest(dict(rendered.config), length=10)
    if volumes:
        pod_spec["volumes"] = volumes
    if rendered.sysctls:
        pod_spec["securityContext"]["sysctls"] = [
            {"name": k, "value": v} for k, v in sorted(rendered.sysctls.items())
        ]
    return {
        "metadata": {
            "labels": {**labels(owner, provider), **mesh_labels},
            "annotations": annotations,
        },
        "spec": pod_spec,
    }


def deployment(
    owner: Owner,
    spec: api.EdgeGatewaySpec,
    rendered: Rendered,
    namespace: str,
    replicas: int,
) -> dict[str, Any]:
    template = pod_template(owner, spec, rendered)
    revision = digest(template, length=10)
    template["metadata"]["labels"][names.TEMPLATE_HASH_LABEL] = revision
    same_revision = {**selector(owner), names.TEMPLATE_HASH_LABEL: revision}
    other_revisions = {
        "matchLabels": selector(owner),
        "matchExpressions": [
            {"key": names.TEMPLATE_HASH_LABEL, "operator": "NotIn", "values": [revision]}
        ],
    }
    template["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": same_revision},
                    "topologyKey": names.HOSTNAME_LABEL,
                }
            ]
        },
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": other_revisions,
                        "topologyKey": names.HOSTNAME_LABEL,
                    },
                }
            ]
        },
    }
    template["spec"]["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": names.ZONE_LABEL,
            # Nodes are already spread over zones by the node choice; the pods follow
            # the nodes, and a zone without an edge node must not block scheduling.
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": same_revision},
        }
    ]
    drain = drain_seconds(spec.rollout.load_balancer_health_check)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(
            owner, spec.controller.provider, names.workload_name(owner.name), namespace
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(owner)},
            "minReadySeconds": drain,
            "revisionHistoryLimit": REVISION_HISTORY,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": template,
        },
    }
