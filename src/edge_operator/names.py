"""Every name the operator spells: API group, labels, annotations, field manager.

Nothing else in the package writes these strings; import them from here.
"""

import hashlib
from typing import Final

GROUP: Final = "edgeoperator.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "EdgeGateway"
LIST_KIND: Final = "EdgeGatewayList"
PLURAL: Final = "edgegateways"
SINGULAR: Final = "edgegateway"
SHORT_NAMES: Final = ("egw",)
CATEGORIES: Final = ("edge-operator",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

#: Server-side apply field manager for every write the operator makes.
FIELD_MANAGER: Final = "edge-operator"

#: Label on every object the operator creates (and on its edge nodes): the owning gateway.
GATEWAY_LABEL: Final = f"{GROUP}/gateway"
#: On a GatewayClass: the gateway whose controller serves it. The operator puts it on the
#: class it makes; a user may put it on another class of the provider's controllerName
#: to have the same edge nodes serve that one too (it stays the user's: no ownership).
SERVED_BY_LABEL: Final = f"{GROUP}/served-by"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "edge-operator"

#: The EdgeGateways' finalizer: deleting one restores its nodes first (Nodes get
#: NODE_FINALIZER below, for their drain).
FINALIZER: Final = f"{GROUP}/node-restore"
#: On each edge node the operator holds: a deleted edge node stays (being deleted) until
#: its controller pods have drained, so the load balancer stops sending to it first.
NODE_FINALIZER: Final = f"{GROUP}/drain"

DEFAULT_ROLE_LABEL: Final = "node-role.kubernetes.io/edge"
DEFAULT_NAMESPACE: Final = "edge-system"
ZONE_LABEL: Final = "topology.kubernetes.io/zone"
#: Cloud load-balancer controllers leave a node with this label out of every load
#: balancer (k8s.io/cloud-provider service controller, KEP-1143); only its presence counts.
EXCLUDE_LB_LABEL: Final = "node.kubernetes.io/exclude-from-external-load-balancers"
#: The taint cluster-autoscaler puts on a node it is about to delete (KEP-3836 makes
#: kube-proxy's health check fail on such nodes too).
AUTOSCALER_DELETE_TAINT: Final = "ToBeDeletedByClusterAutoscaler"
HOSTNAME_LABEL: Final = "kubernetes.io/hostname"

#: Annotation on an edge node: JSON record of every label and taint the operator
#: manages there and the value each had before (see facts.NodeRecord).
NODE_RECORD_ANNOTATION: Final = f"{GROUP}/node-record"

# --- the workload of a gateway ----------------------------------------------------------------

#: app.kubernetes.io labels on every object of a gateway's workload.
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
COMPONENT_CONTROLLER: Final = "controller"

#: Hash of the controller pod template, stamped by the operator: the ReplicaSet's
#: pod-template-hash is unknown when the Deployment is written, and affinity needs it.
TEMPLATE_HASH_LABEL: Final = f"{GROUP}/template-hash"
#: Hash of everything the operator applied to an object; a change means "apply again".
APPLIED_HASH_ANNOTATION: Final = f"{GROUP}/applied-hash"
#: On the controller pod template: the hash of the ConfigMap it mounts.
CONFIG_HASH_ANNOTATION: Final = f"{GROUP}/config-hash"
#: Marks the cluster's default IngressClass.
DEFAULT_CLASS_ANNOTATION: Final = "ingressclass.kubernetes.io/is-default-class"


def workload_name(gateway: str) -> str:
    """Name of every namespaced object of a gateway (unique: gateways are cluster-scoped)."""
    return gateway


#: The readiness route's host: .invalid is reserved (RFC 2606), so no client can own it.
READINESS_DOMAIN: Final = "readiness.edgeoperator.invalid"


def readiness_name(gateway: str) -> str:
    """Name of the Service and Ingress of a gateway's readiness route (a DNS label)."""
    name = f"{gateway}-routes"
    if len(name) <= 63:
        return name
    return f"{gateway[:49].rstrip('-')}-{hashlib.sha256(gateway.encode()).hexdigest()[:6]}-routes"


def readiness_host(gateway: str) -> str:
    return f"{gateway}.{READINESS_DOMAIN}"


def cluster_binding_name(gateway: str) -> str:
    """Name of the gateway's ClusterRoleBinding."""
    return f"{MANAGED_BY_VALUE}-{gateway}"


# --- Gateway API ---------------------------------------------------------------------------

GATEWAY_API_GROUP: Final = "gateway.networking.k8s.io"
GATEWAY_API_VERSION: Final = f"{GATEWAY_API_GROUP}/v1"
#: Envoy Gateway's API (controller.provider envoy-gateway).
ENVOY_GATEWAY_GROUP: Final = "gateway.envoyproxy.io"
ENVOY_GATEWAY_API_VERSION: Final = f"{ENVOY_GATEWAY_GROUP}/v1alpha1"


def listener_port_name(port: int) -> str:
    """Name of the Service port and container port of an extra Gateway listener port
    (at most 15 characters, an IANA service name)."""
    return f"listener-{port}"


def feature_binding_name(gateway: str, provider: str, feature: str) -> str:
    """Name of the ClusterRoleBinding of the rights of one of a gateway's features."""
    return f"{cluster_binding_name(gateway)}-{provider}-{feature}"


def gateway_api_binding_name(gateway: str, provider: str) -> str:
    """Name of the ClusterRoleBinding of a gateway's Gateway API rights."""
    return feature_binding_name(gateway, provider, "gateway-api")
