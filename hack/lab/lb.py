"""The lab's cloud load balancer: one process, run by ``lab up``.

    python3 hack/lab lb --root DIR [--interval S] [--threshold N]

For every Service of type LoadBalancer (without a loadBalancerClass) it does what a
cloud's L4 load balancer does:

- hands out an address from 203.0.113.0/24 and writes it to ``status.loadBalancer``;
- health-checks every node that is not labelled
  ``node.kubernetes.io/exclude-from-external-load-balancers``: under
  externalTrafficPolicy Local ``http://NODE:healthCheckNodePort/healthz`` (kube-proxy
  answers 200 only where a ready endpoint runs), under Cluster kube-proxy's own
  ``http://NODE:10256/healthz``; a node changes state after ``threshold`` results in a
  row, checked every ``interval`` seconds. Both default to the owning EdgeGateway's
  ``spec.rollout.loadBalancerHealthCheck``; ``--interval``/``--threshold`` or the
  Service annotations below override them;
- forwards the address's ports to healthy nodes' nodePorts, picked at random per
  connection, with nftables DNAT in the ``lb`` namespace: no SNAT, so nodes see the
  client's own address. With the annotation ``lab.edgeoperator.dev/load-balancer-mode:
  proxy-protocol`` HAProxy proxies instead, sending a PROXY v2 header with the client's
  address (and doing the same health checks itself).

It writes what it knows to ``DIR/lb/state.json`` for tests and people to read.
"""

from __future__ import annotations

import http.client
import json
import logging
import signal
import time
import urllib.error
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import localcluster
from lab import LB, VIP_NETWORK, net, proxies

MODE_ANNOTATION = "lab.edgeoperator.dev/load-balancer-mode"
INTERVAL_ANNOTATION = "lab.edgeoperator.dev/health-check-interval-seconds"
THRESHOLD_ANNOTATION = "lab.edgeoperator.dev/health-check-threshold"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
GATEWAY_LABEL = "edgeoperator.dev/gateway"
KUBE_PROXY_HEALTH_PORT = 10256
DEFAULT_INTERVAL, DEFAULT_THRESHOLD = 10, 3
SYNC_SECONDS = 0.5
TICK_SECONDS = 0.05
TABLE = "eo-lb"
log = logging.getLogger("lab.lb")


@dataclass(frozen=True)
class Port:
    port: int
    node_port: int


@dataclass(frozen=True)
class Wanted:
    """A LoadBalancer Service as the load balancer serves it."""

    key: str  # namespace/name
    vip: str
    mode: str  # "nat" or "proxy-protocol"
    ports: tuple[Port, ...]
    check_port: int
    interval: int
    threshold: int


@dataclass
class Health:
    healthy: bool = False
    streak: int = 0  # results in a row that disagree with `healthy`
    last: str = "unchecked"
    checks: int = 0
    changed_at: float = field(default_factory=time.time)
    due: float = 0.0


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


class LoadBalancer:
    def __init__(self, root: Path, interval: int | None, threshold: int | None) -> None:
        self.root = root
        self.api = localcluster.api(root / "cluster")
        self.interval, self.threshold = interval, threshold
        self.wanted: dict[str, Wanted] = {}
        self.nodes: dict[str, str] = {}  # name -> InternalIP
        self.health: dict[tuple[str, str], Health] = {}
        self.pending: dict[tuple[str, str], Future[str]] = {}
        self.pool = ThreadPoolExecutor(16, initializer=net.enter, initargs=(LB,))
        self.applied: tuple[str, str] | None = None
        self.local_vips: set[str] = set()
        self.state_file = root / "lb" / "state.json"
        self.state_file.parent.mkdir(parents=True, exist_ok=True)

    # --- facts -------------------------------------------------------------------------

    def _get(self, path: str) -> Any:
        return json.loads(self.api.call("GET", path))

    def _gateway_checks(self) -> dict[str, tuple[int, int]]:
        """Each EdgeGateway's (intervalSeconds, unhealthyThreshold); none without the CRD."""
        try:
            gateways = self._get("/apis/edgeoperator.dev/v1alpha1/edgegateways")["items"]
        except urllib.error.HTTPError:
            return {}
        checks = {}
        for gw in gateways:
            with suppress(KeyError, TypeError, ValueError):
                check = gw["spec"]["rollout"]["loadBalancerHealthCheck"]
                checks[gw["metadata"]["name"]] = (
                    int(check["intervalSeconds"]),
                    int(check["unhealthyThreshold"]),
                )
        return checks

    def sync(self) -> None:
        """Read Services and Nodes; publish addresses; work out what to serve."""
        nodes = self._get("/api/v1/nodes")["items"]
        self.nodes = {
            n["metadata"]["name"]: addr["address"]
            for n in nodes
            if EXCLUDE_LABEL not in (n["metadata"].get("labels") or {})
            for addr in n.get("status", {}).get("addresses", [])
            if addr["type"] == "InternalIP"
        }
        services = [
            s
            for s in self._get("/api/v1/services")["items"]
            if s["spec"].get("type") == "LoadBalancer" and not s["spec"].get("loadBalancerClass")
        ]
        taken = {
            i.get("ip")
            for s in services
            for i in (s.get("status", {}).get("loadBalancer", {}).get("ingress") or [])
        }
        checks = self._gateway_checks() if services else {}
        wanted = {}
        for svc in services:
            meta, spec = svc["metadata"], svc["spec"]
            key = f"{meta['namespace']}/{meta['name']}"
            ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []
            vip = next((i["ip"] for i in ingress if i.get("ip", "").startswith(VIP_NETWORK)), None)
            if vip is None:
                vip = next(
                    f"{VIP_NETWORK}.{i}"
                    for i in range(10, 255)
                    if f"{VIP_NETWORK}.{i}" not in taken
                )
                taken.add(vip)
                self.api.call(
                    "PATCH",
                    f"/api/v1/namespaces/{meta['namespace']}/services/{meta['name']}/status",
                    {"status": {"loadBalancer": {"ingress": [{"ip": vip, "ipMode": "VIP"}]}}},
                    content_type="application/merge-patch+json",
                )
                log.info("%s: address %s", key, vip)
            annotations = meta.get("annotations") or {}
            gateway = (meta.get("labels") or {}).get(GATEWAY_LABEL, "")
            interval, threshold = checks.get(gateway, (DEFAULT_INTERVAL, DEFAULT_THRESHOLD))
            interval = _int(annotations.get(INTERVAL_ANNOTATION), self.interval or interval)
            threshold = _int(annotations.get(THRESHOLD_ANNOTATION), self.threshold or threshold)
            local = spec.get("externalTrafficPolicy") == "Local"
            wanted[key] = Wanted(
                key=key,
                vip=vip,
                mode=annotations.get(MODE_ANNOTATION, "nat"),
                ports=tuple(
                    Port(p["port"], p["nodePort"])
                    for p in spec.get("ports", [])
                    if p.get("nodePort") and p.get("protocol", "TCP") == "TCP"
                ),
                check_port=spec.get("healthCheckNodePort", 0) if local else KUBE_PROXY_HEALTH_PORT,
                interval=max(1, interval),
                threshold=max(1, threshold),
            )
        self.wanted = wanted
        keep = {(k, n) for k in wanted for n in self.nodes}
        for gone in set(self.health) - keep:
            del self.health[gone]
        for target in keep - set(self.health):
            self.health[target] = Health()

    # --- health ------------------------------------------------------------------------

    def _check(self, address: str, port: int, timeout: float) -> str:
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            return str(response.status)
        except (OSError, http.client.HTTPException) as error:
            return type(error).__name__
        finally:
            conn.close()

    def check(self) -> bool:
        """Start due checks and take finished ones; True if a node changed state."""
        now, changed = time.monotonic(), False
        for target, future in list(self.pending.items()):
            if not future.done():
                continue
            del self.pending[target]
            health = self.health.get(target)
            if health is None:
                continue
            result = future.result()
            health.last, health.checks = result, health.checks + 1
            if (result == "200") != health.healthy:
                health.streak += 1
                if health.streak >= self.wanted[target[0]].threshold:
                    health.healthy, health.streak = not health.healthy, 0
                    health.changed_at = time.time()
                    changed = True
                    state = "healthy" if health.healthy else f"unhealthy ({result})"
                    log.info("%s: node %s is %s", target[0], target[1], state)
            else:
                health.streak = 0
        for target, health in self.health.items():
            wanted = self.wanted[target[0]]
            if target in self.pending or now < health.due or not wanted.check_port:
                continue
            health.due = now + wanted.interval
            address = self.nodes[target[1]]
            timeout = min(2.0, float(wanted.interval))
            self.pending[target] = self.pool.submit(
                self._check, address, wanted.check_port, timeout
            )
        return changed

    # --- forwarding --------------------------------------------------------------------

    def _healthy(self, key: str) -> list[str]:
        return sorted(self.nodes[n] for (k, n), h in self.health.items() if k == key and h.healthy)

    def _nat_ruleset(self) -> str:
        rules = []
        for w in self.wanted.values():
            healthy = self._healthy(w.key)
            if w.mode != "nat" or not healthy:
                continue
            targets = ", ".join(f"{i} : {a}" for i, a in enumerate(healthy))
            for p in w.ports:
                rules.append(
                    f"    ip daddr {w.vip} tcp dport {p.port} dnat to"
                    f" numgen random mod {len(healthy)} map {{ {targets} }} : {p.node_port}"
                )
        body = "\n".join(rules)
        return (
            f"add table ip {TABLE}\ndelete table ip {TABLE}\n"
            f"table ip {TABLE} {{\n  chain prerouting {{\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            f"{body}\n  }}\n}}\n"
        )

    def _proxy_config(self) -> str:
        frontends = []
        for w in sorted(self.wanted.values(), key=lambda w: w.key):
            if w.mode != "proxy-protocol" or not w.check_port:
                continue
            slug = w.key.replace("/", "_")
            for p in w.ports:
                backends = tuple(
                    proxies.Backend(name, address, p.node_port)
                    for name, address in sorted(self.nodes.items())
                )
                frontends.append(
                    proxies.Frontend(
                        name=f"{slug}_{p.port}",
                        address=w.vip,
                        port=p.port,
                        backends=backends,
                        check_port=w.check_port,
                        check_path="/healthz",
                        interval_seconds=w.interval,
                        threshold=w.threshold,
                    )
                )
        return proxies.proxy_protocol_config(frontends) if frontends else ""

    def forward(self) -> None:
        ruleset, proxy = self._nat_ruleset(), self._proxy_config()
        if (ruleset, proxy) == self.applied:
            return
        net.nft(LB, ruleset)
        vips = {w.vip for w in self.wanted.values() if w.mode == "proxy-protocol"}
        for vip in vips - self.local_vips:
            net.ip("addr", "add", f"{vip}/32", "dev", "lo", ns=LB)
        for vip in self.local_vips - vips:
            net.run("ip", "addr", "del", f"{vip}/32", "dev", "lo", ns=LB, check=False)
        self.local_vips = vips
        if proxy:
            proxies.run(self.root, "lb-proxy", LB, proxy)
        else:
            localcluster.stop_process(self.root, "lb-proxy")
        self.applied = (ruleset, proxy)

    def write_state(self) -> None:
        state = {
            key: {
                "address": w.vip,
                "mode": w.mode,
                "checkPort": w.check_port,
                "intervalSeconds": w.interval,
                "threshold": w.threshold,
                "nodes": {
                    node: {
                        "healthy": h.healthy,
                        "last": h.last,
                        "checks": h.checks,
                        "changedAt": h.changed_at,
                    }
                    for (k, node), h in sorted(self.health.items())
                    if k == key
                },
            }
            for key, w in sorted(self.wanted.items())
        }
        tmp = self.state_file.with_name(".state.json.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_file)

    def run(self) -> None:
        next_sync = 0.0
        while True:
            synced = time.monotonic() >= next_sync
            if synced:
                next_sync = time.monotonic() + SYNC_SECONDS
                try:
                    self.sync()
                except (OSError, urllib.error.HTTPError, http.client.HTTPException) as error:
                    log.warning("reading the cluster failed: %s", error)
            changed = self.check()
            self.forward()
            if changed or synced:
                self.write_state()
            time.sleep(TICK_SECONDS)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(root: Path, interval: int | None, threshold: int | None) -> None:
    """Run the load balancer until SIGTERM; then stop forwarding."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    signal.signal(signal.SIGTERM, _exit)
    balancer = LoadBalancer(root, interval, threshold)
    try:
        balancer.run()
    finally:
        net.nft(LB, f"add table ip {TABLE}\ndelete table ip {TABLE}\n")
        localcluster.stop_process(root, "lb-proxy")
