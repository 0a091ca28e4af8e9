"""The Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance, the version of
hack/versions.env, profiles GATEWAY-HTTP and GATEWAY-GRPC) against the GatewayClass of
an EdgeGateway: real Traefik pods on the lab's edge nodes, the suite's requests sent from
a client namespace through the load balancer. The features tested are those Traefik
writes on the class's status but TLSRoute's (NOT_SERVED); HTTPRouteMultipleGateways is
skipped as Traefik's own run skips it. One test
(GatewayClassObservedGenerationBump) makes a GatewayClass of its own: it is labelled
edgeoperator.dev/served-by=<gateway> while the suite runs, as a user has another class
served by an EdgeGateway's edge nodes (Traefik serves only the classes so labelled).

The bar is Traefik's own report for the same suite version (in its Go module): for each
profile no test fails, as many pass in core and extended, no skip of ours it did not
make, every feature it claims tested, every provisional test it passed passed here. The
report is written to $EDGE_OPERATOR_CONFORMANCE_REPORT (`make conformance` sets it to a
file under conformance/) or to the test's temporary directory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from edge_operator import __version__, names
from edge_operator.desired.providers import traefik
from lab import conformance
from tests.dataplane.traffic import GATEWAY_API, Traffic
from tests.e2e.cluster import condition

PROFILES = ("GATEWAY-HTTP", "GATEWAY-GRPC")
#: Traefik serves TLSRoutes only with its experimentalChannel option (kubernetes.go,
#: supportedRouteKinds, v3.7.13), which needs the experimental CRDs: the operator serves
#: the standard channel, so these of the features Traefik writes on a class are left out.
NOT_SERVED = ("TLSRoute", "TLSRouteModeTerminate", "TLSRouteModeMixed")
#: Traefik's own run skips it (integration/gateway_api_conformance_test.go, v3.7.13).
SKIPPED = ("HTTPRouteMultipleGateways",)
#: Listener ports the suite's Gateways use beside 80 and 443 (GatewayPort8080,
#: HTTPRouteListenerPortMatching's 8090), as gatewayAPI.listenerPorts.
LISTENER_PORTS = (8080, 8090)


@contextmanager
def serving_other_classes(traffic: Traffic, gateway: str) -> Iterator[list[str]]:
    """While inside: every GatewayClass of Traefik's controllerName without the served-by
    label gets it (the suite's own classes), as a user would label them."""
    labelled: list[str] = []
    stop = threading.Event()

    def label() -> None:
        custom = traffic.cluster.custom
        while not stop.wait(0.5):
            classes = custom.list_cluster_custom_object(GATEWAY_API, "v1", "gatewayclasses")
            for cls in classes["items"]:
                meta = cls["metadata"]
                if cls["spec"].get(
                    "controllerName"
                ) == traefik.GATEWAY_CONTROLLER and names.SERVED_BY_LABEL not in (
                    meta.get("labels") or {}
                ):
                    patch = {"metadata": {"labels": {names.SERVED_BY_LABEL: gateway}}}
                    custom.patch_cluster_custom_object(
                        GATEWAY_API, "v1", "gatewayclasses", meta["name"], patch
                    )
                    labelled.append(meta["name"])

    thread = threading.Thread(target=label, daemon=True)
    thread.start()
    try:
        yield labelled
    finally:
        stop.set()
        thread.join(timeout=10)


def test_gateway_api_conformance_matches_traefiks_own_report(
    traffic: Traffic, tmp_path: Path
) -> None:
    suite = conformance.build()
    traffic.lab.import_images(conformance.backend_images(suite))
    name = "edge-conformance"
    traffic.gateway(name, gateway_api=True, listener_ports=LISTENER_PORTS)
    ready = condition(traffic.gateways.get(name), "GatewayAPIReady")
    assert ready is not None
    assert ready["status"] == "True", ready
    # The echo backend's catch-all route (every host and path of port 80) would answer
    # what the suite expects no route for.
    traffic.remove_route(name)

    report = Path(os.environ.get("EDGE_OPERATOR_CONFORMANCE_REPORT") or tmp_path / "report.yaml")
    report.parent.mkdir(parents=True, exist_ok=True)
    traefik_version = traefik.DEFAULT_IMAGE.rsplit(":", 1)[1]
    client = traffic.lab.topology.clients[-1].name
    cls = traffic.cluster.custom.get_cluster_custom_object(
        GATEWAY_API, "v1", "gatewayclasses", name
    )
    claimed = [f["name"] for f in (cls.get("status") or {}).get("supportedFeatures") or []]
    features = tuple(sorted(set(claimed) - set(NOT_SERVED)))
    print(f"\nfeatures Traefik claims on {name}: {len(claimed)}; tested: {', '.join(features)}")
    with serving_other_classes(traffic, name) as labelled:
        result = conformance.run(
            traffic.lab.root,
            traffic.lab.kubeconfig,
            client,
            suite,
            gateway_class=name,
            report=report,
            supported_features=features,
            profiles=PROFILES,
            skip_tests=SKIPPED,
            implementation={
                "organization": "edge-operator",
                "project": "edge-operator",
                "url": "https://github.com/edge-operator/edge-operator",
                "version": f"v{__version__} (traefik {traefik_version})",
                "contact": "@edge-operator/maintainers",
            },
        )
    outcomes = conformance.results(result.log)
    counts = {k: sum(1 for v in outcomes.values() if v == k) for k in ("PASS", "FAIL", "SKIP")}
    print(
        f"\nconformance {suite.version} {','.join(PROFILES)} from {client}: {result.seconds:.0f} s,"
        f" exit {result.returncode}, tests {counts}; log {result.log}; report {report};"
        f" the suite's classes labelled to be served: {labelled}"
    )
    failed = sorted(t for t, v in outcomes.items() if v == "FAIL")
    assert report.exists(), f"no report (exit {result.returncode}); see {result.log}"
    ours = yaml.safe_load(report.read_text())
    theirs = yaml.safe_load(conformance.traefik_report(traefik_version, suite.version).read_text())
    for profile in ours.get("profiles") or []:
        print(f"  {profile['name']}: {profile.get('summary')}")
        for level in ("core", "extended"):
            print(f"    {level}: {(profile.get(level) or {}).get('statistics')}")
    problems = [p for name in PROFILES for p in conformance.shortfalls(ours, theirs, name)]
    assert not problems, f"{problems}; failed: {failed}; see {result.log}"
    assert not failed, f"failed: {failed}; see {result.log}"
    assert result.returncode == 0, f"the suite exited {result.returncode}; see {result.log}"
