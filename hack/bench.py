#!/usr/bin/env python3
"""`make bench`: what the operator costs on a large cluster, as one Markdown table.

    python hack/bench.py [--nodes 2000] [--gateways 20] [--idle 600] [--joins 20]
                         [--dir DIR] [--keep]

A benchmark, not a test: it starts a local control plane of its own
(hack/localcluster.py, in DIR/cluster), creates N realistic kwok nodes (~12 KB of
JSON each, like real ones) and then measures, in one run:

1. the floor: the objects the operator would create for G gateways (its own
   renderer: ``Reconciler.plan``, as ``edge-operator plan``), the node labels,
   taints and annotations included, applied by ``kubectl apply --server-side`` and
   timed until every Deployment is Available and every Service has its address;
   all of it is deleted and the nodes restored before the operator starts;
2. the operator (``python -m edge_operator run``, as the operator's own identity):
   start -> /readyz 200, its RSS, then the G EdgeGateways applied at once and timed
   until every one is Ready;
3. an idle window (from 150 s after the nodes were created, when kwok's heartbeats
   run): the operator's write requests (audit log), its CPU (/proc) and the node
   update rate of the cluster (kube-apiserver /metrics);
4. node joins: a new node carrying a gateway's selector label, timed from the
   create call until a watch sees the operator's label on it.

Both timed applies start once the control plane has calmed down (QUIET_PCT) from
what came before, so that neither pays for the other's aftermath.

The bench plays the cloud's load-balancer controller (a Service of type
LoadBalancer gets a 192.0.2.x address) in the floor and in the operator run alike.

Every node must stay Ready for the whole run, or the figures are noise: the
controller-manager gets --node-monitor-grace-period=1h and kwok a heartbeat
regime like a real kubelet's (node status every ~5 min; see KWOK_STAGES). A
NodeNotReady event, or a node not Ready at the end, makes the run invalid (exit 2).
Exit 0 means it ran, whether or not the budgets were met (the table says which).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import http.client
import importlib
import json
import math
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from operator import contains
from pathlib import Path
from typing import Any

import yaml

import chart
import localcluster
from edge_operator import names

ROOT = Path(__file__).resolve().parents[1]

# --- the regime that keeps every node Ready -------------------------------------------------

#: The node lifecycle controller marks a node Unknown (NodeNotReady) when neither its
#: status nor its Lease moved for this long. kwok runs no node Leases here (they slow
#: its pod handling down, see localcluster.py), so the status heartbeat is all it sees.
GRACE_PERIOD = "1h"
#: kwok's node status heartbeat: each node every 150-450 s, uniformly (mean 300 s: a
#: kubelet with Leases reports an unchanged status every 5 min, its
#: nodeStatusReportFrequency). The spread keeps nodes created together from all
#: beating in the same second 5 minutes later; a steady state of N/300 updates/s
#: is reached 150 s after the nodes are created.
HEARTBEAT_MS = (150_000, 450_000)
HEARTBEAT_MEAN_S = sum(HEARTBEAT_MS) / 2 / 1000
HEARTBEAT_REGIME = (
    f"kwok node status every {HEARTBEAT_MS[0] // 1000}-{HEARTBEAT_MS[1] // 1000} s"
    f" (mean {HEARTBEAT_MEAN_S:.0f} s), no node Leases,"
    f" node-monitor-grace-period {GRACE_PERIOD}"
)
#: kwok --config. Given any Node Stage, kwok v0.7.0 uses none of its default Node Stages
#: (pkg/kwok/cmd/root.go: the defaults only when no Node Stage is configured), so both
#: are here: node-initialize verbatim from kustomize/stage/node/fast/node-initialize.yaml
#: (for a node that is not Ready), and the heartbeat of kustomize/stage/node/heartbeat
#: with the delay above. Its default would be heartbeat-with-lease's 600-610 s: root.go
#: picks that one when leases are off (getDefaultNodeStages(NodeLeaseDurationSeconds == 0)),
#: longer than localcluster.py's 120 s grace period, so nodes flap there. Pod Stages
#: are not given, so kwok keeps its defaults for pods.
KWOK_STAGES = localcluster.kwok_stages(*HEARTBEAT_MS)

# --- what the bench creates -------------------------------------------------------------------

BENCH_LABEL = "bench.edgeoperator.dev/node"
GROUP_LABEL = "bench.edgeoperator.dev/group"
JOIN_LABEL = "bench.edgeoperator.dev/join"
REGION = "bench-region-1"
ZONES = tuple(f"{REGION}{z}" for z in "abc")
NODES_PER_GATEWAY = 3
#: The floor's field manager: applying Node stubs with it again restores the nodes.
FLOOR_MANAGER = "bench-floor"
#: minReadySeconds becomes 2 s and the preStop delay 3 s (as in the e2e tests): the
#: default 40 s would be a constant that both runs wait out and the ratio hides.
ROLLOUT = {"loadBalancerHealthCheck": {"intervalSeconds": 1, "unhealthyThreshold": 1}}
MANAGED = f"{names.MANAGED_BY_LABEL}={names.MANAGED_BY_VALUE}"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
READ_HTTP_VERBS = frozenset({"GET", "LIST", "WATCH", "CONNECT"})
#: Wait for every gateway (or the floor's Deployments) at most this long.
CONVERGE_TIMEOUT = 900.0
POLL = 0.25
#: After convergence, before the idle window starts.
SETTLE_SECONDS = 5.0
#: Before each timed apply, the control plane must have calmed down to this (percent of
#: one core, all its processes together) from what came before (2,000 node creations, a
#: floor being deleted): both runs start from the same quiet cluster.
QUIET_PCT = 30.0
QUIET_TIMEOUT = 180.0

# --- budgets (the issue) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    start_s: float
    rss_mb: float


BUDGETS = {2000: Budget(10.0, 150.0), 5000: Budget(30.0, 300.0)}
APPLY_RATIO = 1.2
IDLE_CPU_PCT = 1.0
JOIN_P95_S = 1.0
BUDGET_IDLE_S = 600


def budget_for(nodes: int) -> Budget | None:
    """The budget of the smallest size the run fits in; none above 5,000 nodes."""
    return next((BUDGETS[size] for size in sorted(BUDGETS) if nodes <= size), None)


class BenchError(Exception):
    """The benchmark could not run."""


class InvalidRunError(Exception):
    """The benchmark ran, but its figures are not to be trusted (e.g. a node flapped)."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- a small API client (keep-alive connections, watches) ------------------------------------


class ApiError(BenchError):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path}: {status} {body[:300].decode(errors='replace')}")
        self.status = status


class Client:
    """The local cluster's API as its admin: one keep-alive connection per thread."""

    def __init__(self, cluster: Path) -> None:
        base = urllib.parse.urlsplit(localcluster.api(cluster).base)
        self.host, self.port = base.hostname or "127.0.0.1", base.port or 443
        pki = cluster / "pki"
        self.context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        self._local = threading.local()

    def connection(self, timeout: float = 30.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=timeout
        )

    def raw(
        self,
        method: str,
        path: str,
        body: object = None,
        content_type: str = "application/json",
        data: bytes | None = None,
    ) -> bytes:
        """The response body; ``data``: the request body already encoded (else ``body``)."""
        if data is None and body is not None:
            data = json.dumps(body).encode()
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        for attempt in (1, 2):
            conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self.connection()
            try:
                conn.request(method, path, body=data, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                # A keep-alive connection the server closed: once more on a new one.
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
                continue
            if response.status >= 300:
                raise ApiError(method, path, response.status, payload)
            return payload
        raise AssertionError("unreachable")

    def call(
        self, method: str, path: str, body: object = None, content_type: str = "application/json"
    ) -> Any:
        payload = self.raw(method, path, body, content_type)
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def items(self, path: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(path)["items"]
        return found

    def pages(self, path: str, limit: int = 500) -> Iterator[dict[str, Any]]:
        """Every item of a collection, ``limit`` at a time (only one page in memory)."""
        sep = "&" if "?" in path else "?"
        token = ""
        while True:
            page = self.get(f"{path}{sep}limit={limit}&continue={urllib.parse.quote(token)}")
            yield from page["items"]
            token = page["metadata"].get("continue") or ""
            if not token:
                return

    def watch(
        self, path: str, on_event: Callable[[str, dict[str, Any]], None], stop: threading.Event
    ) -> threading.Thread:
        """Follow ``path`` (a collection, query allowed) from now on in a daemon thread:
        on_event(type, object) for each ADDED/MODIFIED/DELETED, the initial list included."""
        sep = "&" if "?" in path else "?"
        listed = self.get(path)
        for obj in listed["items"]:
            on_event("ADDED", obj)
        version = listed["metadata"]["resourceVersion"]

        def follow() -> None:
            nonlocal version
            while not stop.is_set():
                conn = self.connection(timeout=90)
                query = (
                    f"watch=1&allowWatchBookmarks=true&timeoutSeconds=60&resourceVersion={version}"
                )
                try:
                    conn.request("GET", f"{path}{sep}{query}")
                    response = conn.getresponse()
                    if response.status != 200:
                        raise ApiError("WATCH", path, response.status, response.read())
                    while not stop.is_set():
                        line = response.readline()
                        if not line:
                            break
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            # 410 Gone: start again from a fresh list.
                            version = self.get(path)["metadata"]["resourceVersion"]
                            break
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            on_event(event["type"], obj)
                except (OSError, http.client.HTTPException, ValueError, BenchError) as error:
                    if not stop.is_set():
                        log(f"watch {path}: {error}; again in 1 s")
                        time.sleep(1)
                finally:
                    conn.close()

        thread = threading.Thread(target=follow, name=f"watch {path}", daemon=True)
        thread.start()
        return thread


# --- realistic nodes --------------------------------------------------------------------------

#: Images a node of a typical cluster has pulled: the kubelet reports up to 50 of them,
#: each with its digest and tag names. Most of a real node's ~12 KB is this list.
IMAGES = (
    ("registry.k8s.io/kube-proxy", "v1.36.3", 31_422_108),
    ("registry.k8s.io/pause", "3.10", 320_368),
    ("registry.k8s.io/coredns/coredns", "v1.12.1", 22_384_805),
    ("registry.k8s.io/metrics-server/metrics-server", "v0.8.0", 20_621_483),
    ("registry.k8s.io/sig-storage/csi-node-driver-registrar", "v2.14.0", 11_938_551),
    ("registry.k8s.io/sig-storage/livenessprobe", "v2.16.0", 10_938_145),
    ("registry.k8s.io/sig-storage/csi-provisioner", "v5.3.0", 30_152_912),
    ("registry.k8s.io/sig-storage/csi-attacher", "v4.9.0", 28_937_103),
    ("registry.k8s.io/sig-storage/csi-resizer", "v1.14.0", 29_337_261),
    ("registry.k8s.io/sig-storage/csi-snapshotter", "v8.3.0", 28_112_443),
    ("registry.k8s.io/ingress-nginx/controller", "v1.13.3", 112_839_123),
    ("registry.k8s.io/ingress-nginx/kube-webhook-certgen", "v1.6.3", 24_113_521),
    ("registry.k8s.io/kube-state-metrics/kube-state-metrics", "v2.16.0", 21_012_389),
    ("registry.k8s.io/node-problem-detector/node-problem-detector", "v0.8.21", 43_521_998),
    ("registry.k8s.io/cluster-proportional-autoscaler", "v1.10.2", 12_493_003),
    ("public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver", "v1.48.0", 63_021_445),
    ("public.ecr.aws/efs-csi-driver/amazon/aws-efs-csi-driver", "v2.1.11", 41_002_391),
    ("quay.io/cilium/cilium", "v1.18.2", 231_442_019),
    ("quay.io/cilium/operator-generic", "v1.18.2", 29_871_112),
    ("quay.io/cilium/hubble-relay", "v1.18.2", 21_993_441),
    ("quay.io/calico/node", "v3.30.3", 149_200_331),
    ("quay.io/calico/cni", "v3.30.3", 93_882_004),
    ("quay.io/calico/typha", "v3.30.3", 31_228_714),
    ("quay.io/prometheus/node-exporter", "v1.9.1", 11_894_117),
    ("quay.io/prometheus-operator/prometheus-config-reloader", "v0.85.0", 14_012_883),
    ("quay.io/jetstack/cert-manager-controller", "v1.18.2", 19_339_017),
    ("quay.io/jetstack/cert-manager-webhook", "v1.18.2", 17_004_223),
    ("quay.io/jetstack/cert-manager-cainjector", "v1.18.2", 16_332_910),
    ("docker.io/fluent/fluent-bit", "4.0.9", 36_552_170),
    ("docker.io/grafana/promtail", "3.5.5", 79_201_337),
    ("docker.io/grafana/alloy", "v1.10.2", 142_019_442),
    ("docker.io/traefik", "v3.5.3", 52_337_610),
    ("docker.io/istio/proxyv2", "1.27.1", 98_220_371),
    ("docker.io/istio/install-cni", "1.27.1", 55_102_943),
    ("docker.io/datadog/agent", "7.70.2", 402_118_775),
    ("docker.io/library/busybox", "1.37.0", 2_155_632),
    ("docker.io/library/nginx", "1.29.1-alpine", 21_734_880),
    ("docker.io/library/redis", "8.2.1-alpine", 17_991_203),
    ("ghcr.io/external-secrets/external-secrets", "v0.19.2", 44_810_226),
    ("ghcr.io/kedacore/keda", "2.17.2", 38_990_311),
    ("ghcr.io/fluxcd/source-controller", "v1.6.2", 33_402_170),
    ("ghcr.io/aquasecurity/trivy-operator", "0.28.0", 61_440_912),
    ("mcr.microsoft.com/oss/kubernetes/kube-proxy", "v1.36.3-hotfix.20251015", 33_881_400),
    ("registry.k8s.io/kube-proxy", "v1.35.6", 31_102_774),
    ("registry.k8s.io/coredns/coredns", "v1.11.3", 18_562_039),
    ("quay.io/cilium/cilium", "v1.17.8", 226_113_900),
    (
        "quay.io/cilium/cilium-envoy",
        "v1.34.7-1757592137-1a52bb680a956879722f48c591a2ca90f7791324",
        64_331_892,
    ),
    ("docker.io/fluent/fluent-bit", "3.2.10", 35_001_662),
    ("docker.io/grafana/alloy", "v1.9.2", 139_882_010),
    ("docker.io/datadog/agent", "7.69.4", 398_551_047),
    ("docker.io/istio/proxyv2", "1.26.4", 97_003_182),
    (
        "public.ecr.aws/eks-distro/kubernetes-csi/external-provisioner",
        "v5.3.0-eks-1-33-latest",
        31_874_190,
    ),
    (
        "public.ecr.aws/eks-distro/kubernetes-csi/livenessprobe",
        "v2.16.0-eks-1-33-latest",
        11_443_203,
    ),
    (
        "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni",
        "v1.20.2-eksbuild.1",
        47_302_166,
    ),
    (
        "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni-init",
        "v1.20.2-eksbuild.1",
        61_114_800,
    ),
)


def _hex(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


def _images(name: str) -> list[dict[str, Any]]:
    # Digests are the images', the same on every node; each node lacks a few of them.
    skip = int(_hex(name, 4), 16) % 11
    return [
        {
            "names": [f"{repo}@sha256:{_hex(repo + tag, 64)}", f"{repo}:{tag}"],
            "sizeBytes": size,
        }
        for i, (repo, tag, size) in enumerate(IMAGES)
        if i % 11 != skip or i < 3
    ]


def node_body(
    name: str, index: int, zone: str, labels: Mapping[str, str], kubelet_version: str
) -> dict[str, Any]:
    """A Node as a kubelet on a cloud VM registers it, Ready, and kept Ready by kwok."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    instance = f"i-0{_hex(name, 16)}"
    ip = f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"
    capacity = {
        "cpu": "16",
        "ephemeral-storage": "209702892Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "65021928Ki",
        "pods": "110",
    }
    allocatable = {
        **capacity,
        "cpu": "15890m",
        "ephemeral-storage": "192188443124",
        "memory": "64004072Ki",
    }

    def condition(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": "m6i.4xlarge",
                "beta.kubernetes.io/os": "linux",
                "failure-domain.beta.kubernetes.io/region": REGION,
                "failure-domain.beta.kubernetes.io/zone": zone,
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m6i.4xlarge",
                "topology.kubernetes.io/region": REGION,
                "topology.kubernetes.io/zone": zone,
                "topology.ebs.csi.aws.com/zone": zone,
                "k8s.io/cloud-provider-aws": _hex(REGION, 32),
                "eks.amazonaws.com/nodegroup": "bench-general",
                "eks.amazonaws.com/capacityType": "ON_DEMAND",
                "type": "kwok",
                BENCH_LABEL: "true",
                **labels,
            },
            "annotations": {
                localcluster.KWOK_ANNOTATION[0]: localcluster.KWOK_ANNOTATION[1],
                "alpha.kubernetes.io/provided-node-ip": ip,
                "csi.volume.kubernetes.io/nodeid": json.dumps(
                    {"ebs.csi.aws.com": instance, "efs.csi.aws.com": instance}
                ),
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "providerID": f"kwok://{REGION}/{zone}/{instance}",
            "podCIDR": f"100.{64 + (index >> 8) % 64}.{index & 255}.0/24",
            "podCIDRs": [f"100.{64 + (index >> 8) % 64}.{index & 255}.0/24"],
        },
        "status": {
            "phase": "Running",  # kwok's heartbeat Stage selects Running nodes
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "InternalDNS", "address": f"ip-{ip.replace('.', '-')}.ec2.internal"},
                {"type": "Hostname", "address": f"ip-{ip.replace('.', '-')}.ec2.internal"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": _hex(f"machine {name}", 32),
                "systemUUID": "ec2{}-{}-{}-{}-{}".format(
                    *(
                        _hex(f"uuid {name}", 29)[a:b]
                        for a, b in ((0, 5), (5, 9), (9, 13), (13, 17), (17, 29))
                    )
                ),
                "bootID": _hex(f"boot {name}", 32),
                "kernelVersion": "6.8.0-1031-aws",
                "osImage": "Ubuntu 24.04.3 LTS",
                "containerRuntimeVersion": "containerd://2.1.4",
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": _images(name),
        },
    }


@dataclass(frozen=True)
class Fleet:
    """The bench's nodes and gateways: gateway i selects nodes 3i..3i+2 (one per zone)."""

    nodes: int
    gateways: int

    def gateway(self, i: int) -> str:
        return f"bench-g{i:02d}"

    def group(self, i: int) -> str:
        return f"g{i:02d}"

    def node_name(self, i: int) -> str:
        return f"bench-node-{i:05d}"

    def node(self, i: int, kubelet_version: str) -> dict[str, Any]:
        labels = {"nodepool": "general"}
        if i < self.gateways * NODES_PER_GATEWAY:
            labels = {"nodepool": "edge", GROUP_LABEL: self.group(i // NODES_PER_GATEWAY)}
        return node_body(self.node_name(i), i, ZONES[i % len(ZONES)], labels, kubelet_version)

    def join(self, j: int, kubelet_version: str) -> dict[str, Any]:
        """The j-th node to join: it carries gateway (j mod G)'s selector label."""
        labels = {
            "nodepool": "edge",
            GROUP_LABEL: self.group(j % self.gateways),
            JOIN_LABEL: "true",
        }
        return node_body(
            f"bench-join-{j:03d}", self.nodes + j, ZONES[j % len(ZONES)], labels, kubelet_version
        )

    def edge_gateway(self, i: int) -> dict[str, Any]:
        name = self.gateway(i)
        return {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {"name": name},
            "spec": {
                "nodes": {"selector": {"matchLabels": {GROUP_LABEL: self.group(i)}}},
                "controller": {"namespace": name},
                "rollout": ROLLOUT,
            },
        }

    def edge_gateways(self) -> list[dict[str, Any]]:
        return [self.edge_gateway(i) for i in range(self.gateways)]


def create_nodes(
    client: Client, count: int, body: Callable[[int], dict[str, Any]], threads: int = 4
) -> float:
    """Create body(0) .. body(count - 1) with a few threads; their mean size in bytes
    (compact JSON, as stored). Built as they go: 5,000 of them at once take 100s of MB."""

    def create(i: int) -> int:
        data = json.dumps(body(i), separators=(",", ":"))
        try:
            client.raw("POST", "/api/v1/nodes", data=data.encode())
        except ApiError as error:
            if error.status != 409:  # it exists already
                raise
        return len(data)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        sizes = list(pool.map(create, range(count)))
    return sum(sizes) / len(sizes)


# --- the operator process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_ok(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6  # kB (KiB) -> MB, as the budgets are
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Operator:
    """``edge-operator run`` as users run it out of cluster (INFO logs, metrics on, no
    leader election: its Lease renewals would be writes), as the operator's identity."""

    cluster: Path
    name: str = "edge-operator"
    pid: int = 0
    health_port: int = 0

    def start(self) -> float:
        """Start it; return the seconds until /readyz answers 200."""
        self.health_port = free_port()
        argv = [
            sys.executable, "-m", "edge_operator", "run",
            "--kubeconfig", str(localcluster.operator_kubeconfig(self.cluster)),
            "--health-port", str(self.health_port),
            "--metrics-port", str(free_port()),
            "--probe-edge-nodes", "off",  # kwok nodes' addresses are not on this machine
            "--log-level", "INFO",
        ]  # fmt: skip
        started = time.monotonic()
        self.pid = localcluster.start_process(self.cluster, self.name, argv)
        deadline = started + 300
        while not http_ok(self.health_port, "/readyz"):
            if localcluster.process_pid(self.cluster, self.name) is None:
                raise BenchError(f"the operator exited during start-up:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"the operator was not ready after 300 s:\n{self.tail()}")
            time.sleep(0.02)
        return time.monotonic() - started

    def alive(self) -> bool:
        return localcluster.process_pid(self.cluster, self.name) == self.pid

    def tail(self, lines: int = 40) -> str:
        path = localcluster.log_path(self.cluster, self.name)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# --- the cluster's side: readiness, the load balancer, NodeNotReady, metrics, audit ---------


def control_plane_seconds(cluster: Path) -> float:
    """CPU seconds used so far by the control plane's processes together."""
    pids = [p for n in localcluster.COMPONENTS if (p := localcluster.process_pid(cluster, n))]
    return sum(cpu_seconds(p) for p in pids)


def control_plane_cpu(cluster: Path, seconds: float = 3.0) -> float:
    """CPU of the control plane's processes over ``seconds``, in percent of one core."""
    before = control_plane_seconds(cluster)
    time.sleep(seconds)
    return 100 * (control_plane_seconds(cluster) - before) / seconds


def wait_quiet(cluster: Path, what: str) -> float:
    """Wait until the control plane is quiet (QUIET_PCT), at most QUIET_TIMEOUT; its load."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    while (load := control_plane_cpu(cluster)) > QUIET_PCT and time.monotonic() < deadline:
        pass
    quiet = (
        "" if load <= QUIET_PCT else f" (not below {QUIET_PCT:.0f} % after {QUIET_TIMEOUT:.0f} s)"
    )
    log(f"control plane at {load:.0f} % of a core before {what}{quiet}")
    return load


def kubectl(cluster: Path, *args: str) -> str:
    command = [str(localcluster.kubectl_path()), "--kubeconfig", str(cluster / "kubeconfig"), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise BenchError(f"kubectl {' '.join(args[:3])} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def condition_true(obj: Mapping[str, Any], type_: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


class LoadBalancer:
    """Plays the cloud's load-balancer controller: a Service of type LoadBalancer made
    by (or like) the operator gets an address, as tests/e2e assign_load_balancer does."""

    def __init__(self, client: Client, stop: threading.Event) -> None:
        self.client = client
        self.assigned: dict[str, str] = {}
        client.watch(
            f"/api/v1/services?labelSelector={urllib.parse.quote(MANAGED)}", self._seen, stop
        )

    def _seen(self, kind: str, svc: dict[str, Any]) -> None:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        key = f"{meta['namespace']}/{meta['name']}"
        has = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
        if kind == "DELETED" or spec.get("type") != "LoadBalancer" or has:
            return
        ip = self.assigned.setdefault(key, f"192.0.2.{len(self.assigned) % 254 + 1}")
        path = f"/api/v1/namespaces/{meta['namespace']}/services/{meta['name']}/status"
        patch = {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
        try:
            self.client.call("PATCH", path, patch, "application/merge-patch+json")
        except ApiError as error:
            log(f"load balancer: cannot publish {ip} for {key}: {error}")


def not_ready_events(client: Client) -> list[dict[str, Any]]:
    """NodeNotReady Events in any namespace: the node lifecycle controller's on a Node
    whose Ready condition left True, and on each pod it then marks not ready."""
    return client.items("/api/v1/events?fieldSelector=reason%3DNodeNotReady")


def node_readiness(client: Client) -> tuple[int, list[str]]:
    """(bench nodes, names of those not Ready)."""
    total, not_ready = 0, []
    for node in client.pages(f"/api/v1/nodes?labelSelector={urllib.parse.quote(BENCH_LABEL)}"):
        total += 1
        if not condition_true(node, "Ready"):
            not_ready.append(node["metadata"]["name"])
    return total, not_ready


def check_valid(client: Client, when: str) -> None:
    """Raise InvalidRunError if any NodeNotReady Event exists (the run's own cluster)."""
    events = not_ready_events(client)
    if not events:
        return
    nodes = sorted(
        f"{e['involvedObject'].get('name')} ({e.get('lastTimestamp') or e.get('eventTime')})"
        for e in events
        if e["involvedObject"].get("kind") == "Node"
    )
    shown = ", ".join(nodes[:5]) + (" ..." if len(nodes) > 5 else "")
    raise InvalidRunError(
        f"{len(events)} NodeNotReady Event(s) by {when}: {len(nodes)} on Nodes ({shown}),"
        f" {len(events) - len(nodes)} on pods"
    )


_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def node_writes(client: Client) -> float:
    """kube-apiserver's count of write requests to Nodes (status included), all clients."""
    total = 0.0
    for line in client.raw("GET", "/metrics").decode().splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(1)))
        if labels.get("resource") == "nodes" and labels.get("verb") not in READ_HTTP_VERBS:
            total += float(match.group(2))
    return total


def operator_writes(audit: Path, start: float, end: float) -> Counter[str]:
    """The operator identity's write requests received in [start, end] (epoch seconds),
    by verb and resource, from the audit log and its rotated backups."""
    found: Counter[str] = Counter()
    for path in sorted(audit.parent.glob(f"{audit.stem}*{audit.suffix}")):
        with path.open(errors="replace") as lines:
            for line in lines:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    entry = json.loads(line)
                    if (
                        entry.get("stage") != "ResponseComplete"
                        or entry["user"]["username"] != localcluster.OPERATOR_USER
                        or entry["verb"] not in WRITE_VERBS
                    ):
                        continue
                    at = datetime.fromisoformat(entry["requestReceivedTimestamp"]).timestamp()
                    if start <= at <= end:
                        ref = entry.get("objectRef") or {}
                        sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
                        found[f"{entry['verb']} {ref.get('resource', '?')}{sub}"] += 1
    return found


def wait_until(
    probe: Callable[[], bool],
    timeout: float,
    what: str,
    check: Callable[[str], None] | None = None,
) -> bool:
    """Poll ``probe`` until it holds (True) or ``timeout`` passes (False); every 10 s,
    ``check(what)`` may end the wait by raising (InvalidRunError: a node flapped)."""
    deadline = time.monotonic() + timeout
    last_log = last_check = time.monotonic()
    while not probe():
        now = time.monotonic()
        if now > deadline:
            return False
        if check is not None and now - last_check >= 10:
            check(f"the wait for {what}")
            last_check = now
        if now - last_log >= 60:
            log(f"still waiting for {what}")
            last_log = now
        time.sleep(POLL)
    return True


# --- the floor --------------------------------------------------------------------------------


def _node_stub(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def _node_object(name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
    """The operator's merge patch of a node as a server-side apply object."""
    node = _node_stub(name)
    meta = patch.get("metadata") or {}
    for key in ("labels", "annotations"):
        node["metadata"][key] = {k: v for k, v in (meta.get(key) or {}).items() if v is not None}
    if meta.get("finalizers"):
        node["metadata"]["finalizers"] = list(meta["finalizers"])
    if "spec" in patch:
        node["spec"] = patch["spec"]
    return node


def _plan(kubeconfig: Path, nodes: Iterable[Mapping[str, Any]]) -> Callable[[Any], Any]:
    """The operator's Reconciler.plan (what ``edge-operator plan`` prints), its node cache
    filled with ``nodes``. Imported by name: the operator's modules move in refactors."""
    from edge_operator.facts import NodeFacts  # noqa: PLC0415
    from edge_operator.kube import Kube  # noqa: PLC0415 - the Kubernetes client is heavy
    from edge_operator.reconcile import Reconciler  # noqa: PLC0415

    for module in ("edge_operator.gather", "edge_operator.nodewatch", "edge_operator.reconcile"):
        with contextlib.suppress(ImportError, AttributeError):
            cache = importlib.import_module(module).NodeCache()
            break
    else:
        raise BenchError("cannot find the operator's NodeCache")
    cache.replace_all(NodeFacts.from_api(n) for n in nodes)
    plan: Callable[[Any], Any] = Reconciler(Kube.connect(str(kubeconfig)), cache).plan
    return plan


def render_floor(
    kubeconfig: Path, gateways: Sequence[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """What the operator would write for these gateways, as server-side apply objects: its
    own plan of each (``edge-operator plan``), read from the cluster.

    Node changes become Node objects with the labels, annotations, taints and finalizers
    the operator's patch sets; owned objects lose their ownerReferences (there is no
    gateway to own them, and the garbage collector would delete them at once).
    """
    namespaces: list[dict[str, Any]] = []
    edge_nodes: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    try:
        plan = _plan(kubeconfig, nodes)
        for gateway in gateways:
            name = gateway["metadata"]["name"]
            preview = plan(gateway)
            if preview.decision.refusal is not None:
                raise BenchError(f"the plan of {name} is refused: {preview.decision.refusal}")
            updates = [_node_object(u.name, u.patch()) for u in preview.decision.updates]
            desired = list(preview.workload.desired.values())
            if len(updates) != NODES_PER_GATEWAY:
                raise BenchError(f"the plan of {name} changes {len(updates)} nodes, not 3")
            edge_nodes += updates
            for obj in desired:
                meta = {k: v for k, v in obj["metadata"].items() if k != "ownerReferences"}
                bucket = namespaces if obj["kind"] == "Namespace" else objects
                bucket.append({**obj, "metadata": meta})
    except (AttributeError, ImportError, TypeError) as error:
        raise BenchError(
            "the floor uses the operator's plan (edge_operator.reconcile.Reconciler.plan, its"
            f" Preview's decision.updates and workload.desired), which has changed: {error!r}"
        ) from error
    return [*namespaces, *edge_nodes, *objects]


def floor_ready(client: Client, gateways: int) -> bool:
    deployments = client.items(
        f"/apis/apps/v1/deployments?labelSelector={urllib.parse.quote(MANAGED)}"
    )
    available = [
        d
        for d in deployments
        if (d.get("status") or {}).get("observedGeneration") == d["metadata"]["generation"]
        and (d.get("status") or {}).get("availableReplicas") == d["spec"]["replicas"]
        and (d.get("status") or {}).get("updatedReplicas") == d["spec"]["replicas"]
        and condition_true(d, "Available")
    ]
    services = client.items(f"/api/v1/services?labelSelector={urllib.parse.quote(MANAGED)}")
    addressed = [
        s
        for s in services
        if s["spec"].get("type") == "LoadBalancer"
        and ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    ]
    return len(available) >= gateways and len(addressed) >= gateways


def remove_floor(
    cluster: Path, client: Client, floor: Sequence[Mapping[str, Any]], work: Path
) -> None:
    """Delete what the floor created and give the nodes back what they had."""
    spaces = [o["metadata"]["name"] for o in floor if o["kind"] == "Namespace"]
    nodes = [o["metadata"]["name"] for o in floor if o["kind"] == "Node"]
    kubectl(cluster, "delete", "namespace", "--wait=false", *spaces)
    kubectl(cluster, "delete", "clusterrolebinding,ingressclass", "-l", names.GATEWAY_LABEL)
    # Applying only their names as the same field manager drops every field it set.
    stubs = work / "floor-restore.yaml"
    stubs.write_text(yaml.safe_dump_all([_node_stub(n) for n in nodes]))
    kubectl(cluster, "apply", "--server-side", f"--field-manager={FLOOR_MANAGER}", "-f", str(stubs))

    def gone() -> bool:
        left = {n["metadata"]["name"] for n in client.items("/api/v1/namespaces")}
        labelled = client.items(
            f"/api/v1/nodes?labelSelector={urllib.parse.quote(names.GATEWAY_LABEL)}"
        )
        return not left.intersection(spaces) and not labelled

    if not wait_until(gone, 600, "the floor's namespaces to go", partial(check_valid, client)):
        raise BenchError("the floor's namespaces or node labels are still there after 600 s")
    prefix = f"{names.GROUP}/"
    for node in client.items(f"/api/v1/nodes?labelSelector={urllib.parse.quote(GROUP_LABEL)}"):
        meta = node["metadata"]
        left = [
            key
            for key in [
                *(meta.get("labels") or {}),
                *(meta.get("annotations") or {}),
                *(meta.get("finalizers") or []),
            ]
            if key.startswith(prefix) or key.startswith(names.DEFAULT_ROLE_LABEL)
        ] + [t["key"] for t in (node.get("spec") or {}).get("taints") or []]
        if left:
            raise BenchError(f"node {meta['name']} kept {left} of the floor")


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Results:
    nodes: int
    gateways: int
    idle: int
    node_kb: float = 0.0
    start_s: float = math.nan
    rss_start: float = math.nan
    rss_converged: float = math.nan
    rss_idle: float = math.nan
    floor_s: float = math.nan
    floor_kubectl_s: float = math.nan
    #: The control plane's CPU (% of a core) before the floor and before the operator's apply.
    quiet: list[float] = field(default_factory=list)
    apply_s: float = math.nan
    writes: Counter[str] = field(default_factory=Counter)
    cpu_pct: float = math.nan
    node_rate: float = math.nan
    control_plane_pct: float = math.nan
    joins: list[float] = field(default_factory=list)
    join_misses: int = 0
    timeouts: list[str] = field(default_factory=list)
    ready_nodes: tuple[int, int] = (0, 0)
    invalid: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.dir.expanduser().resolve()
        self.cluster = self.work / "cluster"
        self.fleet = Fleet(args.nodes, args.gateways)
        self.stop = threading.Event()
        self.results = Results(args.nodes, args.gateways, args.idle)
        self.version = localcluster.k8s_version()
        self.created_at = time.monotonic()

    # -- phases --

    def start_cluster(self) -> Client:
        if self.cluster.exists():
            localcluster.down(self.cluster)  # a previous run's, by PID
        self.work.mkdir(parents=True, exist_ok=True)
        stages = self.work / "kwok-stages.yaml"
        stages.write_text(KWOK_STAGES)
        log(f"starting a control plane in {self.cluster} ({HEARTBEAT_REGIME})")
        localcluster.up(
            self.cluster, nodes=0, node_monitor_grace_period=GRACE_PERIOD, kwok_config=stages
        )
        return Client(self.cluster)

    def create_fleet(self, client: Client) -> None:
        log(f"creating {self.fleet.nodes} nodes with 4 threads")
        started = time.monotonic()
        size = create_nodes(
            client, self.fleet.nodes, partial(self.fleet.node, kubelet_version=self.version)
        )
        self.created_at = time.monotonic()
        self.results.node_kb = size / 1000
        log(
            f"created in {time.monotonic() - started:.1f} s"
            f" (~{self.results.node_kb:.1f} KB of JSON each)"
        )
        log("installing the chart (CRD, provider ClusterRoles; no operator pod), as e2e does")
        chart.helm(
            "upgrade", "--install", chart.RELEASE, str(chart.CHART),
            "--namespace", chart.NAMESPACE, "--create-namespace",
            *chart.set_args({"replicaCount": "0"}), "--wait", "--timeout", "2m",
            kubeconfig=self.cluster / "kubeconfig",
        )  # fmt: skip
        crd = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{names.CRD_NAME}"
        if not wait_until(lambda: condition_true(client.get(crd), "Established"), 60, "the CRD"):
            raise BenchError(f"CRD {names.CRD_NAME} not Established")

    def floor(self, client: Client) -> None:
        gateways = self.fleet.edge_gateways()
        nodes = client.pages(f"/api/v1/nodes?labelSelector={urllib.parse.quote(BENCH_LABEL)}")
        floor = render_floor(self.cluster / "kubeconfig", gateways, nodes)
        path = self.work / "floor.yaml"
        path.write_text(yaml.safe_dump_all(floor, sort_keys=False))
        kinds = Counter(o["kind"] for o in floor)
        log(
            f"floor: kubectl apply --server-side of {len(floor)} objects "
            f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})"
        )
        self.results.quiet.append(wait_quiet(self.cluster, "the floor"))
        started = time.monotonic()
        kubectl(self.cluster, "apply", "--server-side", f"--field-manager={FLOOR_MANAGER}",
                "-f", str(path))  # fmt: skip
        self.results.floor_kubectl_s = time.monotonic() - started
        log(f"floor: kubectl apply returned after {self.results.floor_kubectl_s:.1f} s")
        ready = partial(floor_ready, client, len(gateways))
        if wait_until(ready, CONVERGE_TIMEOUT, "the floor", partial(check_valid, client)):
            self.results.floor_s = time.monotonic() - started
        else:
            self.results.timeouts.append(
                f"the floor (not Available after {CONVERGE_TIMEOUT:.0f} s)"
            )
        log(f"floor: all Available with an address after {self.results.floor_s:.1f} s; removing it")
        remove_floor(self.cluster, client, floor, self.work)
        check_valid(client, "the end of the floor")

    def operator(self, client: Client, operator: Operator) -> None:
        log("starting the operator")
        self.results.start_s = operator.start()
        self.results.rss_start = rss_mb(operator.pid)
        log(
            f"operator ready after {self.results.start_s:.2f} s, "
            f"RSS {self.results.rss_start:.0f} MB"
        )
        path = self.work / "gateways.yaml"
        path.write_text(yaml.safe_dump_all(self.fleet.edge_gateways(), sort_keys=False))
        group = f"/apis/{names.GROUP}/{names.VERSION}/{names.PLURAL}"

        def all_ready() -> bool:
            gateways = client.items(group)
            ready = [
                g
                for g in gateways
                if condition_true(g, "Ready")
                and (g.get("status") or {}).get("observedGeneration") == g["metadata"]["generation"]
            ]
            return len(ready) >= self.fleet.gateways

        self.results.quiet.append(wait_quiet(self.cluster, "the gateways"))
        log(f"applying {self.fleet.gateways} EdgeGateways at once")
        started = time.monotonic()
        kubectl(self.cluster, "apply", "--server-side", "-f", str(path))
        log(f"kubectl apply returned after {time.monotonic() - started:.1f} s")
        valid = partial(check_valid, client)
        if wait_until(all_ready, CONVERGE_TIMEOUT, "every gateway Ready", valid):
            self.results.apply_s = time.monotonic() - started
        else:
            self.results.timeouts.append(
                f"apply -> all Ready (not every gateway Ready after {CONVERGE_TIMEOUT:.0f} s)"
            )
        log(f"all Ready after {self.results.apply_s:.1f} s")
        check_valid(client, "convergence")

    def idle(self, client: Client, operator: Operator) -> None:
        time.sleep(SETTLE_SECONDS)
        self.results.rss_converged = rss_mb(operator.pid)
        log(f"converged: RSS {self.results.rss_converged:.0f} MB")
        # kwok's first heartbeats come 150 s after the nodes were created: from then on
        # the window sees the regime's rate.
        wait = self.created_at + HEARTBEAT_MS[0] / 1000 - time.monotonic()
        if wait > 0:
            log(f"waiting {wait:.0f} s more for kwok's first heartbeats")
            time.sleep(wait)
        window = self.args.idle
        log(f"idle window of {window} s")
        cpu0, wall0, nodes0 = cpu_seconds(operator.pid), time.time(), node_writes(client)
        plane0 = control_plane_seconds(self.cluster)
        mono0 = time.monotonic()
        while (left := window - (time.monotonic() - mono0)) > 0:
            time.sleep(min(60.0, left))
            elapsed = time.monotonic() - mono0
            if not operator.alive():
                raise BenchError(f"the operator exited during the idle window:\n{operator.tail()}")
            check_valid(client, f"{elapsed:.0f} s into the idle window")
            cpu = 100 * (cpu_seconds(operator.pid) - cpu0) / elapsed
            log(
                f"idle {elapsed:.0f}/{window} s: operator CPU {cpu:.2f} %, "
                f"RSS {rss_mb(operator.pid):.0f} MB"
            )
        elapsed = time.monotonic() - mono0
        cpu1, wall1, nodes1 = cpu_seconds(operator.pid), time.time(), node_writes(client)
        self.results.control_plane_pct = (
            100 * (control_plane_seconds(self.cluster) - plane0) / elapsed
        )
        self.results.cpu_pct = 100 * (cpu1 - cpu0) / elapsed
        self.results.node_rate = (nodes1 - nodes0) / elapsed
        self.results.rss_idle = rss_mb(operator.pid)
        time.sleep(1)  # the audit log is written as requests complete
        self.results.writes = operator_writes(localcluster.audit_log(self.cluster), wall0, wall1)
        check_valid(client, "the end of the idle window")

    def joins(self, client: Client) -> None:
        count = self.args.joins
        if not count:
            return
        seen: dict[str, float] = {}
        changed = threading.Condition()

        def on_node(kind: str, node: dict[str, Any]) -> None:
            labels = node["metadata"].get("labels") or {}
            if kind != "DELETED" and names.GATEWAY_LABEL in labels:
                with changed:
                    seen.setdefault(node["metadata"]["name"], time.monotonic())
                    changed.notify_all()

        client.watch(
            f"/api/v1/nodes?labelSelector={urllib.parse.quote(JOIN_LABEL)}", on_node, self.stop
        )
        log(f"{count} node joins, 1 s apart")
        for j in range(count):
            body = self.fleet.join(j, self.version)
            name = body["metadata"]["name"]
            started = time.monotonic()
            client.call("POST", "/api/v1/nodes", body)
            with changed:
                labelled = changed.wait_for(partial(contains, seen, name), timeout=30)
            if labelled:
                self.results.joins.append(seen[name] - started)
            else:
                self.results.join_misses += 1
                log(f"{name} was not labelled within 30 s")
            time.sleep(max(0.0, started + 1.0 - time.monotonic()))

    def finish(self, client: Client) -> None:
        check_valid(client, "the end of the run")
        total, not_ready = node_readiness(client)
        self.results.ready_nodes = (total - len(not_ready), total)
        if not_ready:
            raise InvalidRunError(
                f"{len(not_ready)} bench node(s) not Ready at the end: " + ", ".join(not_ready[:5])
            )

    def run(self) -> Results:
        client = self.start_cluster()
        operator = Operator(self.cluster)
        try:
            self.create_fleet(client)
            LoadBalancer(client, self.stop)
            self.floor(client)
            self.operator(client, operator)
            self.idle(client, operator)
            self.joins(client)
            self.finish(client)
        except InvalidRunError as invalid:
            self.results.invalid = str(invalid)
            with contextlib.suppress(BenchError, OSError, http.client.HTTPException):
                total, not_ready = node_readiness(client)
                self.results.ready_nodes = (total - len(not_ready), total)
        finally:
            self.stop.set()
            localcluster.stop_process(self.cluster, operator.name)
            with contextlib.suppress(OSError):
                shutil.copy(
                    localcluster.log_path(self.cluster, operator.name), self.work / "operator.log"
                )
            if self.args.keep:
                log(
                    f"kept the control plane: export KUBECONFIG={self.cluster / 'kubeconfig'};"
                    f" stop it with: python3 hack/localcluster.py down --dir {self.cluster}"
                )
            else:
                localcluster.down(self.cluster)
        return self.results


# --- the table --------------------------------------------------------------------------------


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def commit() -> str:
    head = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    return head + (" + uncommitted changes" if _git("status", "--porcelain") else "")


def _s(value: float, digits: int = 1) -> str:
    return "not measured" if math.isnan(value) else f"{value:.{digits}f} s"


def _mb(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f} MB"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def table(r: Results) -> tuple[str, list[str]]:
    """The Markdown table, and the figures that missed their budget."""
    budget = budget_for(r.nodes)
    rows: list[tuple[str, str, str, bool | None]] = []

    def row(figure: str, measured: str, limit: str = "—", ok: bool | None = None) -> None:
        rows.append((figure, measured, limit, ok))

    def under(value: float, limit: float | None) -> bool | None:
        """Within the limit; None (n/a) without a limit or a measurement."""
        return None if limit is None or math.isnan(value) else value <= limit

    start_limit = budget.start_s if budget else None
    rss_limit = budget.rss_mb if budget else None
    row(
        "operator start -> ready (/readyz 200)",
        _s(r.start_s, 2),
        f"<= {start_limit:.0f} s" if start_limit else "—",
        under(r.start_s, start_limit),
    )
    row("RSS after start", _mb(r.rss_start))
    for what, value in (
        ("after convergence", r.rss_converged),
        ("after the idle window", r.rss_idle),
    ):
        row(
            f"RSS {what}",
            _mb(value),
            f"<= {rss_limit:.0f} MB" if rss_limit else "—",
            under(value, rss_limit),
        )
    ratio = r.apply_s / r.floor_s if r.floor_s > 0 else math.nan
    row(
        f"apply {r.gateways} EdgeGateways -> all Ready",
        f"{_s(r.apply_s)} ({ratio:.2f} x floor)" if not math.isnan(ratio) else _s(r.apply_s),
        f"<= {APPLY_RATIO} x floor",
        False if any(t.startswith("apply") for t in r.timeouts) else under(ratio, APPLY_RATIO),
    )
    row(
        "floor: same objects by kubectl apply --server-side -> all Available",
        f"{_s(r.floor_s)} (kubectl itself: {_s(r.floor_kubectl_s)})",
    )
    writes = sum(r.writes.values())
    detail = f" ({', '.join(f'{n} {k}' for k, n in r.writes.most_common(6))})" if writes else ""
    row(
        f"operator write requests over the idle window ({r.idle} s)",
        "not measured" if math.isnan(r.cpu_pct) else f"{writes}{detail}",
        "0",
        None if math.isnan(r.cpu_pct) else writes == 0,
    )
    row(
        f"operator CPU over the idle window ({r.idle} s)",
        "n/a" if math.isnan(r.cpu_pct) else f"{r.cpu_pct:.2f} %",
        f"<= {IDLE_CPU_PCT:.0f} %",
        under(r.cpu_pct, IDLE_CPU_PCT),
    )
    steady = r.nodes / HEARTBEAT_MEAN_S
    row(
        "node updates during the idle window (all clients)",
        "n/a"
        if math.isnan(r.node_rate)
        else f"{r.node_rate:.2f} /s (heartbeats alone, steady: {steady:.2f} /s)",
    )
    missed = f" ({r.join_misses} not labelled within 30 s)" if r.join_misses else ""
    p50, p95 = percentile(r.joins, 0.5), percentile(r.joins, 0.95)
    row(f"node join -> labelled p50 ({len(r.joins) + r.join_misses} joins)", _s(p50, 2) + missed)
    row(
        "node join -> labelled p95",
        _s(p95, 2) + missed,
        f"<= {JOIN_P95_S:.0f} s",
        None if not (r.joins or r.join_misses) else bool(under(p95, JOIN_P95_S)) and not missed,
    )
    row(
        "NodeNotReady events / bench nodes Ready at the end",
        f"{'some (below)' if r.invalid else 0} / {r.ready_nodes[0]} of {r.ready_nodes[1]}",
        "0 / all",
        not r.invalid,
    )
    lines = ["| figure | measured | budget | met |", "|---|---|---|---|"]
    lines += [f"| {f} | {m} | {b} | {_met(ok)} |" for f, m, b, ok in rows]
    return "\n".join(lines), [f for f, _, _, ok in rows if ok is False]


def report(r: Results) -> str:
    header = (
        f"edge-operator bench: {r.nodes} nodes (~{r.node_kb:.1f} KB each), {r.gateways} gateways"
        f" x {NODES_PER_GATEWAY} nodes, idle window {r.idle} s; heartbeat regime: "
        f"{HEARTBEAT_REGIME}; {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')};"
        f" commit {commit()}"
    )
    body, missed = table(r)
    notes = []
    if r.quiet:
        notes.append(
            "Control plane CPU before the floor / the operator's apply: "
            + " / ".join(f"{q:.0f} %" for q in r.quiet)
            + " of a core"
            + (
                f"; during the idle window: {r.control_plane_pct:.0f} %."
                if not math.isnan(r.control_plane_pct)
                else "."
            )
        )
    if budget_for(r.nodes) is None:
        notes.append("No start/RSS budget above 5,000 nodes.")
    if r.idle < BUDGET_IDLE_S:
        notes.append(f"The idle window ({r.idle} s) is shorter than the budget's 10 minutes.")
    notes.append("Budgets missed: " + "; ".join(missed) + "." if missed else "Every budget met.")
    if r.timeouts:
        notes.append("Timed out: " + "; ".join(r.timeouts) + ".")
    if r.invalid:
        notes.append(f"INVALID RUN (the figures are noise): {r.invalid}")
    return "\n".join([header, "", body, "", *notes]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=2000, help="kwok nodes (default 2000)")
    parser.add_argument("--gateways", type=int, default=20, help="gateways of 3 nodes (default 20)")
    parser.add_argument("--idle", type=int, default=600, help="idle window, seconds (default 600)")
    parser.add_argument("--joins", type=int, default=20, help="node joins timed (default 20)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=localcluster.cache_dir() / "bench",
        help="state directory (default ~/.cache/edge-operator/bench)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the control plane running")
    args = parser.parse_args(argv)
    if args.gateways < 1 or args.nodes <= args.gateways * NODES_PER_GATEWAY or args.idle < 1:
        parser.error("need gateways >= 1, nodes > 3 x gateways (worker nodes too), idle >= 1")
    reserved = {localcluster.default_dir().resolve(), (localcluster.cache_dir() / "lab").resolve()}
    if args.dir.expanduser().resolve() in reserved:
        parser.error(f"{args.dir} belongs to `make cluster-up` or the lab; choose another --dir")
    started = time.monotonic()
    try:
        results = Bench(args).run()
    except (BenchError, localcluster.ClusterError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or ""
        print(f"bench: {error}\n{detail}".rstrip(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    log(f"done in {time.monotonic() - started:.0f} s")
    sys.stdout.write(report(results))
    if results.invalid:
        print(f"bench: invalid run: {results.invalid}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
