"""Gateways on the lab's real nodes, and HTTP requests sent through them from clients.

Every request here is a real TCP connection opened in a client's network namespace,
through the lab's load balancer (or the CDN, or straight to a node), to a real
Traefik pod and on to the echo backend, which answers with what it saw.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Self

from kubernetes import client as k8s

import lab
from edge_operator import names
from tests.e2e.cluster import Cluster, Gateways, condition, wait_for

NS = names.DEFAULT_NAMESPACE
#: The load balancer checks every second and acts on two results in a row; the pods'
#: preStop delay and minReadySeconds follow (3 s).
FAST_CHECK = {"intervalSeconds": 1, "unhealthyThreshold": 2}
FORGED = "1.2.3.4"


@dataclass
class Gateway:
    name: str
    address: str  # the load balancer's address for the gateway's Service
    node_ports: dict[str, int]  # Service port name -> nodePort
    health_check_node_port: int


@dataclass
class Tally:
    """Outcomes of a batch of requests: every failure counted, none hidden."""

    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ok + sum(self.failures.values())

    def __str__(self) -> str:
        failed = sum(self.failures.values())
        return f"{self.total} requests, {failed} failed {dict(self.failures) or ''}".strip()


class Traffic:
    """Gateways made by one test, each with an Ingress from its class to the echo backend."""

    def __init__(self, running_lab: lab.Lab, cluster: Cluster, gateways: Gateways) -> None:
        self.lab = running_lab
        self.cluster = cluster
        self.gateways = gateways
        self.networking = k8s.NetworkingV1Api(cluster.api)
        self.ingresses: list[str] = []

    # --- gateways ---------------------------------------------------------------------

    def gateway(
        self,
        name: str,
        client_ip: dict[str, Any] | None = None,
        service: dict[str, Any] | None = None,
        rollout: dict[str, Any] | None = None,
        nodes: list[str] | None = None,
    ) -> Gateway:
        """Create a gateway on the lab's edge candidates and wait until it serves.

        Serving means: Ready, its Service has the load balancer's address, the load
        balancer finds every edge node healthy, and a request through it reaches the
        echo backend (Traefik reports ready on /ping before it has loaded its routes).
        ``nodes``: edge nodes by name (default: every edge candidate, by selector).
        """
        spec: dict[str, Any] = {
            "nodes": (
                {"names": nodes}
                if nodes is not None
                else {"selector": {"matchLabels": {"nodepool": "edge"}}}
            ),
            "rollout": rollout or {"loadBalancerHealthCheck": FAST_CHECK},
        }
        if client_ip:
            spec["clientIP"] = client_ip
        if service:
            spec["service"] = service
        self.gateways.create(name, spec)
        self._ingress(name)
        self.gateways.wait_condition(name, "Ready", "True", timeout=120)
        gw = self._describe(name)
        # Under Cluster the load balancer checks kube-proxy itself: every node passes.
        everywhere = (service or {}).get("externalTrafficPolicy") == "Cluster"
        serving = {n.name for n in self.lab.topology.nodes if everywhere or n.pool == "edge"}
        self.wait_healthy(name, serving if everywhere or nodes is None else set(nodes))
        self.wait_serving(gw)
        return gw

    def _describe(self, name: str) -> Gateway:
        svc = self.cluster.service(NS, name)
        ingress = (svc.get("status", {}).get("loadBalancer", {}) or {}).get("ingress") or []
        return Gateway(
            name=name,
            address=ingress[0]["ip"],
            node_ports={p["name"]: p["nodePort"] for p in svc["spec"]["ports"]},
            health_check_node_port=svc["spec"].get("healthCheckNodePort", 0),
        )

    def _ingress(self, name: str) -> None:
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name, "namespace": lab.APPS},
            "spec": {
                "ingressClassName": name,
                "rules": [
                    {
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": "echo", "port": {"number": 80}}
                                    },
                                }
                            ]
                        }
                    }
                ],
            },
        }
        self.networking.create_namespaced_ingress(lab.APPS, body)
        self.ingresses.append(name)

    def cleanup(self) -> None:
        for name in self.ingresses:
            self.networking.delete_namespaced_ingress(name, lab.APPS)

    # --- the load balancer --------------------------------------------------------------

    def lb_health(self, name: str) -> dict[str, bool]:
        """Node -> healthy, as the load balancer sees the gateway's Service now."""
        svc = self.lab.load_balancer().get(f"{NS}/{name}", {})
        return {node: bool(h["healthy"]) for node, h in svc.get("nodes", {}).items()}

    def wait_healthy(self, name: str, nodes: set[str], timeout: float = 60) -> dict[str, bool]:
        """Wait until the load balancer finds exactly ``nodes`` healthy."""

        def exact() -> dict[str, bool] | None:
            health = self.lb_health(name)
            up = {node for node, ok in health.items() if ok}
            return health if health and up == nodes else None

        return wait_for(
            exact, f"load balancer: exactly {sorted(nodes)} healthy for {name}", timeout
        )

    def wait_serving(self, gw: Gateway, client: str = "client-1") -> None:
        def serves() -> bool:
            try:
                status, _ = self.lab.request(client, gw.address, path="/json")
            except OSError:
                return False
            return status == 200

        wait_for(serves, f"a 200 from the echo backend through {gw.name}", timeout=60)

    # --- requests -----------------------------------------------------------------------

    def get(
        self, client: str, host: str, port: int = 80, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """What the echo backend saw of one request from ``client``."""
        status, body = self.lab.request(client, host, port=port, headers=headers)
        assert status == 200, f"{status}: {body}"
        seen: dict[str, Any] = json.loads(body)
        return seen

    def many(
        self,
        client: str,
        host: str,
        count: int,
        port: int = 80,
        headers: dict[str, str] | None = None,
    ) -> Tally:
        """``count`` requests, each on a new connection (so the load balancer picks a
        node for each), sent one after another from ``client``'s namespace."""

        def send() -> Tally:
            tally = Tally()
            for _ in range(count):
                try:
                    status, body = lab.http_get(host, port, "/json", headers)
                except (OSError, http.client.HTTPException) as error:
                    tally.failures[type(error).__name__] += 1
                    continue
                if 200 <= status < 300:
                    tally.ok += 1
                    tally.seen.append(json.loads(body))
                else:
                    tally.failures[f"HTTP {status}"] += 1
            return tally

        return lab.net.call_in(client, send)

    # --- the cluster ------------------------------------------------------------------

    def controller_pods(self, name: str) -> list[dict[str, Any]]:
        """The gateway's controller pods, whatever their state."""
        selector = f"{names.GATEWAY_LABEL}={name},{names.COMPONENT_LABEL}=controller"
        return self.cluster.pods(NS, selector)

    def controller_pod_ips(self, name: str) -> dict[str, str]:
        """Pod IP -> node of the gateway's ready controller pods."""
        return {
            p["status"]["podIP"]: p["spec"]["nodeName"]
            for p in self.controller_pods(name)
            if ready(p)
        }


def ready(pod: dict[str, Any]) -> bool:
    return (condition(pod, "Ready") or {}).get("status") == "True"


class Poller:
    """Calls ``poll`` every ``period`` seconds in a thread of its own while a ``with``
    block runs, until ``poll`` returns True or the block ends."""

    period = 0.1

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def poll(self) -> bool:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            if self.poll():
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
