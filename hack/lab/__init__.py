"""The lab: a local control plane with real nodes, a cloud-like load balancer and clients.

    python3 hack/lab {up,down,status} [--dir DIR] [--edges N] [--workers N] [--zones Z]

Every host is a network namespace on this machine (root needed):

    client-1 198.51.100.10 --+                                  +-- edge-1   10.200.0.11
    client-2 198.51.100.11 --+-- lb (router + load balancer) ---+-- edge-2   10.200.0.12
    cdn      198.18.0.10   --+   10.200.0.1, VIPs 203.0.113.x   +-- worker-1 10.200.0.13
                                                                +-- worker-2 10.200.0.14

- nodes run containerd, kubelet and kube-proxy (nftables), joined to the local control
  plane of hack/localcluster.py; pods get 10.244.<i>.0/24 on node i;
- ``lb`` routes between the internet side and the node network and plays the cloud's
  L4 load balancer for every Service of type LoadBalancer (hack/lab/lb.py);
- ``cdn`` runs an L7 proxy (HAProxy) that adds X-Forwarded-For;
- the echo backend (namespace ``lab``, on the workers) reports what it saw of the client.

Stdlib only, like localcluster.py: the lab runs before and beside the project's virtualenv.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import image as operator_image
import localcluster
from lab import conformance, images, net, proxies
from lab import node as nodes
from lab.node import API_ADDRESS, API_PORT, NODE_GATEWAY, NODE_NETWORK, Node, Paths

HACK_DIR = Path(__file__).resolve().parent.parent
REPO = HACK_DIR.parent
LB = "lb"
CDN = "cdn"
LB_ADDRESS = NODE_GATEWAY  # the load balancer's address on the node network
CLIENT_NETWORK = "198.51.100"
CDN_NETWORK = "198.18.0"
CDN_ADDRESS = f"{CDN_NETWORK}.10"
#: Addresses the load balancer hands out to LoadBalancer Services.
VIP_NETWORK = "203.0.113"
#: The machine's own link into the lab, so the API server reaches kubelets (logs, exec).
HOST_LINK = "eo-host"
HOST_ADDRESS, HOST_PEER = "10.201.0.1", "10.201.0.2"
#: The namespace of the echo backend and its Service.
APPS = "lab"
ECHO_PORT = 8080
PAUSE_IMAGE = "edgeoperator.dev/lab/pause:v1"
ECHO_IMAGE = "edgeoperator.dev/lab/echo:v1"
#: Marks this machine's one lab: its state directory. Names and addresses are fixed.
OWNER_FILE = Path("/run/edge-operator-lab")
LOCK_FILE = Path("/run/edge-operator-lab.lock")
CNI_CACHE = Path("/var/lib/cni")
#: kubelet's device manager listens here whatever its --root-dir (pluginapi.DevicePluginPath).
KUBELET_DEVICE_PLUGINS = Path("/var/lib/kubelet/device-plugins")
START_TIMEOUT = 180.0
#: A unix socket path has at most 107 bytes, and kubelet's deepest is about 55 below root.
MAX_ROOT = 50


class LabError(Exception):
    """The lab could not be started, used or stopped."""


@dataclass(frozen=True)
class Client:
    name: str
    ip: str


@dataclass(frozen=True)
class Topology:
    nodes: tuple[Node, ...]
    clients: tuple[Client, ...]

    @classmethod
    def make(cls, edges: int, workers: int, zones: int, clients: int) -> Topology:
        nodes = []
        for i in range(edges + workers):
            edge = i < edges
            nodes.append(
                Node(
                    name=f"edge-{i + 1}" if edge else f"worker-{i - edges + 1}",
                    index=i + 1,
                    pool="edge" if edge else "general",
                    zone=f"zone-{'abcdefghijklmnopqrstuvwxyz'[(i if edge else i - edges) % zones]}",
                )
            )
        made = tuple(
            Client(f"client-{i + 1}", f"{CLIENT_NETWORK}.{10 + i}") for i in range(clients)
        )
        return cls(tuple(nodes), made)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @property
    def edges(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.pool == "edge")

    @property
    def workers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.pool != "edge")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Topology:
        return cls(
            tuple(Node(**n) for n in data["nodes"]), tuple(Client(**c) for c in data["clients"])
        )


# --- binaries and images -------------------------------------------------------------------


def traefik_image() -> str:
    """The image the operator renders for Traefik (the provider's pinned default)."""
    # Read, not imported: the lab runs without the project's virtualenv too.
    source = REPO / "src/edge_operator/desired/providers/traefik.py"
    for line in source.read_text().splitlines():
        if line.startswith("DEFAULT_IMAGE = "):
            return line.split("=", 1)[1].strip().strip('"')
    raise LabError(f"no DEFAULT_IMAGE in {source}")


def build() -> dict[str, Path]:
    """Build (or find in the cache) every binary the lab runs; install missing packages."""
    version = traefik_image().rsplit(":", 1)[1]
    proc = subprocess.run(
        ["bash", str(HACK_DIR / "build-lab.sh"), version],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise LabError("hack/build-lab.sh failed (its output is above)")
    found = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    built = {name: Path(path) for name, path in found.items()}
    # The chart's operator pod runs this image, imported into every node as it is named.
    built["operator-image"] = operator_image.cached(
        operator_image.Spec(), "amd64", localcluster.cache_dir()
    )
    # The Gateway API conformance suite and its backends (tests/dataplane/test_conformance.py).
    suite = conformance.build()
    built |= {"conformance": suite.binary, "echo-basic": suite.echo_basic, "coredns": suite.coredns}
    # Envoy Gateway and Envoy (tests/dataplane/test_envoy_gateway.py).
    from lab import envoy_gateway  # noqa: PLC0415 (it imports this package)

    eg = envoy_gateway.build()
    built |= {"envoy-gateway": eg.envoy_gateway, "envoy": eg.envoy}
    return built


def _images(binaries: dict[str, Path]) -> list[images.Image]:
    return [
        images.Image(PAUSE_IMAGE, binaries["pause"], ("/pause",)),
        images.Image(ECHO_IMAGE, binaries["echo"], ("/echo",)),
        images.Image(traefik_image(), binaries["traefik"], ("/traefik",)),
    ]


# --- preflight -------------------------------------------------------------------------------


def preflight() -> None:
    """Fail with one line naming what this machine lacks for the lab."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, cgroups, mounts); run as root")
    if not Path("/sys/fs/cgroup/pids").is_dir():
        raise LabError("the lab needs cgroup v1 hierarchies under /sys/fs/cgroup (hybrid)")
    try:
        probe = subprocess.run(
            ["ip", "netns", "add", "eo-preflight"], capture_output=True, text=True, check=False
        )
        subprocess.run(["ip", "netns", "delete", "eo-preflight"], capture_output=True, check=False)
    except OSError as error:
        raise LabError(
            f"cannot create network namespaces: {error.strerror}: ip (iproute2)"
        ) from error
    if probe.returncode:
        raise LabError(f"cannot create network namespaces: {probe.stderr.strip()}")


def owner() -> Path | None:
    """The state directory of the lab up on this machine, if one is.

    A lab whose processes were all ended (a machine handed on, a killed session) is
    not up: the next `lab up` removes what is left of it.
    """
    with suppress(OSError):
        root = Path(OWNER_FILE.read_text().strip())
        if (root / "lab.json").exists() and localcluster.process_pid(root, "api-socket"):
            return root
    return None


def _check_free(root: Path) -> None:
    running = owner()
    if running is not None and running != root:
        raise LabError(
            f"a lab is already up in {running}; this machine runs one at a time:"
            f" stop it first (python3 hack/lab down --dir {running})"
        )
    link = net.run("ip", "-d", "-o", "link", "show", HOST_LINK, check=False)
    if link and " veth " not in link:
        raise LabError(f"a network interface named {HOST_LINK} exists and is not the lab's")
    routes = net.run("ip", "-4", "route", "show")
    for prefix in ("10.200.0.", "10.201.0.", "10.244."):
        if prefix in routes and HOST_LINK not in routes:
            raise LabError(f"this machine already routes {prefix}0/..; the lab needs that range")


# --- network ------------------------------------------------------------------------------


def _network(topology: Topology) -> None:
    net.add_namespace(LB)
    net.sysctl(LB, "net.ipv4.ip_forward", "1")
    net.ip("link", "add", "nodes", "type", "bridge", ns=LB)
    net.ip("addr", "add", f"{LB_ADDRESS}/24", "dev", "nodes", ns=LB)
    net.ip("link", "add", "internet", "type", "bridge", ns=LB)
    net.ip("addr", "add", f"{CLIENT_NETWORK}.1/24", "dev", "internet", ns=LB)
    net.ip("addr", "add", f"{CDN_NETWORK}.1/24", "dev", "internet", ns=LB)
    for bridge in ("nodes", "internet"):
        net.ip("link", "set", bridge, "up", ns=LB)
    # The machine's own way in: the API server reaches kubelets at their node address.
    net.veth(None, HOST_LINK, LB, "host")
    net.ip("addr", "add", f"{HOST_ADDRESS}/30", "dev", HOST_LINK)
    net.ip("addr", "add", f"{HOST_PEER}/30", "dev", "host", ns=LB)
    net.ip("route", "add", f"{node_network()}/24", "via", HOST_PEER)
    for node in topology.nodes:
        _node_network(topology, node)
    hosts = [*((c.name, c.ip, f"{CLIENT_NETWORK}.1") for c in topology.clients)]
    hosts.append((CDN, CDN_ADDRESS, f"{CDN_NETWORK}.1"))
    for name, address, gateway in hosts:
        net.add_namespace(name)
        net.veth(LB, f"v-{name}", name, "eth0")
        net.ip("link", "set", f"v-{name}", "master", "internet", ns=LB)
        net.ip("addr", "add", f"{address}/24", "dev", "eth0", ns=name)
        net.ip("route", "add", "default", "via", gateway, ns=name)


def node_network() -> str:
    return f"{NODE_NETWORK}.0"


def _node_network(topology: Topology, node: Node) -> None:
    net.add_namespace(node.name)
    net.sysctl(node.name, "net.ipv4.ip_forward", "1")
    net.veth(LB, f"v-{node.name}", node.name, "eth0")
    net.ip("link", "set", f"v-{node.name}", "master", "nodes", ns=LB)
    net.ip("addr", "add", f"{node.ip}/24", "dev", "eth0", ns=node.name)
    net.ip("addr", "add", f"{API_ADDRESS}/32", "dev", "lo", ns=node.name)
    net.ip("route", "add", "default", "via", NODE_GATEWAY, ns=node.name)
    for other in topology.nodes:
        if other != node:
            net.ip("route", "add", other.pod_cidr, "via", other.ip, ns=node.name)
    # Counts what reaches this node from the internet side (clients and the CDN):
    # the proof that workers never receive load-balancer traffic.
    net.nft(
        node.name,
        "table inet eo-lab {\n"
        "  counter from-internet {}\n"
        "  chain prerouting {\n"
        "    type filter hook prerouting priority raw; policy accept;\n"
        f"    ip saddr {{ {CLIENT_NETWORK}.0/24, {CDN_NETWORK}.0/24 }}"
        ' counter name "from-internet"\n'
        "  }\n"
        "}\n",
    )


# --- processes ---------------------------------------------------------------------------


def _start(root: Path, name: str, argv: list[str]) -> int:
    try:
        return localcluster.start_process(root, name, argv)
    except localcluster.ClusterError as error:
        raise LabError(str(error)) from error


def _wait(
    what: str, ready: Callable[[], object], root: Path, timeout: float = START_TIMEOUT
) -> None:
    """Poll ready() until it is true; errors of an API not (yet) answering count as false.

    Fails at once, naming it and quoting its log, when a process of the lab has died.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except (OSError, http.client.HTTPException, KeyError, ValueError):
            pass
        for pid_file in sorted((root / "pids").glob("*.pid")):
            if localcluster.process_pid(root, pid_file.stem) is None:
                log = localcluster.log_path(root, pid_file.stem)
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise LabError(
                    f"{pid_file.stem} exited while waiting for {what}; end of {log}:\n{tail}"
                )
        if time.monotonic() > deadline:
            raise LabError(f"timed out waiting for {what}; see the logs in {root / 'logs'}")
        time.sleep(0.2)


def _start_node(
    root: Path, cluster_dir: Path, node: Node, bins: dict[str, Path], archives: list[Path]
) -> None:
    paths = nodes.write_files(root, cluster_dir, node, images.normalise(PAUSE_IMAGE))
    nodes.make_cgroups(node)
    ns = net.netns(node.name)

    def start(what: str, argv: list[str]) -> None:
        wrapped = nodes.wrap(node.cgroup, ns, argv)
        # Kept so a daemon stopped on purpose (Lab.stop_daemon) starts again as it was.
        (root / "argv").mkdir(exist_ok=True)
        (root / "argv" / f"{node.name}-{what}.json").write_text(json.dumps(wrapped))
        _start(root, f"{node.name}-{what}", wrapped)

    start(
        "api",
        [
            "socat",
            f"TCP-LISTEN:{API_PORT},bind={API_ADDRESS},fork,reuseaddr",
            f"UNIX-CONNECT:{root / 'api.sock'}",
        ],
    )
    start("containerd", ["containerd", "--config", str(paths.containerd_config)])
    ctr = ["ctr", "--address", str(paths.containerd_sock), "--namespace", "k8s.io"]
    _wait(
        f"containerd of {node.name}",
        lambda: subprocess.run([*ctr, "version"], capture_output=True, check=False).returncode == 0,
        root,
        timeout=30,
    )
    for archive in archives:
        _import(paths, archive)
    start(
        "kubelet",
        [
            str(bins["kubelet"]),
            f"--config={paths.kubelet_config}",
            f"--kubeconfig={paths.kubelet_kubeconfig}",
            f"--root-dir={paths.kubelet_root}",
            f"--cert-dir={paths.dir / 'pki'}",
            f"--node-ip={node.ip}",
            f"--hostname-override={node.name}",
            f"--node-labels=nodepool={node.pool},topology.kubernetes.io/zone={node.zone}",
            "--v=1",
        ],
    )
    start(
        "kube-proxy",
        [str(bins["kube-proxy"]), f"--config={paths.proxy_config}", "--v=1"],
    )


def _import(paths: Paths, archive: Path) -> None:
    ctr = ["ctr", "--address", str(paths.containerd_sock), "--namespace", "k8s.io"]
    net.run(*ctr, "images", "import", "--no-unpack=false", str(archive))


def _kubernetes_endpoints(api: localcluster.Api) -> None:
    """Pods reach the API server through the `kubernetes` Service: give it the node-local
    forwarding address as its endpoint (the endpoint reconciler is off)."""
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes-lab",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "lab.edgeoperator.dev",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [API_ADDRESS], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": API_PORT, "protocol": "TCP"}],
    }
    api.call("POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", body)


def _echo_backend(root: Path, api: localcluster.Api, topology: Topology) -> None:
    labels = {"app": "echo"}
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "TRUSTED_PROXIES", "value": f"{CDN_ADDRESS}/32"},
    ]
    container = {
        "name": "echo",
        "image": ECHO_IMAGE,
        "imagePullPolicy": "Never",
        "args": [f"-listen=:{ECHO_PORT}"],
        "env": env,
        "ports": [{"name": "http", "containerPort": ECHO_PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": ECHO_PORT}, "periodSeconds": 2},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
    }
    spread = {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": labels},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "echo", "namespace": APPS},
        "spec": {
            "replicas": max(1, len(topology.workers)),
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"nodepool": "general"},
                    "topologySpreadConstraints": [spread],
                    "containers": [container],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": APPS},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    api.call("POST", "/api/v1/namespaces", {"metadata": {"name": APPS}})
    account = f"/api/v1/namespaces/{APPS}/serviceaccounts/default"
    _wait(f"the default ServiceAccount of {APPS}", lambda: api.call("GET", account), root)
    api.call("POST", f"/apis/apps/v1/namespaces/{APPS}/deployments", deployment)
    api.call("POST", f"/api/v1/namespaces/{APPS}/services", service)


def _nodes_ready(api: localcluster.Api, topology: Topology) -> bool:
    return localcluster.ready_nodes(api).issuperset(n.name for n in topology.nodes)


def _echo_ready(api: localcluster.Api, topology: Topology) -> bool:
    dep = json.loads(api.call("GET", f"/apis/apps/v1/namespaces/{APPS}/deployments/echo"))
    return bool(dep.get("status", {}).get("readyReplicas", 0) >= max(1, len(topology.workers)))


# --- up / down ---------------------------------------------------------------------------


def default_dir() -> Path:
    return Path(os.environ.get("EDGE_OPERATOR_LAB_DIR") or localcluster.cache_dir() / "lab")


def up(root: Path, edges: int = 2, workers: int = 2, zones: int = 2, clients: int = 2) -> Lab:
    """Start the lab in root and return it; a healthy lab of the same shape is kept as
    it is, anything else found there is stopped and removed first."""
    root = root.expanduser().resolve()
    if edges < 1 or workers < 0 or not 1 <= zones <= 26 or edges + workers > 200:
        raise LabError(f"need edges >= 1, workers >= 0, 1 <= zones <= 26: {edges=} {workers=}")
    if len(str(root)) > MAX_ROOT:
        raise LabError(
            f"{root} is too long for the unix sockets below it; use a --dir of at most"
            f" {MAX_ROOT} characters"
        )
    preflight()
    topology = Topology.make(edges, workers, zones, clients)
    with _machine_lock():
        if _healthy(root, topology):
            return Lab(root, topology)
        _check_free(root)
        with suppress(OSError):
            # What a lab elsewhere left when its processes were ended (a killed session).
            recorded = Path(OWNER_FILE.read_text().strip())
            if recorded != root and (recorded / "lab.json").exists():
                _down(recorded)
        _down(root)
        root.mkdir(parents=True, mode=0o700)
        OWNER_FILE.write_text(f"{root}\n")
        try:
            return _up(root, topology)
        except BaseException:
            with suppress(LabError):
                _down(root)
            raise


def _up(root: Path, topology: Topology) -> Lab:
    bins = build()
    archives = [
        images.archive(image, localcluster.cache_dir() / "lab-images") for image in _images(bins)
    ] + [bins["operator-image"]]
    cluster_dir = root / "cluster"
    try:
        localcluster.up(cluster_dir, nodes=0)
    except localcluster.ClusterError as error:
        raise LabError(f"control plane: {error}") from error
    api = localcluster.api(cluster_dir)
    port = json.loads((cluster_dir / "ports.json").read_text())["kube-apiserver"]
    _start(
        root,
        "api-socket",
        ["socat", f"UNIX-LISTEN:{root / 'api.sock'},fork,unlink-early", f"TCP:127.0.0.1:{port}"],
    )
    _network(topology)
    _kubernetes_endpoints(api)
    for node in topology.nodes:
        _start_node(root, cluster_dir, node, bins, archives)
    _wait("every lab node Ready", lambda: _nodes_ready(api, topology), root)
    lab = Lab(root, topology)
    (root / "lab.json").write_text(json.dumps(topology.to_json(), indent=2) + "\n")
    _start(
        root,
        "load-balancer",
        [sys.executable, str(HACK_DIR / "lab"), "lb", "--root", str(root)],
    )
    _echo_backend(root, api, topology)
    _wait("the echo backend", lambda: _echo_ready(api, topology), root)
    return lab


def _mounts_under(root: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(root) or point.startswith(f"{root}/"):
            found.append(point)
    return sorted(found, key=lambda p: -p.count("/"))


def _healthy(root: Path, topology: Topology) -> bool:
    """A lab of this topology runs in root with every process alive and its nodes Ready."""
    try:
        running = Lab.load(root)
        alive = all(pid is not None for _, pid in running.processes())
        api = localcluster.api(running.cluster_dir)
        return running.topology == topology and alive and _nodes_ready(api, topology)
    except (LabError, OSError, http.client.HTTPException, KeyError, ValueError):
        return False


@contextmanager
def _machine_lock() -> Iterator[None]:
    """One lab up or down at a time on this machine: names and addresses are fixed."""
    with LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def down(root: Path) -> None:
    """Stop the lab in root and remove everything it made; safe to run at any time."""
    with _machine_lock():
        _down(root.expanduser().resolve())


def _down(root: Path) -> None:
    running = owner()
    if running is not None and running != root:
        raise LabError(f"the lab on this machine belongs to {running}, not {root}")

    # Every step runs even when one before it failed; the failures are raised at the end.
    failed: list[str] = []
    # The load balancer and proxies first, then everything each node runs (its cgroup).
    pid_dir = root / "pids"
    for pid_file in sorted(pid_dir.glob("*.pid")) if pid_dir.is_dir() else []:
        if not pid_file.stem.startswith(("edge-", "worker-")):
            localcluster.stop_process(root, pid_file.stem)
    for name in net.namespaces():
        if name not in (LB, CDN) and not name.startswith("client-"):
            try:
                nodes.kill_all(Node(name, 0, "", ""))
            except net.NetError as error:
                failed.append(str(error))
    for pid_file in sorted(pid_dir.glob("*.pid")) if pid_dir.is_dir() else []:
        localcluster.stop_process(root, pid_file.stem)
    for node_dir in (root / "nodes").glob("*"):
        nodes.forget_sandboxes(Paths(root, Node(node_dir.name, 0, "", "")))
    if (root / "cluster").exists():
        try:
            localcluster.down(root / "cluster")
        except localcluster.ClusterError as error:
            failed.append(str(error))
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    for name in net.namespaces():
        net.delete_namespace(name)
    if " veth " in net.run("ip", "-d", "-o", "link", "show", HOST_LINK, check=False):
        net.run("ip", "link", "delete", HOST_LINK)
    # libcni caches each pod's result by network name, and each node's network is eo-<node>.
    for cached in CNI_CACHE.glob(f"*/{net.PREFIX}*"):
        cached.unlink(missing_ok=True)
    # Every kubelet registers its device-plugin socket at a fixed path.
    (KUBELET_DEVICE_PLUGINS / "kubelet.sock").unlink(missing_ok=True)
    for directory in (
        *CNI_CACHE.glob("*"),
        CNI_CACHE,
        KUBELET_DEVICE_PLUGINS,
        KUBELET_DEVICE_PLUGINS.parent,
        nodes.SHIM_SOCKETS,
        nodes.SHIM_SOCKETS.parent,
    ):
        with suppress(OSError):  # only when empty: another runtime may use it
            directory.rmdir()
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for cgroup in hierarchy.glob(f"{net.PREFIX}*") if hierarchy.is_dir() else []:
            nodes.remove_cgroups(cgroup.name)
    if root.exists() and not failed:
        shutil.rmtree(root)
    # Ours, or left by a lab whose processes are gone: either way no lab is up now.
    OWNER_FILE.unlink(missing_ok=True)
    if failed:
        raise LabError("; ".join(failed) + f" (state kept in {root}; run lab down again)")


def http_get(
    host: str, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, str]:
    """One GET on a new connection, from whatever namespace the calling thread is in."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


# --- using a running lab -----------------------------------------------------------------


class Lab:
    """A running lab: its topology, its control plane and ways to send traffic."""

    def __init__(self, root: Path, topology: Topology) -> None:
        self.root = root
        self.topology = topology
        self.cluster_dir = root / "cluster"

    @classmethod
    def load(cls, root: Path) -> Lab:
        root = root.expanduser().resolve()
        try:
            data = json.loads((root / "lab.json").read_text())
        except OSError as error:
            raise LabError(f"no lab in {root}; start one with `make lab-up`") from error
        return cls(root, Topology.from_json(data))

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        return localcluster.operator_kubeconfig(self.cluster_dir)

    def request(
        self,
        client: str,
        host: str,
        *,
        port: int = 80,
        path: str = "/json",
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> tuple[int, str]:
        """One HTTP request on a new connection from a client's namespace."""
        return net.call_in(client, lambda: http_get(host, port, path, headers, timeout))

    def raw(self, client: str, host: str, port: int, data: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes on a new TCP connection from a client; return all it answers."""

        def send() -> bytes:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                sock.sendall(data)
                chunks = []
                with suppress(ConnectionResetError):
                    while chunk := sock.recv(65536):
                        chunks.append(chunk)
                return b"".join(chunks)

        return net.call_in(client, send)

    def from_internet(self) -> dict[str, int]:
        """Packets each node received from clients or the CDN since the lab started."""
        counts = {}
        for node in self.topology.nodes:
            out = net.run(
                "nft", "-j", "list", "counter", "inet", "eo-lab", "from-internet", ns=node.name
            )
            counter = next(
                item["counter"] for item in json.loads(out)["nftables"] if "counter" in item
            )
            counts[node.name] = int(counter["packets"])
        return counts

    def load_balancer(self) -> dict[str, Any]:
        """What the load balancer knows: per Service its address, mode and node health."""
        try:
            state: dict[str, Any] = json.loads((self.root / "lb" / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return state

    def set_cdn_origin(self, address: str, port: int = 80) -> None:
        """Point the CDN (an L7 proxy adding X-Forwarded-For) at ``address:port``."""
        proxies.run(self.root, "cdn", CDN, proxies.cdn_config(CDN_ADDRESS, address, port))

        def listening() -> bool:
            with socket.create_connection((CDN_ADDRESS, 80), timeout=1):
                return True

        _wait("the CDN to listen", lambda: net.call_in(CDN, listening), self.root, timeout=15)

        def answers() -> bool:
            # A fresh proxy's first connection to the origin may wait out its connect
            # timeout (2 s, retried): callers check headers, not the proxy's start.
            try:
                status, _ = net.call_in(CDN, lambda: http_get(CDN_ADDRESS, 80, "/", timeout=10))
            except OSError:
                return False
            return status < 500

        _wait(f"the CDN to reach {address}:{port}", answers, self.root, timeout=30)

    def memory(self) -> dict[str, int]:
        """Resident memory in bytes: of each node (its daemons and pods), of the
        control plane (with the operator when `make demo` runs it) and of the rest."""

        def rss(pids: set[int]) -> int:
            total = 0
            for pid in pids:
                with suppress(OSError, ValueError, IndexError):
                    status = Path(f"/proc/{pid}/status").read_text()
                    total += int(status.split("VmRSS:")[1].split()[0]) * 1024
            return total

        def started(directory: Path) -> set[int]:
            pids = (
                localcluster.process_pid(directory, p.stem) for p in directory.glob("pids/*.pid")
            )
            return {pid for pid in pids if pid is not None}

        per_node = {node.name: nodes.cgroup_pids(node) for node in self.topology.nodes}
        used = {name: rss(pids) for name, pids in per_node.items()}
        used["control plane"] = rss(started(self.cluster_dir))
        node_daemons = set().union(*per_node.values())
        used["load balancer, CDN, API socket"] = rss(started(self.root) - node_daemons)
        return used

    def import_images(self, wanted: list[images.Image]) -> None:
        """Write ``wanted`` (cached by binary) and import them into every node's
        containerd under the names pod specs use."""
        archives = [images.archive(i, localcluster.cache_dir() / "lab-images") for i in wanted]
        for node in self.topology.nodes:
            for archive in archives:
                _import(Paths(self.root, node), archive)

    def stop_daemon(self, node: str, daemon: str) -> None:
        """Stop one daemon of a node (kube-proxy, kubelet, containerd), by its PID."""
        localcluster.stop_process(self.root, f"{node}-{daemon}")

    def start_daemon(self, node: str, daemon: str) -> int:
        """Start a stopped daemon of a node again, as the lab first started it."""
        name = f"{node}-{daemon}"
        pid = localcluster.process_pid(self.root, name)
        if pid is None:
            argv = json.loads((self.root / "argv" / f"{name}.json").read_text())
            pid = _start(self.root, name, argv)
        return pid

    def cut(self, node: str) -> None:
        """Cut a node off, its pods still running: its link to the node network down, and
        its way to the API server (a forwarder on the node's own loopback, so the link
        alone does not carry it) dropped in both directions, like a partition: nothing is
        refused, packets vanish and senders retransmit."""
        net.ip("link", "set", f"v-{node}", "down", ns=LB)
        net.nft(
            node,
            "table inet eo-cut {\n"
            "  chain input {\n"
            "    type filter hook input priority filter - 10; policy accept;\n"
            f"    ip daddr {API_ADDRESS} tcp dport {API_PORT} drop\n"
            "  }\n"
            "  chain output {\n"
            "    type filter hook output priority filter - 10; policy accept;\n"
            f"    ip saddr {API_ADDRESS} tcp sport {API_PORT} drop\n"
            "  }\n"
            "}\n",
        )

    def reconnect(self, node: str) -> None:
        """Undo cut(): what senders retransmit gets through again."""
        net.run("nft", "delete", "table", "inet", "eo-cut", ns=node)
        net.ip("link", "set", f"v-{node}", "up", ns=LB)

    def processes(self) -> Iterator[tuple[str, int | None]]:
        for pid_file in sorted((self.root / "pids").glob("*.pid")):
            yield pid_file.stem, localcluster.process_pid(self.root, pid_file.stem)
