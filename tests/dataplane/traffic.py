"""Gateways on the lab's real nodes, and HTTP requests sent through them from clients.

Every request here is a real TCP connection opened in a client's network namespace,
through the lab's load balancer (or the CDN, or straight to a node), to a real
Traefik pod and on to the echo backend, which answers with what it saw.
"""

from __future__ import annotations

import functools
import http.client
import itertools
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

import lab
from edge_operator import api, names
from edge_operator.desired.deployment import pre_stop_seconds
from lab import lb
from lab.load import Load, Outcome, Results
from tests.e2e.cluster import Cluster, Gateways, condition, ignore_not_found, wait_for

NS = names.DEFAULT_NAMESPACE
#: The load balancer checks every second and acts on two results in a row; the pods'
#: minReadySeconds follows (3 s), and their preStop delay (4 s: one interval more).
FAST_CHECK = {"intervalSeconds": 1, "unhealthyThreshold": 2}
FORGED = "1.2.3.4"
GATEWAY_API = names.GATEWAY_API_GROUP
#: Set on each request by the HTTPRoute of Traffic.http_route: proof that it routed it.
ROUTE_HEADER = "X-Edge-Route"
#: The load every disruption test runs: >= 100 requests/s on new connections and 6
#: keep-alive connections at 15/s each, plus slow requests across the pods' SIGTERM.
NEW_RATE, KEEP_ALIVE, KEEP_ALIVE_RATE = 100.0, 6, 15.0
#: The slowest two seconds in a row of a disruption must still see half the load
#: succeed, and no success may take longer than this (a dropped SYN is retransmitted
#: after 1 s). Two seconds, not one: the load's threads send one request after another,
#: so a pause of the machine's two shared cores (a proxy starting on an edge node) sends
#: fewer in one second with every request answered; the data path stalling shows in the
#: latency bound and in the failures, which count every request.
MIN_SHARE_PER_SECOND, MAX_LATENCY = 0.5, 1.0
LOAD_PER_SECOND = NEW_RATE + KEEP_ALIVE * KEEP_ALIVE_RATE

#: A slow request starts every SLOW_EVERY s and is answered SLOW_MARGIN s after the
#: preStop delay: those started in the last SLOW_MARGIN s before a pod starts to leave
#: are still on their way at its SIGTERM (a dozen per pod, of which about a quarter land
#: on a given pod).
SLOW_EVERY, SLOW_MARGIN = 0.25, 3.0


def assert_steady(results: Results, start: float, end: float) -> None:
    """Half the load succeeded in every two seconds in a row from ``start`` to ``end``."""
    seconds = results.per_second(start, end)
    assert len(seconds) >= 2, f"less than two whole seconds measured: {seconds}"
    pairs = [a + b for a, b in itertools.pairwise(seconds)]
    assert min(pairs) >= 2 * MIN_SHARE_PER_SECOND * LOAD_PER_SECOND, (
        f"successes per second: {seconds}"
    )


def slow_delay(gw: Gateway) -> float:
    return gw.pre_stop + SLOW_MARGIN


@dataclass
class Gateway:
    name: str
    address: str  # the load balancer's address for the gateway's Service
    node_ports: dict[str, int]  # Service port name -> nodePort
    health_check_node_port: int
    pre_stop: int = 0  # the controller pods' preStop delay, seconds


def lb_annotations(
    check: api.LoadBalancerHealthCheck, deregistration_delay: float | None
) -> dict[str, str]:
    """The lab load balancer's own settings, as a cloud reads them from annotations."""
    settings = {
        lb.INTERVAL_ANNOTATION: str(check.interval_seconds),
        lb.THRESHOLD_ANNOTATION: str(check.unhealthy_threshold),
    }
    if deregistration_delay is not None:
        settings[lb.DEREGISTRATION_ANNOTATION] = str(deregistration_delay)
    return settings


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
        self.routes: list[str] = []  # Gateway API Gateways and HTTPRoutes, by name

    # --- gateways ---------------------------------------------------------------------

    def gateway(
        self,
        name: str,
        client_ip: dict[str, Any] | None = None,
        service: dict[str, Any] | None = None,
        rollout: dict[str, Any] | None = None,
        nodes: list[str] | None = None,
        *,
        lb_check: dict[str, int] | None = None,
        deregistration_delay: float | None = None,
        controller: dict[str, Any] | None = None,
        gateway_api: bool = False,
        listener_ports: tuple[int, ...] = (),
        ingress_nginx: dict[str, Any] | None = None,
    ) -> Gateway:
        """Create a gateway on the lab's edge candidates and wait until it serves.

        Serving means: Ready, its Service has the load balancer's address, the load
        balancer finds every edge node healthy, and a request through it reaches the
        echo backend (Traefik reports ready on /ping before it has loaded its routes).
        ``nodes``: edge nodes by name (default: every edge candidate, by selector).
        The load balancer's health check is ``lb_check`` (default: what the gateway
        declares in ``rollout``), set like a cloud's by Service annotations, and so is
        its ``deregistration_delay`` (default: the lab's, 15 s). With ``gateway_api`` the
        gateway serves its GatewayClass, and a Gateway API Gateway and HTTPRoute of the
        class route to the echo backend instead of an Ingress, and ``listener_ports`` are
        its gatewayAPI.listenerPorts. ``ingress_nginx`` is its spec.ingressNGINX.
        """
        rollout = rollout or {"loadBalancerHealthCheck": FAST_CHECK}
        declared = api.Rollout.model_validate(rollout)
        check = (
            api.LoadBalancerHealthCheck.model_validate(lb_check)
            if lb_check
            else declared.load_balancer_health_check
        )
        service = dict(service or {})
        service["annotations"] = {
            **lb_annotations(check, deregistration_delay),
            **service.get("annotations", {}),
        }
        spec: dict[str, Any] = {
            "nodes": (
                {"names": nodes}
                if nodes is not None
                else {"selector": {"matchLabels": {"nodepool": "edge"}}}
            ),
            "rollout": rollout,
            "service": service,
        }
        if client_ip:
            spec["clientIP"] = client_ip
        if controller:
            spec["controller"] = controller
        if gateway_api:
            spec["gatewayAPI"] = {"enabled": True, "listenerPorts": list(listener_ports)}
        if ingress_nginx:
            spec["ingressNGINX"] = ingress_nginx
        self.gateways.create(name, spec)
        if gateway_api:
            self.http_route(name)
        else:
            self.ingress(name)
        self.gateways.wait_condition(name, "Ready", "True", timeout=120)
        gw = self.describe(name)
        gw.pre_stop = pre_stop_seconds(declared)
        # Under Cluster the load balancer checks kube-proxy itself: every node passes.
        everywhere = service.get("externalTrafficPolicy") == "Cluster"
        serving = {n.name for n in self.lab.topology.nodes if everywhere or n.pool == "edge"}
        self.wait_healthy(name, serving if everywhere or nodes is None else set(nodes))
        self.wait_serving(gw)
        return gw

    def describe(self, name: str) -> Gateway:
        svc = self.cluster.service(NS, name)
        ingress = (svc.get("status", {}).get("loadBalancer", {}) or {}).get("ingress") or []
        return Gateway(
            name=name,
            address=ingress[0]["ip"],
            node_ports={p["name"]: p["nodePort"] for p in svc["spec"]["ports"]},
            health_check_node_port=svc["spec"].get("healthCheckNodePort", 0),
        )

    def ingress(self, name: str) -> None:
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

    def http_route(self, name: str) -> None:
        """A Gateway of the gateway's class with one HTTP listener on port 80 (the Service's)
        and an HTTPRoute of it to the echo backend, which marks what it routes with
        ROUTE_HEADER; both in the backend's namespace. Waits until the Gateway is
        Programmed with the load balancer's address and the route Accepted."""
        custom = self.cluster.custom
        gateway = {
            "apiVersion": f"{GATEWAY_API}/v1",
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": lab.APPS},
            "spec": {
                "gatewayClassName": name,
                "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
            },
        }
        route = {
            "apiVersion": f"{GATEWAY_API}/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": lab.APPS},
            "spec": {
                "parentRefs": [{"name": name}],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                        "filters": [
                            {
                                "type": "RequestHeaderModifier",
                                "requestHeaderModifier": {
                                    "set": [{"name": ROUTE_HEADER, "value": name}]
                                },
                            }
                        ],
                        "backendRefs": [{"name": "echo", "port": 80}],
                    }
                ],
            },
        }
        custom.create_namespaced_custom_object(GATEWAY_API, "v1", lab.APPS, "gateways", gateway)
        custom.create_namespaced_custom_object(GATEWAY_API, "v1", lab.APPS, "httproutes", route)
        self.routes.append(name)

        def programmed() -> dict[str, Any] | None:
            got: dict[str, Any] = custom.get_namespaced_custom_object(
                GATEWAY_API, "v1", lab.APPS, "gateways", name
            )
            ok = (condition(got, "Programmed") or {}).get("status") == "True"
            return got if ok and (got.get("status") or {}).get("addresses") else None

        wait_for(programmed, f"Gateway {lab.APPS}/{name} Programmed with an address", 120)

        def accepted() -> bool:
            got = custom.get_namespaced_custom_object(
                GATEWAY_API, "v1", lab.APPS, "httproutes", name
            )
            parents = (got.get("status") or {}).get("parents") or []
            return any(
                c.get("type") == "Accepted" and c.get("status") == "True"
                for parent in parents
                for c in parent.get("conditions") or []
            )

        wait_for(accepted, f"HTTPRoute {lab.APPS}/{name} Accepted", 60)

    def cleanup(self) -> None:
        for name in self.ingresses:
            self.networking.delete_namespaced_ingress(name, lab.APPS)
        for name in list(self.routes):  # a test may add a Gateway of its own, without a route
            self.remove_route(name)

    def remove_route(self, name: str) -> None:
        """Delete the Gateway and HTTPRoute ``name`` of the echo backend (a test that needs
        the class without the catch-all route)."""
        for plural in ("httproutes", "gateways"):
            ignore_not_found(
                functools.partial(
                    self.cluster.custom.delete_namespaced_custom_object,
                    GATEWAY_API, "v1", lab.APPS, plural, name,
                )
            )  # fmt: skip
        self.routes.remove(name)

    # --- the load balancer --------------------------------------------------------------

    def lb_health(self, name: str) -> dict[str, bool]:
        """Node -> whether the load balancer sends the gateway's new connections there
        now: healthy, and not yet deregistered for its exclusion label."""
        svc = self.lab.load_balancer().get(f"{NS}/{name}", {})
        return {
            node: bool(h["healthy"]) and bool(h.get("inPool", True))
            for node, h in svc.get("nodes", {}).items()
        }

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

    def raw_get(
        self,
        client: str,
        host: str,
        lines: Iterable[tuple[str, str]],
        port: int = 80,
        host_header: str = "gateway.example",
    ) -> dict[str, Any]:
        """What the echo backend saw of one GET whose header lines are sent exactly as
        given (any name, any case, the same name twice), from ``client``'s namespace."""
        head = f"GET /json HTTP/1.1\r\nHost: {host_header}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in lines)
        head += "Connection: close\r\n\r\n"

        def send() -> tuple[int, bytes]:
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(head.encode())
                response = http.client.HTTPResponse(sock)
                try:
                    response.begin()
                    return response.status, response.read()
                finally:
                    response.close()  # its file holds the socket open past `with`

        status, body = lab.net.call_in(client, send)
        assert status == 200, f"{status}: {body[:300]!r}"
        seen: dict[str, Any] = json.loads(body)
        return seen

    def load(self, gw: Gateway, client: str = "") -> Load:
        """The disruption tests' load through the gateway's load-balancer address: new
        connections, keep-alive connections and slow requests that outlast the pods'
        preStop delay, each answered by the echo backend on a worker."""
        return Load(
            client or self.lab.topology.clients[0].name,
            gw.address,
            backend_nodes={n.name for n in self.lab.topology.workers},
            new_rate=NEW_RATE,
            keep_alive=KEEP_ALIVE,
            keep_alive_rate=KEEP_ALIVE_RATE,
            slow_delay=slow_delay(gw),
            slow_every=SLOW_EVERY,
        )

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


@dataclass
class Leaving:
    """A controller pod seen leaving: when it got its deletionTimestamp (monotonic)."""

    name: str
    ip: str
    node: str
    deleted_at: float


class PodWatcher(Poller):
    """Every 100 ms: the gateway's controller pods, and when each started to leave."""

    def __init__(self, traffic: Traffic, gateway: str) -> None:
        super().__init__()
        self.traffic, self.gateway = traffic, gateway
        self.leaving: dict[str, Leaving] = {}

    def poll(self) -> bool:
        try:
            pods = self.traffic.controller_pods(self.gateway)
        except ApiException:
            return False
        now = time.monotonic()
        for pod in pods:
            name, ip = pod["metadata"]["name"], pod.get("status", {}).get("podIP", "")
            if pod["metadata"].get("deletionTimestamp") and ip and name not in self.leaving:
                self.leaving[name] = Leaving(name, ip, pod["spec"].get("nodeName", ""), now)
        return False


@contextmanager
def disruption(traffic: Traffic, gw: Gateway, what: str) -> Iterator[Disrupted]:
    """Run the gateway's load and a PodWatcher around a disruption; on leaving the block
    check everything the data path promises, print the counts, and fail on any miss.

        with disruption(traffic, gw, "edge-1 drained") as d:
            ...  # disrupt, and wait until it is over
            d.end()  # the disruption window ends here (default: the end of the block)
    """
    load, watcher = traffic.load(gw), PodWatcher(traffic, gw.name)
    with load, watcher:
        time.sleep(3)
        done = Disrupted(time.monotonic())
        yield done
        done.ended = done.ended or time.monotonic()
        # Connections of the leaving pods end within a drain; let that pass under load.
        time.sleep(gw.pre_stop)
    results = load.stop()
    done.check(results, watcher.leaving, gw, what)


@dataclass
class Disrupted:
    started: float
    ended: float = 0.0
    leaving: dict[str, Leaving] = field(default_factory=dict)

    def end(self) -> None:
        self.ended = time.monotonic()

    def check(self, results: Results, leaving: dict[str, Leaving], gw: Gateway, what: str) -> None:
        self.leaving = leaving
        window = (self.started, self.ended)
        print(f"{what}: {results.summary(*window)}")
        print(
            "  leaving pods: "
            + ", ".join(
                f"{p.name} ({p.ip} on {p.node}, +{p.deleted_at - self.started:.1f} s)"
                for p in leaving.values()
            )
        )
        failures = [
            (round(o.at - self.started, 2), o.kind, o.reused, o.error) for o in results.failures
        ]
        assert failures == [], f"{len(failures)} failed requests (s after the start): {failures}"
        assert_steady(results, *window)
        assert results.max_latency() <= MAX_LATENCY, f"slowest: {results.max_latency():.3f} s"
        assert leaving, "no controller pod left: nothing was disrupted"
        ips = {p.ip: p for p in leaving.values()}
        # A keep-alive connection was on a pod that left, after the disruption began.
        held = results.keep_alive_proxies(since=self.started)
        on_leaving = [c for c, proxies in held.items() if proxies & ips.keys()]
        assert on_leaving, f"no keep-alive connection on a leaving pod: {held}"
        while_leaving = {
            o.connection
            for o in results.of(("keep-alive",))
            if o.proxy in ips and o.at >= ips[o.proxy].deleted_at
        }
        # A slow request was on its way on a leaving pod when that pod got SIGTERM (its
        # preStop delay over), and it completed.
        slow, delay = results.of(("slow",)), slow_delay(gw)
        late = [round(o.latency, 2) for o in slow if not delay <= o.latency <= delay + 2]
        assert late == [], f"slow requests ({delay} s) answered after: {late}"
        across = [o for o in slow if o.proxy in ips and _spans(o, ips[o.proxy], gw.pre_stop)]
        print(
            f"  {len(on_leaving)} keep-alive connections on leaving pods ({len(while_leaving)}"
            f" used after the pod started to leave), {len(across)} slow"
            f" requests ({delay} s) in flight across a leaving pod's SIGTERM"
        )
        assert across, "no slow request was in flight on a leaving pod at its SIGTERM"


def _spans(o: Outcome, pod: Leaving, pre_stop: int) -> bool:
    sigterm = pod.deleted_at + pre_stop
    return o.at < sigterm < o.at + o.latency
