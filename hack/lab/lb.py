"""The lab's cloud load balancer: one process, run by ``lab up``.

    python3 hack/lab lb --root DIR [--interval S] [--threshold N] [--deregistration-delay S]

For every Service of type LoadBalancer (without a loadBalancerClass) it does what a
cloud's L4 load balancer does:

- hands out an address from 203.0.113.0/24 and writes it to ``status.loadBalancer``;
- health-checks every node: under externalTrafficPolicy Local
  ``http://NODE:healthCheckNodePort/healthz`` (kube-proxy answers 200 only where a
  ready endpoint runs), under Cluster kube-proxy's own ``http://NODE:10256/healthz``;
  a node changes state after ``threshold`` results in a row, checked every
  ``interval`` seconds. Like a cloud's, these are the load balancer's own settings,
  not what the gateway declares: the Service annotations below (as a cloud reads its
  own annotations), else ``--interval``/``--threshold``, else 10 s and 3;
- takes a node labelled ``node.kubernetes.io/exclude-from-external-load-balancers``
  out of the pool only after a deregistration delay (annotation below, else
  ``--deregistration-delay``, else 15 s), the time a cloud's service controller and
  its API take to act on the label. A drain is thus seen first by the health checks,
  which the pods' preStop delay is sized for;
- forwards the address's ports to the healthy nodes of the pool, picked at random per
  connection, with nftables DNAT in the ``lb`` namespace: no SNAT, so nodes see the
  client's own address; connections already forwarded stay on their node. With the
  annotation ``lab.edgeoperator.dev/load-balancer-mode: proxy-protocol`` HAProxy
  proxies instead, sending a PROXY v2 header with the client's address (and doing the
  same health checks itself).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import localcluster
from lab import LB, VIP_NETWORK, net, proxies

MODE_ANNOTATION = "lab.edgeoperator.dev/load-balancer-mode"
INTERVAL_ANNOTATION = "lab.edgeoperator.dev/health-check-interval-seconds"
THRESHOLD_ANNOTATION = "lab.edgeoperator.dev/health-check-threshold"
DEREGISTRATION_ANNOTATION = "lab.edgeoperator.dev/deregistration-delay-seconds"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
KUBE_PROXY_HEALTH_PORT = 10256
DEFAULT_INTERVAL, DEFAULT_THRESHOLD, DEFAULT_DEREGISTRATION = 10, 3, 15
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
    deregistration_delay: float


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


def _float(value: object, default: float) -> float:
    try:
        return float(str(value))
    except ValueError:
        return default


class LoadBalancer:
    def __init__(
        self,
        root: Path,
        interval: int | None,
        threshold: int | None,
        deregistration_delay: float | None = None,
    ) -> None:
        self.root = root
        self.api = localcluster.api(root / "cluster")
        self.interval = interval or DEFAULT_INTERVAL
        self.threshold = threshold or DEFAULT_THRESHOLD
        self.deregistration_delay = (
            DEFAULT_DEREGISTRATION if deregistration_delay is None else deregistration_delay
        )
        self.wanted: dict[str, Wanted] = {}
        self.nodes: dict[str, str] = {}  # name -> InternalIP
        #: Node -> when the load balancer first saw its exclusion label (monotonic).
        self.excluded_since: dict[str, float] = {}
        self.health: dict[tuple[str, str], Health] = {}
        self.pending: dict[tuple[str, str], Future[str]] = {}
        self.pool = ThreadPoolExecutor(16, initializer=net.enter, initargs=(LB,))
        self.applied: tuple[str, str] | None = None
        self.local_vips: set[str] = set()
        #: Address -> the Service it was serving when conntrack last saw it.
        self.vip_owner: dict[str, str] = {}
        self.state_file = root / "lb" / "state.json"
        self.state_file.parent.mkdir(parents=True, exist_ok=True)

    # --- facts -------------------------------------------------------------------------

    def _get(self, path: str) -> Any:
        return json.loads(self.api.call("GET", path))

    def sync(self) -> None:
        """Read Services and Nodes; publish addresses; work out what to serve."""
        nodes = self._get("/api/v1/nodes")["items"]
        self.nodes = {
            n["metadata"]["name"]: addr["address"]
            for n in nodes
            for addr in n.get("status", {}).get("addresses", [])
            if addr["type"] == "InternalIP"
        }
        excluded = {
            n["metadata"]["name"]
            for n in nodes
            if EXCLUDE_LABEL in (n["metadata"].get("labels") or {})
        }
        now = time.monotonic()
        self.excluded_since = {
            node: self.excluded_since.get(node, now) for node in excluded if node in self.nodes
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
            interval = _int(annotations.get(INTERVAL_ANNOTATION), self.interval)
            threshold = _int(annotations.get(THRESHOLD_ANNOTATION), self.threshold)
            delay = _float(annotations.get(DEREGISTRATION_ANNOTATION), self.deregistration_delay)
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
                deregistration_delay=max(0.0, delay),
            )
        self.wanted = wanted
        self._forget_flows()
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

    def in_pool(self, key: str, node: str) -> bool:
        """False once the node's exclusion label is older than the deregistration delay."""
        since = self.excluded_since.get(node)
        delay = self.wanted[key].deregistration_delay
        return since is None or time.monotonic() - since < delay

    def _healthy(self, key: str) -> list[str]:
        return sorted(
            self.nodes[n]
            for (k, n), h in self.health.items()
            if k == key and h.healthy and self.in_pool(k, n)
        )

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
                    if self.in_pool(w.key, name)
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

    def _forget_flows(self) -> None:
        """Delete the connection-tracking entries of every address whose Service is gone
        or changed. An address goes to the next Service at once, and the kernel would
        send a new connection whose ports match a flow it still tracks (one that timed
        out in SYN_SENT stays 2 minutes) to the old Service's nodePort, which refuses
        it: a cloud's new listener has no such memory."""
        owners = {w.vip: w.key for w in self.wanted.values()}
        for vip, key in self.vip_owner.items():
            if owners.get(vip) != key:
                net.run("conntrack", "-D", "-d", vip, ns=LB, check=False)
        self.vip_owner = owners

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
                "deregistrationDelaySeconds": w.deregistration_delay,
                "nodes": {
                    node: {
                        "healthy": h.healthy,
                        "inPool": self.in_pool(key, node),
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


def serve(
    root: Path, interval: int | None, threshold: int | None, deregistration_delay: float | None
) -> None:
    """Run the load balancer until SIGTERM; then stop forwarding."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    signal.signal(signal.SIGTERM, _exit)
    balancer = LoadBalancer(root, interval, threshold, deregistration_delay)
    try:
        balancer.run()
    finally:
        net.nft(LB, f"add table ip {TABLE}\ndelete table ip {TABLE}\n")
        localcluster.stop_process(root, "lb-proxy")
