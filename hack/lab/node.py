"""One real node of the lab: containerd, kubelet and kube-proxy in a network namespace.

Each node has its own address on the node network, its own containerd (root, state,
socket, runc root, CNI network and pod subnet) and its own cgroup subtree
``/eo-<node>``: kubelet's cgroupRoot, with the node's daemons in ``system`` below it.
Everything the node starts (containerd's shims, the pods) lives in that subtree, so
stopping a node means killing exactly the processes in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import localcluster
from lab import net

CGROUP_ROOT = Path("/sys/fs/cgroup")
SHIM_SOCKETS = Path("/run/containerd/s")
CNI_RESULTS = Path("/var/lib/cni/results")
#: Where each node reaches the API server: an address on the node's own loopback,
#: where socat forwards to the host's API socket (the API server listens on 127.0.0.1).
API_ADDRESS = "10.255.255.1"
API_PORT = 6443
CLUSTER_CIDR = "10.244.0.0/16"
NODE_NETWORK = "10.200.0"
NODE_GATEWAY = f"{NODE_NETWORK}.1"
CNI_BIN = "/usr/lib/cni"
# cgroup v1 controllers whose files must be filled in before a process can join.
_CPUSET_FILES = ("cpuset.cpus", "cpuset.mems")


@dataclass(frozen=True)
class Node:
    name: str
    index: int  # 1-based, unique over the lab
    pool: str  # the nodepool label: "edge" (candidates) or "general" (workers)
    zone: str

    @property
    def ip(self) -> str:
        return f"{NODE_NETWORK}.{10 + self.index}"

    @property
    def pod_cidr(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def cgroup(self) -> str:
        return net.netns(self.name)


class Paths:
    """Files of one node under the lab's state directory."""

    def __init__(self, root: Path, node: Node) -> None:
        self.dir = root / "nodes" / node.name
        self.containerd_config = self.dir / "containerd.toml"
        self.containerd_sock = self.dir / "containerd.sock"
        self.kubelet_config = self.dir / "kubelet.yaml"
        self.kubelet_kubeconfig = self.dir / "kubelet.kubeconfig"
        self.kubelet_root = self.dir / "kubelet"
        self.proxy_config = self.dir / "kube-proxy.yaml"
        self.proxy_kubeconfig = self.dir / "kube-proxy.kubeconfig"
        self.cni = self.dir / "cni"


def _kubeconfig(ca: Path, crt: Path, key: Path) -> str:
    cluster = {
        "server": f"https://{API_ADDRESS}:{API_PORT}",
        "certificate-authority": str(ca),
        # The API server's certificate names `kubernetes`, not this forwarding address.
        "tls-server-name": "kubernetes",
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "lab", "cluster": cluster}],
            "users": [
                {"name": "lab", "user": {"client-certificate": str(crt), "client-key": str(key)}}
            ],
            "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
            "current-context": "lab",
        },
        indent=2,
    )


def _containerd_config(paths: Paths, sandbox_image: str) -> str:
    d = paths.dir / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{paths.containerd_sock}"

[ttrpc]
  address = "{paths.containerd_sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # The kubelet asks for oom_score_adj -998 on sandboxes; without CAP_SYS_RESOURCE in
  # this machine's bounding set runc's nsexec fails to write it ("can't get final
  # child's PID from pipe"), unless containerd clamps it to its own score.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state directory, not /run/netns: teardown finds
  # and unmounts exactly this node's.
  netns_mounts_under_state_dir = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{d / "runc"}"

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{paths.cni / "conf"}"
"""


def _cni_config(paths: Paths, node: Node) -> str:
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": node.pod_cidr}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(paths.cni / "ipam"),
    }
    bridge = {
        "type": "bridge",
        "bridge": "cni0",
        "isGateway": True,
        # No masquerade: pods reach other nodes' pods by the routes between nodes,
        # and a backend must see the edge pod's own address.
        "ipMasq": False,
        "hairpinMode": True,
        "ipam": ipam,
    }
    plugins = [bridge, {"type": "portmap", "capabilities": {"portMappings": True}}]
    return json.dumps({"cniVersion": "1.0.0", "name": node.cgroup, "plugins": plugins}, indent=2)


#: The cluster DNS Service's address (in the control plane's --service-cluster-ip-range).
CLUSTER_DNS = "10.96.0.10"


def _kubelet_config(paths: Paths, node: Node, ca: Path) -> str:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "containerRuntimeEndpoint": f"unix://{paths.containerd_sock}",
        # This machine's cgroups are v1 (hybrid): kubelet 1.35+ refuses v1 unless told.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{node.cgroup}",
        "failSwapOn": False,
        "podLogsDir": str(paths.dir / "pod-logs"),
        "authentication": {
            "x509": {"clientCAFile": str(ca)},
            "webhook": {"enabled": False},
            "anonymous": {"enabled": False},
        },
        "authorization": {"mode": "AlwaysAllow"},
        # Several kubelets share one disk and one memory: never evict for their sake.
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 30,
        "resolvConf": "",
        # The cluster DNS, as a cluster has one (run only where a test needs it:
        # lab.envoy_gateway.cluster_dns; Envoy finds its xDS server by name).
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": "cluster.local",
    }
    return json.dumps(config, indent=2)


def _proxy_config(paths: Paths, node: Node) -> str:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(paths.proxy_kubeconfig)},
        "hostnameOverride": node.name,
        # 0.0.0.0:10256 in the node's namespace: where a load balancer checks a node
        # under externalTrafficPolicy Cluster.
        "healthzBindAddress": "0.0.0.0:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{node.ip}/32"],
        "clusterCIDR": CLUSTER_CIDR,
        # No conntrack sysctl writes: they are global or refused in a namespace.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    return json.dumps(config, indent=2)


def write_files(root: Path, cluster_dir: Path, node: Node, sandbox_image: str) -> Paths:
    """Certificates, kubeconfigs and configuration files of one node."""
    paths = Paths(root, node)
    pki = root / "pki"
    ca = cluster_dir / "pki" / "ca.crt"
    for sub in ("", "kubelet", "pod-logs", "cni/conf", "cni/ipam", "containerd"):
        (paths.dir / sub).mkdir(parents=True, exist_ok=True)
    crt, key = localcluster.issue_client_cert(
        cluster_dir, pki, f"kubelet-{node.name}", f"/O=system:nodes/CN=system:node:{node.name}"
    )
    paths.kubelet_kubeconfig.write_text(_kubeconfig(ca, crt, key))
    crt, key = localcluster.issue_client_cert(
        cluster_dir, pki, "kube-proxy", "/CN=system:kube-proxy"
    )
    paths.proxy_kubeconfig.write_text(_kubeconfig(ca, crt, key))
    paths.containerd_config.write_text(_containerd_config(paths, sandbox_image))
    (paths.cni / "conf" / "10-lab.conflist").write_text(_cni_config(paths, node))
    paths.kubelet_config.write_text(_kubelet_config(paths, node, ca))
    paths.proxy_config.write_text(_proxy_config(paths, node))
    return paths


# --- cgroups ----------------------------------------------------------------------------


def _hierarchies() -> list[Path]:
    return sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink())


def make_cgroups(node: Node) -> None:
    """``/eo-<node>`` and ``/eo-<node>/system`` in every hierarchy."""
    for hierarchy in _hierarchies():
        parent = hierarchy
        for part in (node.cgroup, "system"):
            child = parent / part
            child.mkdir(exist_ok=True)
            # A v1 cpuset cgroup takes no process until it has CPUs and memory nodes.
            for name in _CPUSET_FILES:
                src, dst = parent / name, child / name
                if src.exists() and not dst.read_text().strip():
                    dst.write_text(src.read_text())
            parent = child


def cgroup_pids(node: Node) -> set[int]:
    """Every process in the node's cgroup subtree, over all hierarchies."""
    pids: set[int] = set()
    for hierarchy in _hierarchies():
        top = hierarchy / node.cgroup
        if not top.is_dir():
            continue
        for procs in top.rglob("cgroup.procs"):
            try:
                pids.update(int(line) for line in procs.read_text().split())
            except OSError:
                continue
    return pids


def _shim_files(pid: int) -> list[Path]:
    """What a containerd shim's pod leaves outside the node's directory when killed:
    the shim's socket, computed as containerd 1.6 does (runtime/v2/shim/util_unix.go
    SocketAddress: /run/containerd/s/ and the sha256 of "<address>/<namespace>/<id>"),
    and libcni's cached results for the sandbox (named after the network and its id)."""
    try:
        argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        return []
    if not Path(argv[0]).name.startswith("containerd-shim"):
        return []
    flags = dict(zip(argv[1::2], argv[2::2], strict=False))
    if not {"-namespace", "-id", "-address"} <= flags.keys():
        return []
    key = os.path.join(flags["-address"], flags["-namespace"], flags["-id"])
    socket = SHIM_SOCKETS / hashlib.sha256(key.encode()).hexdigest()
    return [socket, *CNI_RESULTS.glob(f"*-{flags['-id']}-*")]


def forget_sandboxes(paths: Paths) -> None:
    """Remove what the node's pod sandboxes left outside its directory, by the ids its
    containerd recorded (a shim that exited on its own is no longer there to ask)."""
    state, root = paths.dir / "containerd" / "state", paths.dir / "containerd" / "root"
    recorded = (
        state / "io.containerd.runtime.v2.task" / "k8s.io",
        state / "io.containerd.grpc.v1.cri" / "sandboxes",
        root / "io.containerd.grpc.v1.cri" / "sandboxes",
        root / "io.containerd.grpc.v1.cri" / "containers",
    )
    ids = {
        entry.name for directory in recorded if directory.is_dir() for entry in directory.iterdir()
    }
    for sandbox in ids:
        key = os.path.join(str(paths.containerd_sock), "k8s.io", sandbox)
        (SHIM_SOCKETS / hashlib.sha256(key.encode()).hexdigest()).unlink(missing_ok=True)
        for cached in CNI_RESULTS.glob(f"*-{sandbox}-*"):
            cached.unlink(missing_ok=True)


def kill_all(node: Node, timeout: float = 15.0) -> None:
    """SIGKILL every process of the node (daemons, shims, pods) until none is left,
    then remove what its containerd shims leave outside the node's directory."""
    deadline = time.monotonic() + timeout
    leftovers = {path for pid in cgroup_pids(node) for path in _shim_files(pid)}
    while pids := cgroup_pids(node):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise net.NetError(f"processes of node {node.name} survive SIGKILL: {sorted(pids)}")
        time.sleep(0.1)
    for path in leftovers:
        path.unlink(missing_ok=True)


def remove_cgroups(name: str) -> None:
    """rmdir the cgroup subtree ``/name`` in every hierarchy, deepest first."""
    for hierarchy in _hierarchies():
        top = hierarchy / name
        if not top.is_dir():
            continue
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, top]:
            with suppress(FileNotFoundError):
                d.rmdir()


def wrap(node_cgroup: str, ns: str, argv: list[str]) -> list[str]:
    """argv run in the node's ``system`` cgroup (every hierarchy) and namespace."""
    script = (
        'cg="$1"; ns="$2"; shift 2; '
        'for h in /sys/fs/cgroup/*/; do [ -d "$h$cg" ] && echo $$ > "$h$cg/cgroup.procs"; done; '
        'exec nsenter --net="$ns" "$@"'
    )
    return [
        "/bin/sh", "-c", script, "lab-run",
        f"{node_cgroup}/system", str(net.NETNS_DIR / ns), *argv,
    ]  # fmt: skip
