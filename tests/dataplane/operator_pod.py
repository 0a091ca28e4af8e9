"""The operator as users run it: the Helm chart's Deployment, its pods on lab nodes.

The image is the one `make image` builds (hack/image.py), imported into every node's
containerd under the chart's default reference; the chart is installed with its
default values but the pull policy (``Never``: there is no registry) and a
nodeSelector that keeps the operator on the lab's worker pool (``nodepool: general``),
into a namespace that enforces Pod Security ``restricted``.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import chart
import image as operator_image
import lab
import localcluster
from lab import net
from tests.e2e.cluster import Cluster, wait_for

LEASE = "edge-operator"
SELECTOR = "app.kubernetes.io/name=edge-operator,app.kubernetes.io/component=operator"
#: Pod Security labels of the release namespace.
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def values(pool: str, replicas: int = 1, **extra: str) -> dict[str, str]:
    """The chart's values for the lab: the image reference, no pulls, the worker pool."""
    spec = operator_image.Spec()
    return {
        "image.repository": spec.repository,
        "image.tag": spec.version,
        "image.pullPolicy": "Never",
        "nodeSelector.nodepool": pool,
        "replicaCount": str(replicas),
        **extra,
    }


def ready(pod: Mapping[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class ChartOperator:
    """The chart's operator pods in the lab."""

    def __init__(self, running: lab.Lab, cluster: Cluster) -> None:
        self.lab = running
        self.cluster = cluster
        self.replicas = 1
        self.pool = running.topology.workers[0].pool

    # --- install -------------------------------------------------------------------------

    def restricted_namespace(self) -> None:
        body = {"metadata": {"name": chart.NAMESPACE, "labels": RESTRICTED}}
        try:
            self.cluster.core.create_namespace(body)
        except Exception:
            self.cluster.core.patch_namespace(chart.NAMESPACE, body)

    def install(
        self,
        path: Path = chart.CHART,
        replicas: int = 1,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        """``helm upgrade --install`` with the operator pods; wait until they are Ready
        and one leads."""
        self.restricted_namespace()
        self.replicas = replicas
        self.cluster.helm(
            "upgrade", "--install", chart.RELEASE, str(path), "--namespace", chart.NAMESPACE,
            *chart.set_args(values(self.pool, replicas, **(extra or {}))),
            "--wait", "--timeout", "3m",
        )  # fmt: skip
        self.wait_ready()

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        """helm against the lab, its exit status left to the caller."""
        argv = [str(localcluster.helm_path()), *args, "--kubeconfig", str(self.cluster.kubeconfig)]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    def scale(self, replicas: int) -> None:
        self.cluster.apps.patch_namespaced_deployment_scale(
            chart.RELEASE, chart.NAMESPACE, {"spec": {"replicas": replicas}}
        )
        self.replicas = replicas
        if replicas:
            self.wait_ready()
        else:
            wait_for(lambda: not self.pods(), "no operator pod left", 90)

    def ensure_running(self) -> None:
        """As installed: every replica Ready, one of them leading."""
        deployment = self.cluster.apps.read_namespaced_deployment(chart.RELEASE, chart.NAMESPACE)
        if deployment.spec.replicas != self.replicas:
            self.scale(self.replicas)
        self.wait_ready()

    def wait_ready(self, timeout: float = 180) -> None:
        def done() -> bool:
            pods = self.pods()
            return (
                len(pods) == self.replicas and all(ready(p) for p in pods) and bool(self.leader())
            )

        wait_for(done, f"{self.replicas} Ready operator pod(s) and a leader", timeout)

    # --- reading -----------------------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        found = self.cluster.core.list_namespaced_pod(chart.NAMESPACE, label_selector=SELECTOR)
        pods: list[dict[str, Any]] = self.cluster.api.sanitize_for_serialization(found)["items"]
        return [p for p in pods if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]

    def pod(self, name: str) -> dict[str, Any]:
        return next(p for p in self.pods() if p["metadata"]["name"] == name)

    def lease(self) -> dict[str, Any]:
        lease = self.cluster.api.sanitize_for_serialization(
            self.cluster.coordination.read_namespaced_lease(LEASE, chart.NAMESPACE)
        )
        return dict(lease.get("spec") or {})

    def leader(self) -> str:
        """The pod that holds the Lease, if its lease is current and it is one of ours."""
        try:
            spec = self.lease()
        except Exception:
            return ""
        holder = str(spec.get("holderIdentity") or "")
        names = {p["metadata"]["name"] for p in self.pods()}
        return holder if holder in names else ""

    def from_node(self, node: str, url: str) -> str:
        def fetch() -> str:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())

        return net.call_in(node, fetch)

    def metrics_text(self) -> str:
        """/metrics through the chart's metrics Service, from a worker node (kube-proxy)."""
        service = self.cluster.core.read_namespaced_service(
            f"{chart.RELEASE}-metrics", chart.NAMESPACE
        )
        port = service.spec.ports[0].port
        node = self.lab.topology.workers[0].name
        return self.from_node(node, f"http://{service.spec.cluster_ip}:{port}/metrics")

    def logs(self, pod: str, container: str = "operator") -> str:
        """A container's log, every restart, from the kubelet's files (the lab's API
        server does not reach kubelets for `kubectl logs`)."""
        pattern = f"nodes/*/pod-logs/{chart.NAMESPACE}_{pod}_*/{container}/*.log"
        lines = []
        for path in sorted(self.lab.root.glob(pattern), key=lambda p: int(p.stem)):
            # CRI log lines: TIME STREAM TAG MESSAGE
            lines += [line.split(" ", 3)[-1] for line in path.read_text().splitlines()]
        return "\n".join(lines)

    def writable_paths(self, pod: str) -> list[str]:
        """Every path the pod's operator process may write (as its own user, through its
        own mounts): walked inside the container by the image's Python."""
        pid = self.process(pod)
        argv = ["nsenter", "-t", str(pid), "-m", "-r", "-S", "65532", "-G", "65532", "--"]
        found = subprocess.run(
            [*argv, "/usr/bin/python3.11", "-c", _WRITABLE],
            capture_output=True,
            text=True,
            check=False,
        )
        assert found.returncode == 0, found.stderr
        return found.stdout.split()

    def process(self, pod: str) -> int:
        """The host PID of the pod's operator process (its log path names the pod UID)."""
        uid = self.pod(pod)["metadata"]["uid"]
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                cgroup = (proc / "cgroup").read_text()
            except OSError:
                continue
            if cmdline.startswith(b"/usr/bin/python3.11\0/usr/local/bin/edge-operator") and (
                f"pod{uid}" in cgroup
            ):
                return int(proc.name)
        raise AssertionError(f"no operator process of pod {pod} ({uid})")

    def tail(self, lines: int = 60) -> str:
        """The end of every operator container's log in the lab (also after the API
        server has gone, for a failure report)."""
        out = []
        pattern = f"nodes/*/pod-logs/{chart.NAMESPACE}_edge-operator-*/operator"
        for directory in sorted(self.lab.root.glob(pattern)):
            out.append(f"--- {directory.parent.name.split('_')[1]} ({directory.parts[-4]})")
            out += self.logs(directory.parent.name.split("_")[1]).splitlines()[-lines:]
        return "\n".join(out)


_WRITABLE = """
import os
found = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys")]
    found += [p for p in [top, *(os.path.join(top, f) for f in files)] if os.access(p, os.W_OK)]
print("\\n".join(sorted(found)))
"""


def audit_writers(audit_log: Path, since: float) -> list[tuple[float, str, str]]:
    """(time, pod, verb+resource) of every write the operator's ServiceAccount made since
    ``since`` (a time.time()), from the API server's audit log, in order."""
    writes = []
    for line in audit_log.read_text(errors="replace").splitlines():
        event = json.loads(line)
        if event.get("stage") != "ResponseComplete" or event["verb"] in ("get", "list", "watch"):
            continue
        stamp = _stamp(event["requestReceivedTimestamp"])
        extra = event.get("user", {}).get("extra") or {}
        pod = (extra.get("authentication.kubernetes.io/pod-name") or [""])[0]
        ref = event.get("objectRef") or {}
        if stamp >= since and pod:
            writes.append((stamp, pod, f"{event['verb']} {ref.get('resource')}/{ref.get('name')}"))
    return sorted(writes)


def _stamp(value: str) -> float:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
