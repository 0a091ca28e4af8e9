"""The pydantic models: defaults and every validation rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from edge_operator import api
from tests.spec_cases import BASE_SPEC, INVALID, VALID, Case, gateway


def test_defaults_fill_every_section() -> None:
    spec = api.EdgeGatewaySpec.model_validate(BASE_SPEC)

    assert spec.nodes.role_label == "node-role.kubernetes.io/edge"
    assert spec.nodes.taint.key is None
    assert spec.nodes.taint_key == "node-role.kubernetes.io/edge"
    assert (spec.nodes.taint.value, spec.nodes.taint.effect) == ("", "NoSchedule")
    assert spec.nodes.count is None
    assert spec.nodes.min_worker_nodes == 1
    assert spec.controller.provider == "traefik"
    assert spec.controller.image == ""
    assert spec.controller.replicas is None
    assert spec.controller.namespace == "edge-system"
    assert (spec.controller.ingress_class.name, spec.controller.ingress_class.default) == (
        "",
        False,
    )
    assert spec.service.external_traffic_policy == "Local"
    assert (spec.service.ports.http, spec.service.ports.https) == (80, 443)
    assert spec.service.ip_family_policy == "SingleStack"
    assert spec.service.load_balancer_source_ranges == []
    assert spec.client_ip.mode == "Direct"
    assert spec.client_ip.trusted_cidrs == []
    hc = spec.rollout.load_balancer_health_check
    assert (hc.interval_seconds, hc.unhealthy_threshold) == (10, 3)
    assert spec.rollout.shutdown_grace_seconds == 60
    assert spec.rollout.connection_grace_seconds == 55
    assert spec.mesh.provider == "None"
    assert spec.paused is False


def test_taint_key_can_differ_from_role_label() -> None:
    spec = api.EdgeGatewaySpec.model_validate(
        {**BASE_SPEC, "nodes": {**BASE_SPEC["nodes"], "taint": {"key": "dedicated"}}}
    )
    assert spec.nodes.taint_key == "dedicated"


def test_wire_names_round_trip() -> None:
    """Dumping by alias gives the camelCase field names of the API contract."""
    wire = api.EdgeGatewaySpec.model_validate(BASE_SPEC).model_dump(
        by_alias=True, exclude_none=True
    )
    assert set(wire) == {
        "nodes", "controller", "service", "clientIP", "rollout", "gatewayAPI", "ingressNGINX",
        "mesh", "paused",
    }  # fmt: skip
    assert "minWorkerNodes" in wire["nodes"]
    assert "trustedCIDRs" in wire["clientIP"]
    assert set(wire["rollout"]) == {"loadBalancerHealthCheck", "shutdownGraceSeconds"}
    assert api.EdgeGatewaySpec.model_validate(wire).model_dump(by_alias=True) == (
        api.EdgeGatewaySpec.model_validate(BASE_SPEC).model_dump(by_alias=True)
    )


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_valid_spec(case: Case) -> None:
    api.EdgeGateway.model_validate(gateway(case.name, case.spec))


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_spec(case: Case) -> None:
    assert case.model_error is not None
    with pytest.raises(ValidationError) as error:
        api.EdgeGateway.model_validate(gateway(case.name, case.spec))
    assert case.model_error in str(error.value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("10.0.0.0/8", True),
        ("10.1.2.3/8", True),  # host bits set: CEL isCIDR() accepts it too
        ("::/0", True),
        ("2001:db8::/129", False),
        ("10.0.0.0", False),
        ("010.0.0.0/8", False),
        ("fe80::1%eth0/64", False),
        ("", False),
    ],
)
def test_cidr_rule(value: str, ok: bool) -> None:
    spec: dict[str, Any] = {
        **BASE_SPEC,
        "clientIP": {"mode": "XForwardedFor", "trustedCIDRs": [value]},
    }
    if ok:
        api.EdgeGatewaySpec.model_validate(spec)
    else:
        with pytest.raises(ValidationError, match="must be a CIDR"):
            api.EdgeGatewaySpec.model_validate(spec)


def test_wrong_kind_is_refused() -> None:
    obj = gateway("x", BASE_SPEC) | {"kind": "Gateway"}
    with pytest.raises(ValidationError, match=r"expected apiVersion edgeoperator\.dev/v1alpha1"):
        api.EdgeGateway.model_validate(obj)


def test_the_bad_input_suite_has_thirty_cases_each_naming_its_field() -> None:
    assert len(INVALID) >= 30
    assert [c.id for c in INVALID if not c.field] == []
    assert len({c.id for c in INVALID}) == len(INVALID)
