"""The EdgeGateway API (edgeoperator.dev/v1alpha1) as pydantic models.

These models are the single source of truth: ``crd.py`` turns them into the
CRD's structural OpenAPI schema, and every cross-field rule is declared once as
a :class:`CelRule` that becomes both a CEL ``x-kubernetes-validations`` entry
(enforced by the API server at apply time) and a pydantic validator with the
same message (enforced by ``edge-operator`` commands and the reconciler).

Field names follow Kubernetes conventions (camelCase on the wire); Python code
uses the snake_case attribute names.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from edge_operator.names import (
    API_VERSION,
    DEFAULT_NAMESPACE,
    DEFAULT_ROLE_LABEL,
    GATEWAY_LABEL,
    KIND,
)

#: Oldest Kubernetes release whose API server understands every rule in the CRD
#: (CEL ``isCIDR()`` arrived in 1.31).
MIN_KUBERNETES_VERSION = "1.31"

QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
MAX_QUALIFIED_NAME = 317  # 253 (DNS prefix) + "/" + 63 (name)
#: Of rollout.shutdownGraceSeconds, the seconds a controller keeps for itself: once its
#: connection timeout has passed it still closes what is left and exits, and must be
#: gone before the kubelet's SIGKILL.
SHUTDOWN_EXIT_SECONDS = 5
#: Bounds of rollout.shutdownGraceSeconds: at least 5 s for connections; an hour is
#: already longer than most node drains are willing to wait.
SHUTDOWN_GRACE_MIN_SECONDS = 10
SHUTDOWN_GRACE_MAX_SECONDS = 3600


@dataclass(frozen=True)
class CelRule:
    """A validation rule enforced by the API server (CEL) and by pydantic alike."""

    rule: str
    message: str

    def schema(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


def validations(*rules: CelRule) -> dict[str, Any]:
    """JSON-schema extra that attaches CEL rules to a model or field."""
    return {"x-kubernetes-validations": [r.schema() for r in rules]}


NAME_IS_DNS_LABEL = CelRule(
    f"self.metadata.name.matches('{DNS_LABEL}') && size(self.metadata.name) <= 63",
    "metadata.name must be a DNS label (at most 63 lowercase letters, digits and '-'),"
    " because it is used as a label value and in object names",
)
NODES_ONE_OF = CelRule(
    "has(self.selector) != has(self.names)",
    "exactly one of nodes.selector and nodes.names must be set",
)
NODES_COUNT_FITS_NAMES = CelRule(
    "!has(self.count) || !has(self.names) || self.count <= size(self.names)",
    "nodes.count cannot be larger than the number of nodes.names",
)
TRUSTED_CIDRS_REQUIRED = CelRule(
    "self.mode == 'Direct' || (has(self.trustedCIDRs) && size(self.trustedCIDRs) > 0)",
    "clientIP.trustedCIDRs must list at least one CIDR when clientIP.mode is"
    " XForwardedFor or ProxyProtocol, so forwarded client addresses are trusted"
    " only from the load balancer or CDN",
)
IS_CIDR = CelRule(
    "isCIDR(self)",
    "must be a CIDR such as 203.0.113.0/24 or 2001:db8::/32",
)
SELECTOR_VALUES = CelRule(
    "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
    "matchExpressions: operators In and NotIn need values; Exists and DoesNotExist take none",
)
#: What clientIP.mode decides: the forwarded-address, scheme, host and port headers that
#: every provider removes from untrusted peers and sets itself, and RFC 7239 Forwarded.
MANAGED_HEADER = r"(?i)^(x-forwarded-(for|proto|host|port)|x-real-ip|forwarded)$"
NOT_A_MANAGED_HEADER = CelRule(
    f"!self.matches('{MANAGED_HEADER}')",
    "clientIP.removeHeaders cannot name X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host,"
    " X-Forwarded-Port, X-Real-Ip or Forwarded: clientIP.mode decides those",
)
#: An HTTP field name that aliases no other: letters, digits and '-' (names with '_' or
#: '.' are removed on every request anyway, see ClientIP.remove_headers).
HEADER_NAME = r"^[A-Za-z0-9][-A-Za-z0-9]*$"
#: Client-address headers that backends, frameworks and CDNs read, none of them set by
#: the providers: a client could put any address in them.
DEFAULT_REMOVE_HEADERS = (
    "True-Client-IP",
    "X-Client-IP",
    "CF-Connecting-IP",
    "CF-Connecting-IPv6",
    "Fastly-Client-IP",
    "X-Cluster-Client-IP",
    "X-Original-Forwarded-For",
    "X-Forwarded",
    "Forwarded-For",
    "Client-IP",
    "X-Originating-IP",
    "X-Remote-IP",
    "X-Remote-Addr",
    "X-ProxyUser-IP",
    "X-Envoy-External-Address",
    "X-Azure-ClientIP",
    "X-Azure-SocketIP",
)
MATCH_LABEL_KEYS = CelRule(
    f"self.all(k, size(k) <= {MAX_QUALIFIED_NAME} && k.matches(r'{QUALIFIED_NAME}'))",
    "nodes.selector.matchLabels keys must be label keys: an optional DNS-subdomain prefix"
    " and '/', then up to 63 letters, digits, '-', '_' or '.', starting and ending with a"
    " letter or digit (e.g. nodepool or example.com/pool)",
)
PORTS_DIFFER = CelRule(
    "self.http != self.https",
    "service.ports.http and service.ports.https must differ",
)


LISTENER_PORTS_FREE = CelRule(
    "!has(self.gatewayAPI.listenerPorts) || !self.gatewayAPI.listenerPorts.exists(p,"
    " p == self.service.ports.http || p == self.service.ports.https)",
    "gatewayAPI.listenerPorts must not repeat service.ports.http or service.ports.https:"
    " those are listener ports already",
)
ENVOY_GATEWAY_SERVES_GATEWAY_API = CelRule(
    "self.controller.provider != 'envoy-gateway' || self.gatewayAPI.enabled",
    "controller.provider envoy-gateway serves Gateway API only: set gatewayAPI.enabled true"
    " (Envoy Gateway serves the Gateways of the gateway's GatewayClass and no Ingress)",
)
ENVOY_GATEWAY_NO_INGRESS_CLASS = CelRule(
    "self.controller.provider != 'envoy-gateway' || (self.controller.ingressClass.name == ''"
    " && !self.controller.ingressClass.default)",
    "controller.ingressClass must stay unset with controller.provider envoy-gateway: Envoy"
    " Gateway serves no Ingress",
)
ENVOY_GATEWAY_NO_LISTENER_PORTS = CelRule(
    "self.controller.provider != 'envoy-gateway' || !has(self.gatewayAPI.listenerPorts) ||"
    " size(self.gatewayAPI.listenerPorts) == 0",
    "gatewayAPI.listenerPorts is for controller.provider traefik: Envoy Gateway gives the"
    " Service a port for every listener port of the class's Gateways",
)
ENVOY_GATEWAY_DIRECT = CelRule(
    "self.controller.provider != 'envoy-gateway' || self.clientIP.mode == 'Direct'",
    "clientIP.mode must be Direct with controller.provider envoy-gateway (XForwardedFor and"
    " ProxyProtocol are not supported there yet: Envoy keeps a forged X-Forwarded-For from an"
    " untrusted peer beside a trusted one's, and believes a PROXY header from any peer)",
)
ENVOY_GATEWAY_NO_MESH = CelRule(
    "self.controller.provider != 'envoy-gateway' || self.mesh.provider == 'None'",
    "mesh.provider must be None with controller.provider envoy-gateway (not supported yet)",
)
#: Every rule that says what controller.provider envoy-gateway cannot do.
ENVOY_GATEWAY_RULES = (
    ENVOY_GATEWAY_SERVES_GATEWAY_API,
    ENVOY_GATEWAY_NO_INGRESS_CLASS,
    ENVOY_GATEWAY_NO_LISTENER_PORTS,
    ENVOY_GATEWAY_DIRECT,
    ENVOY_GATEWAY_NO_MESH,
)
GATEWAY_API_PROVIDER = CelRule(
    "!self.gatewayAPI.enabled || self.controller.provider != 'ingress-nginx'",
    "gatewayAPI.enabled needs controller.provider traefik or envoy-gateway: ingress-nginx"
    " serves no Gateway API objects",
)


def _check_cidr(value: str) -> str:
    # Mirrors CEL isCIDR(): an address, a slash and a prefix length; host bits may be set.
    try:
        if "/" not in value or "%" in value:
            raise ValueError(value)
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} {IS_CIDR.message}") from None
    return value


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not re.match(QUANTITY, value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2 or 1Gi")
    return value


Cidr = Annotated[
    str,
    AfterValidator(_check_cidr),
    Field(max_length=64, json_schema_extra=validations(IS_CIDR)),
]
Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


def _check_header(value: str) -> str:
    if re.match(MANAGED_HEADER, value):
        raise ValueError(f"{value!r}: {NOT_A_MANAGED_HEADER.message}")
    return value


HeaderName = Annotated[
    str,
    Field(pattern=HEADER_NAME, max_length=64, json_schema_extra=validations(NOT_A_MANAGED_HEADER)),
    AfterValidator(_check_header),
]
LabelKey = Annotated[str, Field(pattern=QUALIFIED_NAME, max_length=MAX_QUALIFIED_NAME)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE, max_length=63)]
NodeName = Annotated[str, Field(pattern=DNS_SUBDOMAIN, max_length=253)]


class Model(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )


def section(model: type[Model], description: str) -> Any:
    """A sub-object whose own fields all have defaults.

    Its CRD default is the whole defaulted object, so a stored EdgeGateway shows
    every effective setting. (Not ``{}``: the API server checks a default against
    the CEL rules as written, before nested defaults apply, and ``{}`` fails them.)
    """
    default = model().model_dump(by_alias=True, exclude_none=True)
    return Field(
        default_factory=model, description=description, json_schema_extra={"default": default}
    )


# --- spec.nodes ---------------------------------------------------------------------------


class LabelSelectorRequirement(Model):
    model_config = ConfigDict(json_schema_extra=validations(SELECTOR_VALUES))

    key: LabelKey = Field(description="The label key that the selector applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values."
    )
    values: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="Values for In and NotIn; must be empty for Exists and DoesNotExist.",
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(SELECTOR_VALUES.message)
        return self


class LabelSelector(Model):
    """A standard Kubernetes label selector (metav1.LabelSelector)."""

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=64,
        description="Nodes must carry every one of these labels with exactly these values.",
        json_schema_extra=validations(MATCH_LABEL_KEYS),
    )

    @model_validator(mode="after")
    def _label_keys(self) -> LabelSelector:
        bad = [
            k
            for k in self.match_labels
            if len(k) > MAX_QUALIFIED_NAME or not re.match(QUALIFIED_NAME, k)
        ]
        if bad:
            raise ValueError(f"{bad[0]!r}: {MATCH_LABEL_KEYS.message}")
        return self

    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list,
        max_length=64,
        description="Set-based requirements; all must hold (AND).",
    )


class Taint(Model):
    key: LabelKey | None = Field(
        default=None,
        description="Taint key. Defaults to nodes.roleLabel.",
    )
    value: str = Field(
        default="",
        pattern=LABEL_VALUE,
        max_length=63,
        description="Taint value.",
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute", "None"] = Field(
        default="NoSchedule",
        description=(
            "Taint effect. None means edge nodes are not tainted (other workloads may share"
            " them). NoExecute evicts pods that do not tolerate it; the operator applies it to"
            " a node only after the gateway's controller pod is Ready there."
        ),
    )


class NodeSelection(Model):
    """Which nodes become this gateway's edge nodes and how they are marked."""

    model_config = ConfigDict(json_schema_extra=validations(NODES_ONE_OF, NODES_COUNT_FITS_NAMES))

    selector: LabelSelector | None = Field(
        default=None,
        description=(
            "Label selector for candidate nodes. Exactly one of selector and names is set."
            " Nodes the operator labels itself are matched by their other labels, so do not"
            " select on nodes.roleLabel."
        ),
    )
    names: list[NodeName] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Explicit node names. Exactly one of selector and names is set.",
    )
    count: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Use only this many of the candidate nodes, spread evenly over"
            " topology.kubernetes.io/zone. The choice is stable: nodes already chosen stay"
            " chosen while they remain eligible. Unset means every candidate."
        ),
    )
    role_label: LabelKey = Field(
        default=DEFAULT_ROLE_LABEL,
        description=(
            'Label set (with value "") on every edge node, together with'
            f" {GATEWAY_LABEL}: <gateway name>."
        ),
    )
    taint: Taint = section(
        Taint, "Taint put on every edge node so only the gateway's controller runs there."
    )
    min_worker_nodes: int = Field(
        default=1,
        ge=0,
        description=(
            "The operator refuses a selection that would leave fewer than this many"
            " schedulable nodes that are not edge nodes."
        ),
    )

    @model_validator(mode="after")
    def _one_of(self) -> NodeSelection:
        if (self.selector is None) == (self.names is None):
            raise ValueError(NODES_ONE_OF.message)
        if self.count is not None and self.names is not None and self.count > len(self.names):
            raise ValueError(NODES_COUNT_FITS_NAMES.message)
        return self

    @property
    def taint_key(self) -> str:
        """The effective taint key (the role label unless set)."""
        return self.taint.key or self.role_label


# --- spec.controller ----------------------------------------------------------------------


class IngressClassSpec(Model):
    name: str = Field(
        default="",
        pattern=f"^$|{DNS_SUBDOMAIN}",
        max_length=253,
        description="IngressClass name. Empty means the gateway's metadata.name.",
    )
    default: bool = Field(
        default=False,
        description=(
            "Mark the IngressClass as the cluster default"
            " (ingressclass.kubernetes.io/is-default-class)."
        ),
    )


class ResourceRequirements(Model):
    """Compute resources of the controller container (core/v1 ResourceRequirements)."""

    limits: dict[str, Quantity] = Field(
        default_factory=dict, description="Maximum resources, e.g. {cpu: '2', memory: 1Gi}."
    )
    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Requested resources, e.g. {cpu: 500m}."
    )


class Controller(Model):
    """The ingress controller workload that runs on the edge nodes."""

    provider: Literal["traefik", "envoy-gateway", "ingress-nginx"] = Field(
        default="traefik",
        description=(
            "Ingress controller implementation. traefik: the operator runs Traefik on the"
            " edge nodes (Ingress, and Gateway API with gatewayAPI.enabled)."
            " envoy-gateway: the cluster's Envoy Gateway (v1.9 or later, installed by the"
            " user with its Helm chart) runs Envoy on the edge nodes from the EnvoyProxy and"
            " GatewayClass the operator writes; it serves Gateway API only, so"
            " gatewayAPI.enabled must be true, clientIP.mode Direct (for now), and"
            " controller.ingressClass, ingressNGINX, gatewayAPI.listenerPorts and mesh stay"
            " unset; controller.image, resources,"
            " podAnnotations and extraArgs are Envoy's, controller.namespace is where the"
            " EnvoyProxy is (Envoy runs in Envoy Gateway's namespace). ingress-nginx is"
            " deprecated: kept for"
            " existing installations, its upstream project was retired in March 2026 and"
            " gets no security fixes, so a gateway using it carries the warning condition"
            " ProviderDeprecated. The way off: provider traefik with ingressNGINX.enabled"
            " serves the same Ingresses (class nginx, nginx.ingress.kubernetes.io"
            " annotations) unchanged; or move to Gateway API (gatewayAPI.enabled)."
        ),
    )
    image: str = Field(
        default="",
        max_length=512,
        description="Override of the provider's pinned default image. Empty uses the default.",
    )
    replicas: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Unset means one pod per Ready edge node: the only even spread under"
            " externalTrafficPolicy Local. A number caps the pods at that many (never more"
            " than edge nodes); edge nodes without a pod then receive no Local traffic."
            " While a HorizontalPodAutoscaler targets the controller Deployment, the"
            " operator keeps the replica count the autoscaler set."
        ),
    )
    namespace: str = Field(
        default=DEFAULT_NAMESPACE,
        pattern=DNS_LABEL,
        max_length=63,
        description=(
            "Namespace of the workload objects; created if missing and never deleted (other"
            " gateways may share it)."
        ),
    )
    ingress_class: IngressClassSpec = section(IngressClassSpec, "The IngressClass to serve.")
    resources: ResourceRequirements = section(
        ResourceRequirements, "Compute resources of the controller container."
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, max_length=64, description="Extra annotations on the controller pods."
    )
    extra_args: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list,
        max_length=64,
        description="Extra command-line arguments appended to the controller's own.",
    )


# --- spec.service -------------------------------------------------------------------------


class Ports(Model):
    model_config = ConfigDict(json_schema_extra=validations(PORTS_DIFFER))

    http: int = Field(default=80, ge=1, le=65535, description="Service port for HTTP.")
    https: int = Field(default=443, ge=1, le=65535, description="Service port for HTTPS.")

    @model_validator(mode="after")
    def _differ(self) -> Ports:
        if self.http == self.https:
            raise ValueError(PORTS_DIFFER.message)
        return self


class ServiceSpec(Model):
    """The LoadBalancer Service in front of the controller pods."""

    external_traffic_policy: Literal["Local", "Cluster"] = Field(
        default="Local",
        description=(
            "Local keeps the client address and avoids a second hop. Cluster is allowed but"
            " hides the client address behind SNAT; the gateway then reports the warning"
            " condition ClientIPPreserved=False."
        ),
    )
    load_balancer_class: str = Field(
        default="",
        pattern=f"^$|{QUALIFIED_NAME}",
        max_length=MAX_QUALIFIED_NAME,
        description="spec.loadBalancerClass of the Service. Empty leaves it unset.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="Annotations for the Service, e.g. the cloud load balancer's settings.",
    )
    load_balancer_source_ranges: list[Cidr] = Field(
        default_factory=list,
        max_length=256,
        description="Client CIDRs allowed through the load balancer. Empty allows all.",
    )
    ports: Ports = section(Ports, "Service ports.")
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] = Field(
        default="SingleStack", description="spec.ipFamilyPolicy of the Service."
    )


# --- spec.clientIP, rollout, mesh ---------------------------------------------------------


class ClientIP(Model):
    """How the real client address reaches the backends."""

    model_config = ConfigDict(json_schema_extra=validations(TRUSTED_CIDRS_REQUIRED))

    mode: Literal["Direct", "XForwardedFor", "ProxyProtocol"] = Field(
        default="Direct",
        description=(
            "The rule, for every mode and provider: from a peer outside trustedCIDRs no"
            " client-address header survives. Backends get one truthful client address in"
            " X-Forwarded-For (the chain as trusted peers sent it, the peer appended: the"
            " client is its rightmost entry outside trustedCIDRs), X-Real-Ip either that"
            " client or absent, never a Forwarded header, scheme/host/port headers from the"
            " connection or a trusted peer, no aliased spelling (X_Forwarded_For,"
            " X.Forwarded.For) and none of removeHeaders."
            " Direct: the peer address is the client (needs externalTrafficPolicy Local);"
            " X-Forwarded-For and X-Real-Ip are the peer, X-Forwarded-Proto/-Host/-Port come"
            " from the connection."
            " XForwardedFor: the X-Forwarded-For chain is kept only from peers in"
            " trustedCIDRs (a CDN or L7 load balancer); from others, as Direct. Traefik keeps"
            " X-Forwarded-Proto/-Host/-Port from those peers too, and removes X-Real-Ip from"
            " every request (it would keep a trusted peer's X-Real-Ip as sent, which the"
            " client may have forged through the CDN): backends take the client from"
            " X-Forwarded-For. ingress-nginx sets X-Real-Ip to the computed client, but cannot"
            " limit the forwarded scheme/host/port to trustedCIDRs, so it trusts them from no"
            " peer and sets them from the connection (behind a CDN that terminates TLS,"
            " backends see the scheme of the CDN's connection to the gateway)."
            " ProxyProtocol: the load balancer speaks PROXY protocol; the address in the"
            " header is believed only from trustedCIDRs and is then the client, as in Direct."
            " ingress-nginx then needs the header"
            " on every connection: an in-cluster client that connects to the load"
            " balancer's address is sent straight to the pods by kube-proxy, without the"
            " header, and fails, unless the platform sets the Service's"
            " status.loadBalancer.ingress[].ipMode to Proxy (KEP-1860; e.g."
            " Hetzner Cloud with PROXY protocol on, Oracle OKE by annotation), which sends"
            " such traffic through the load balancer. Traefik accepts connections without"
            " the header. The README lists every header each provider trusts."
        ),
    )
    trusted_cidrs: list[Cidr] = Field(
        default_factory=list,
        alias="trustedCIDRs",
        max_length=64,
        description=(
            "Sources trusted to report the client address. Required for XForwardedFor and"
            " ProxyProtocol; ignored for Direct."
        ),
    )
    remove_headers: list[HeaderName] = Field(
        default_factory=lambda: list(DEFAULT_REMOVE_HEADERS),
        max_length=64,
        json_schema_extra={"default": list(DEFAULT_REMOVE_HEADERS)},
        description=(
            "Other client-address headers, which no provider sets, removed from every"
            " request before it is routed (names are case-insensitive; every duplicate line"
            " goes). The default lists those that backends, frameworks and CDNs read:"
            f" {', '.join(DEFAULT_REMOVE_HEADERS)}. [] removes none of them. Whatever this"
            " says, backends never get a header whose name aliases another (one with '_' or"
            " '.', such as X_Forwarded_For or X.Forwarded.For, which CGI, PHP, WSGI and nginx"
            " read as X-Forwarded-For), nor the RFC 7239 Forwarded header, which no provider"
            " can rewrite to the truth here; X-Forwarded-For, X-Real-Ip and X-Forwarded-Proto,"
            " -Host, -Port follow mode. Traefik removes these headers from every peer, trusted"
            " ones included: to keep one that a trusted CDN sets (e.g. CF-Connecting-IP),"
            " leave it out of this list and let only the CDN reach the load balancer"
            " (service.loadBalancerSourceRanges)."
        ),
    )

    @model_validator(mode="after")
    def _cidrs_required(self) -> ClientIP:
        if self.mode != "Direct" and not self.trusted_cidrs:
            raise ValueError(TRUSTED_CIDRS_REQUIRED.message)
        return self


class LoadBalancerHealthCheck(Model):
    """The health check the load balancer runs against healthCheckNodePort."""

    interval_seconds: int = Field(
        default=10, ge=1, le=300, description="Seconds between two health checks."
    )
    unhealthy_threshold: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Failed checks after which the load balancer stops sending to a node.",
    )


class Rollout(Model):
    """Drain and shutdown timing of the controller pods."""

    load_balancer_health_check: LoadBalancerHealthCheck = section(
        LoadBalancerHealthCheck,
        "The load balancer's health check, as configured on the load balancer (set it"
        " to what the cloud's load balancer really does). The Deployment's minReadySeconds"
        " is intervalSeconds x (unhealthyThreshold + 1), the time the load balancer needs"
        " to notice a node's change of health; the pods' preStop delay is that plus one"
        " interval, in which a leaving pod closes its keep-alive connections: the"
        " controller answers 'Connection: close' (HTTP/2: GOAWAY) to any request on a"
        " connection older than intervalSeconds, so none is cut while a request is on its"
        " way. No node drops traffic during a rollout or a drain.",
    )
    shutdown_grace_seconds: int = Field(
        default=60,
        ge=SHUTDOWN_GRACE_MIN_SECONDS,
        le=SHUTDOWN_GRACE_MAX_SECONDS,
        description=(
            "Seconds a controller pod gets, after its preStop delay, to finish the requests"
            " and connections it has open (long downloads, WebSockets) before it is killed;"
            " it accepts no new connections in that time. The pods'"
            " terminationGracePeriodSeconds is the preStop delay plus this. Both providers"
            f" give open connections this much less {SHUTDOWN_EXIT_SECONDS} s, which they"
            " keep to exit: Traefik as every entry point's transport.lifeCycle.graceTimeOut,"
            " ingress-nginx as worker-shutdown-timeout, which also bounds how long"
            f" connections outlive each nginx reload. {SHUTDOWN_GRACE_MIN_SECONDS} to"
            f" {SHUTDOWN_GRACE_MAX_SECONDS}."
        ),
    )

    @property
    def keep_alive_max_seconds(self) -> int:
        """Age after which a controller closes a keep-alive connection, with the response
        to its next request: one health-check interval. The preStop delay adds it, so a
        leaving pod has closed every busy connection cleanly before it stops."""
        return self.load_balancer_health_check.interval_seconds

    @property
    def connection_grace_seconds(self) -> int:
        """Seconds open connections get after SIGTERM, the same for every provider."""
        return self.shutdown_grace_seconds - SHUTDOWN_EXIT_SECONDS


class Mesh(Model):
    provider: Literal["None", "Istio", "Linkerd"] = Field(
        default="None",
        description=(
            "Service mesh the controller pods join so edge-to-worker traffic is mTLS."
            " None leaves the pods out of any mesh."
        ),
    )


#: Service ports a gateway adds for Gateway listeners (a Service may have many; a pod's
#: entry points and the load balancer's rules grow with each).
INGRESS_NGINX_PROVIDER = CelRule(
    "!self.ingressNGINX.enabled || self.controller.provider == 'traefik'",
    "ingressNGINX.enabled needs controller.provider traefik: Traefik's kubernetesIngressNGINX"
    " provider is what serves Ingresses written for ingress-nginx",
)
INGRESS_NGINX_CLASS_DIFFERS = CelRule(
    "!self.spec.ingressNGINX.enabled || self.spec.ingressNGINX.ingressClassName !="
    " (self.spec.controller.ingressClass.name != '' ? self.spec.controller.ingressClass.name"
    " : self.metadata.name)",
    "spec.ingressNGINX.ingressClassName must differ from the gateway's own IngressClass"
    " (controller.ingressClass.name, or metadata.name when that is empty)",
)

MAX_LISTENER_PORTS = 16
ListenerPort = Annotated[int, Field(ge=1, le=65535)]


class GatewayAPI(Model):
    """Gateway API (gateway.networking.k8s.io, standard channel) on the edge nodes."""

    enabled: bool = Field(
        default=False,
        description=(
            "Serve Gateway API Gateways of gatewayClassName from the edge nodes, beside the"
            " Ingresses of the IngressClass. The operator creates and owns the GatewayClass"
            " (a class of that name not made by this gateway is refused: ObjectConflict) and"
            " the controller serves exactly the Gateways of that class, in any namespace,"
            " with the Service's addresses as their status.addresses. Listeners use the"
            " Service's ports (service.ports.http, .https); a listener on another port is"
            " refused on its Gateway's status and reported here. The Gateway API CRDs"
            " (standard channel, v1.6) are installed by the cluster admin, not by the"
            " operator; until they are, condition GatewayAPIReady is False with reason"
            " GatewayAPICRDsMissing. Switching it off deletes the GatewayClass."
        ),
    )
    gateway_class_name: str = Field(
        default="",
        pattern=f"^$|{DNS_SUBDOMAIN}",
        max_length=253,
        description="GatewayClass name. Empty means the gateway's metadata.name.",
    )
    listener_ports: list[ListenerPort] = Field(
        default_factory=list,
        max_length=MAX_LISTENER_PORTS,
        description=(
            "More ports for Gateway listeners, beside service.ports.http and .https (e.g."
            " 8080): each becomes a port of the Service (named listener-PORT) and an entry"
            " point of the controller, for listeners of any protocol it serves there (HTTP,"
            " HTTPS with the listener's certificate, TLS). No two alike, none equal to"
            " service.ports.http or .https. Used only while enabled."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set", "default": []},
    )

    @field_validator("listener_ports")
    @classmethod
    def _unique_ports(cls, ports: list[int]) -> list[int]:
        if len(set(ports)) != len(ports):
            raise ValueError("gatewayAPI.listenerPorts must not repeat a port")
        return ports


class IngressNGINX(Model):
    """Ingresses written for ingress-nginx, served by Traefik: a way off ingress-nginx."""

    enabled: bool = Field(
        default=False,
        description=(
            "Also serve the Ingresses of the IngressClass ingressClassName, written for"
            " ingress-nginx (spec.ingressClassName or the kubernetes.io/ingress.class"
            " annotation), with Traefik's kubernetesIngressNGINX provider, which reads their"
            " nginx.ingress.kubernetes.io annotations (ssl-redirect, rewrite-target, use-regex,"
            " whitelist-source-range, canary-by-header/-cookie/-weight, auth, CORS, affinity"
            " and more; snippets are never run). Served on the same entry points, with the"
            " same client-address rules, as the gateway's own Ingresses. controller.provider"
            " must be traefik. The operator creates the IngressClass (controller"
            " k8s.io/ingress-nginx) only if none of that name exists; an existing one (say"
            " ingress-nginx's own, while both run) is used and left alone. Only the class of"
            " that name is served, not others of controller k8s.io/ingress-nginx."
        ),
    )
    ingress_class_name: str = Field(
        default="nginx",
        pattern=DNS_SUBDOMAIN,
        max_length=253,
        description="The IngressClass those Ingresses name (ingress-nginx's default: nginx).",
    )
    publish_status: bool = Field(
        default=True,
        description=(
            "Write the gateway's load-balancer addresses into those Ingresses'"
            " status.loadBalancer. Set false while ingress-nginx still runs beside it and"
            " writes its own, so the two do not overwrite each other."
        ),
    )


def ingress_class_conflict(name: str, spec: EdgeGatewaySpec) -> str | None:
    """Why the gateway ``name`` with ``spec`` cannot be served (its two IngressClasses
    would be one), or None."""
    own = spec.controller.ingress_class.name or name
    if spec.ingress_nginx.enabled and spec.ingress_nginx.ingress_class_name == own:
        return INGRESS_NGINX_CLASS_DIFFERS.message
    return None


class EdgeGatewaySpec(Model):
    """Desired state of an EdgeGateway."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            GATEWAY_API_PROVIDER,
            LISTENER_PORTS_FREE,
            INGRESS_NGINX_PROVIDER,
            *ENVOY_GATEWAY_RULES,
        )
    )

    nodes: NodeSelection = Field(description="Which nodes become edge nodes.")
    controller: Controller = section(Controller, "The ingress controller workload.")
    service: ServiceSpec = section(ServiceSpec, "The LoadBalancer Service.")
    client_ip: ClientIP = Field(
        default_factory=ClientIP,
        alias="clientIP",
        description="How the real client address reaches the backends.",
        json_schema_extra={"default": ClientIP().model_dump(by_alias=True)},
    )
    rollout: Rollout = section(Rollout, "Rollout timing.")
    gateway_api: GatewayAPI = Field(
        default_factory=GatewayAPI,
        alias="gatewayAPI",
        description="Gateway API Gateways served from the edge nodes.",
        json_schema_extra={"default": GatewayAPI().model_dump(by_alias=True)},
    )
    ingress_nginx: IngressNGINX = Field(
        default_factory=IngressNGINX,
        alias="ingressNGINX",
        description="Ingresses written for ingress-nginx, served by Traefik (migration).",
        json_schema_extra={"default": IngressNGINX().model_dump(by_alias=True)},
    )
    mesh: Mesh = section(Mesh, "Service mesh membership of the controller pods.")
    paused: bool = Field(
        default=False,
        description="When true the operator changes nothing and only fills status.plan.",
    )

    @model_validator(mode="after")
    def _gateway_api_provider(self) -> EdgeGatewaySpec:
        if self.gateway_api.enabled and self.controller.provider == "ingress-nginx":
            raise ValueError(GATEWAY_API_PROVIDER.message)
        ports = self.service.ports
        if {ports.http, ports.https} & set(self.gateway_api.listener_ports):
            raise ValueError(LISTENER_PORTS_FREE.message)
        if self.ingress_nginx.enabled and self.controller.provider != "traefik":
            raise ValueError(INGRESS_NGINX_PROVIDER.message)
        if self.controller.provider == "envoy-gateway":
            self._envoy_gateway_possible()
        return self

    def _envoy_gateway_possible(self) -> None:
        refused = {
            ENVOY_GATEWAY_SERVES_GATEWAY_API: not self.gateway_api.enabled,
            ENVOY_GATEWAY_NO_INGRESS_CLASS: bool(
                self.controller.ingress_class.name or self.controller.ingress_class.default
            ),
            ENVOY_GATEWAY_NO_LISTENER_PORTS: bool(self.gateway_api.listener_ports),
            ENVOY_GATEWAY_DIRECT: self.client_ip.mode != "Direct",
            ENVOY_GATEWAY_NO_MESH: self.mesh.provider != "None",
        }
        for rule, broken in refused.items():
            if broken:
                raise ValueError(rule.message)


# --- status -------------------------------------------------------------------------------


class Condition(Model):
    """A metav1.Condition."""

    type: str = Field(
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        max_length=316,
        description="Condition type, e.g. Ready.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="Condition status.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed for."
    )
    last_transition_time: str = Field(
        description="When the status last changed.",
        json_schema_extra={"format": "date-time"},
    )
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
        min_length=1,
        description="CamelCase reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")


class EdgeNodeStatus(Model):
    name: str = Field(description="Node name.")
    zone: str = Field(default="", description="The node's topology.kubernetes.io/zone.")
    ready: bool = Field(default=False, description="The node's Ready condition is True.")
    controller_pods: int = Field(
        default=0, ge=0, description="Ready controller pods of this gateway on the node."
    )
    load_balancer_healthy: bool | None = Field(
        default=None,
        description=(
            "The node's answer to the load balancer's health check, probed by the operator"
            " the way a cloud load balancer does it, every"
            " rollout.loadBalancerHealthCheck.intervalSeconds: an HTTP GET of"
            " <node InternalIP>:<Service healthCheckNodePort>/healthz (kube-proxy's"
            " <node>:10256/healthz under externalTrafficPolicy Cluster). true: HTTP 200;"
            " false: the node answered anything else or refused the connection, so the"
            " load balancer sends it no traffic; absent: not probed yet, probing is off"
            " (operator flag --probe-edge-nodes=off), or the operator cannot reach the node"
            " (see the EdgeNodesHealthy condition)."
        ),
    )


class Address(Model):
    type: Literal["IPAddress", "Hostname"] = Field(description="Kind of address.")
    value: str = Field(description="The load balancer's address.")


class NodeChange(Model):
    name: str = Field(description="Node name.")
    action: Literal["Label", "Taint", "Restore"] = Field(
        description="Label or Taint the node, or Restore it to how it was before."
    )
    detail: str = Field(default="", description="What exactly changes.")


class ObjectChange(Model):
    kind: str = Field(description="Object kind.")
    name: str = Field(description="Object name.")
    namespace: str = Field(default="", description="Namespace; empty for cluster objects.")
    action: Literal["Create", "Update", "Delete"] = Field(description="What would happen.")


class Plan(Model):
    """What the next reconcile would change."""

    nodes: list[NodeChange] = Field(default_factory=list, description="Node changes.")
    objects: list[ObjectChange] = Field(default_factory=list, description="Object changes.")


class EdgeGatewayStatus(Model):
    """Observed state, written by the operator only when it changes."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation this status describes."
    )
    phase: Literal["Pending", "Provisioning", "Ready", "Degraded", "Paused"] | None = Field(
        default=None, description="Summary of the conditions."
    )
    edge_nodes: list[EdgeNodeStatus] = Field(
        default_factory=list, description="The gateway's edge nodes."
    )
    edge_node_count: int | None = Field(default=None, description="Number of edge nodes.")
    replicas: int | None = Field(default=None, description="Desired controller pods.")
    ready_replicas: int | None = Field(default=None, description="Ready controller pods.")
    daemon_sets_not_tolerating: list[str] = Field(
        default_factory=list,
        description=(
            "namespace/name of the DaemonSets whose pods do not tolerate the edge taint, so"
            " will not run on edge nodes (see the TaintSafe condition)."
        ),
    )
    addresses: list[Address] = Field(
        default_factory=list, description="Addresses of the load balancer."
    )
    ingress_class_name: str | None = Field(default=None, description="The IngressClass served.")
    gateway_class_name: str | None = Field(
        default=None, description="The GatewayClass served (gatewayAPI.enabled)."
    )
    gateways_programmed: int | None = Field(
        default=None,
        description="Gateways of the GatewayClass whose Programmed condition is True.",
    )
    plan: Plan | None = Field(default=None, description="What the next reconcile would change.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description=(
            "Ready (every condition below that is not a warning is True), NodesConfigured,"
            " ControllerAvailable, LoadBalancerReady, GatewayAPIReady (with gatewayAPI.enabled),"
            " and the warnings TaintSafe, ClientIPPreserved, EdgeNodesHealthy, ObjectsOwned,"
            " GatewayListenersAccepted and ProviderDeprecated (controller.provider"
            " ingress-nginx), keyed by type."
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


class ObjectMeta(BaseModel):
    """The part of metadata the operator reads; everything else passes through."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=DNS_LABEL, max_length=63)


class EdgeGateway(BaseModel):
    """A whole EdgeGateway object, as read from a file or the API."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta
    spec: EdgeGatewaySpec
    status: EdgeGatewayStatus | None = None

    @model_validator(mode="after")
    def _is_edge_gateway(self) -> EdgeGateway:
        if (self.api_version, self.kind) != (API_VERSION, KIND):
            raise ValueError(
                f"expected apiVersion {API_VERSION} kind {KIND}, got {self.api_version} {self.kind}"
            )
        if conflict := ingress_class_conflict(self.metadata.name, self.spec):
            raise ValueError(conflict)
        return self


def describe(error: ValidationError, root: str = "") -> str:
    """A validation error on one line: each problem's dotted path (``root`` for the
    validated object itself) and message."""
    problems = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"]) or root
        problems.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    return "; ".join(problems)
