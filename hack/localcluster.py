#!/usr/bin/env python3
"""A throw-away local Kubernetes control plane for edge-operator's tests.

Runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as
plain processes bound to 127.0.0.1 (no Docker needed) and registers fake kwok
Nodes spread over zones. Everything lives in one state directory.

    python3 hack/localcluster.py {up,down,status,env} [--dir DIR] [--nodes N] [--zones Z]

Stdlib only, because it runs before the project's virtualenv exists. The
pytest plugin imports up(), down(), kubectl_path() and bin_dir().
"""

from __future__ import annotations

import argparse
import base64
import http
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

HACK_DIR = Path(__file__).resolve().parent
# Start order; stopping goes in reverse so no component outlives its backend.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
PORTS = ("etcd-client", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
OPERATOR_USER = "edge-operator"
#: The Helm chart's ServiceAccount (release edge-operator in edge-system), audited too.
CHART_SERVICE_ACCOUNT = "system:serviceaccount:edge-system:edge-operator"
# RBAC's bootstrap policy already grants these identities what they need.
CLIENTS = {
    "admin": "/CN=edge-admin/O=system:masters",
    # The operator's own identity, so the audit log can tell its requests apart.
    OPERATOR_USER: f"/CN={OPERATOR_USER}/O=system:masters",
    "kube-controller-manager": "/CN=system:kube-controller-manager",
    "kube-scheduler": "/CN=system:kube-scheduler",
}
# Everything up() writes; down() refuses to delete a directory holding more.
KWOK_STAGES_FILE = "kwok-stages.yaml"
LAYOUT = frozenset(
    {"audit", "etcd", "kubeconfig", "kubeconfigs", "logs", "pids", "pki", "ports.json",
     KWOK_STAGES_FILE}
)  # fmt: skip
# Every request the operator's identity makes, at Metadata level (no bodies), and
# nothing else: tests count the operator's writes in this log.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "users": [OPERATOR_USER, CHART_SERVICE_ACCOUNT]},
        {"level": "None"},
    ],
}
CONTEXT = "edge-operator-local"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
STARTUP_TIMEOUT = 120.0
POLL_INTERVAL = 0.25
STOP_GRACE = 10.0


#: kwok's node status heartbeat in this cluster: each node every 20-45 s. kwok v0.7.0's
#: own default without node Leases is the 600-610 s heartbeat meant for nodes that hold
#: Leases (pkg/kwok/cmd/root.go: getDefaultNodeStages(NodeLeaseDurationSeconds == 0)),
#: longer than the node controller's grace period, so nodes flapped NotReady.
HEARTBEAT_MS = (20_000, 45_000)
#: kwok --config Stages. Given any Node Stage, kwok uses none of its default Node Stages
#: (root.go), so both are here: node-initialize verbatim from kwok's
#: kustomize/stage/node/fast/node-initialize.yaml and the heartbeat of
#: kustomize/stage/node/heartbeat with the delay given. Pods keep kwok's default Stages.
_KWOK_STAGES = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $lastTransitionTime | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type  | Quote}}
      {{ end }}

      addresses:
      {{ with .status.addresses }}
      {{ YAML . 1 }}
      {{ else }}
      {{ with NodeIP }}
      - address: {{ . | Quote }}
        type: InternalIP
      {{ end }}
      {{ with NodeName }}
      - address: {{ . | Quote }}
        type: Hostname
      {{ end }}
      {{ end }}

      {{ with NodePort }}
      daemonEndpoints:
        kubeletEndpoint:
          Port: {{ . }}
      {{ end }}

      allocatable:
      {{ with .status.allocatable }}
      {{ YAML . 1 }}
      {{ else }}
        cpu: 1k
        memory: 1Ti
        pods: 1M
      {{ end }}
      capacity:
      {{ with .status.capacity }}
      {{ YAML . 1 }}
      {{ else }}
        cpu: 1k
        memory: 1Ti
        pods: 1M
      {{ end }}

      {{ $nodeInfo := .status.nodeInfo }}
      {{ $kwokVersion := printf "kwok-%s" Version }}
      nodeInfo:
        architecture: {{ or $nodeInfo.architecture "amd64" }}
        bootID: {{ or $nodeInfo.bootID `""` }}
        containerRuntimeVersion: {{ or $nodeInfo.containerRuntimeVersion $kwokVersion }}
        kernelVersion: {{ or $nodeInfo.kernelVersion $kwokVersion }}
        kubeProxyVersion: {{ or $nodeInfo.kubeProxyVersion $kwokVersion }}
        kubeletVersion: {{ or $nodeInfo.kubeletVersion $kwokVersion }}
        machineID: {{ or $nodeInfo.machineID `""` }}
        operatingSystem: {{ or $nodeInfo.operatingSystem "linux" }}
        osImage: {{ or $nodeInfo.osImage `""` }}
        systemUUID: {{ or $nodeInfo.systemUUID `""` }}
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-heartbeat
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'In'
      values:
      - 'True'
  delay:
    durationMilliseconds: @MIN_MS@
    jitterDurationMilliseconds: @MAX_MS@
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $lastTransitionTime | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}
  immediateNextStage: true
"""


def kwok_stages(min_ms: int, max_ms: int) -> str:
    """kwok's Node Stages with a heartbeat every ``min_ms``-``max_ms``, uniformly."""
    return _KWOK_STAGES.replace("@MIN_MS@", str(min_ms)).replace("@MAX_MS@", str(max_ms))


class ClusterError(Exception):
    """The local cluster could not be started, reached or stopped."""


def _versions() -> dict[str, str]:
    lines = (HACK_DIR / "versions.env").read_text().splitlines()
    pairs = (ln.split("=", 1) for ln in lines if "=" in ln and not ln.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def cache_dir() -> Path:
    # Same rule as build-k8s.sh's ${EDGE_OPERATOR_CACHE:-...}: empty means unset.
    return Path(os.environ.get("EDGE_OPERATOR_CACHE") or Path.home() / ".cache/edge-operator")


def bin_dir() -> Path:
    """Directory where hack/build-k8s.sh puts kube-apiserver & co. and kubectl."""
    return cache_dir() / f"k8s-{_versions()['K8S_VERSION']}" / "bin"


def kubectl_path() -> Path:
    """The kubectl of the same version as the local control plane."""
    return bin_dir() / "kubectl"


def helm_path() -> Path:
    """The helm that hack/build-k8s.sh builds."""
    return cache_dir() / f"helm-{_versions()['HELM_VERSION']}" / "bin" / "helm"


def checkov_path() -> Path:
    """The checkov that hack/build-k8s.sh installs into a virtualenv of its own."""
    return cache_dir() / f"checkov-{_versions()['CHECKOV_VERSION']}" / "bin" / "checkov"


def k8s_version() -> str:
    """Version of the local control plane, e.g. v1.36.3."""
    return _versions()["K8S_VERSION"]


def default_dir() -> Path:
    """The state directory: $EDGE_OPERATOR_CLUSTER_DIR, else ~/.cache/edge-operator/cluster."""
    fallback = Path.home() / ".cache/edge-operator/cluster"
    return Path(os.environ.get("EDGE_OPERATOR_CLUSTER_DIR") or fallback)


class _State:
    """Where one cluster keeps its files."""

    def __init__(self, root: Path) -> None:
        # Resolved, so that it matches what /proc/<pid>/cmdline shows later.
        self.root = root.expanduser().resolve()
        self.pki = self.root / "pki"
        self.kubeconfig = self.root / "kubeconfig"
        self.ports_file = self.root / "ports.json"
        self.audit_policy = self.root / "audit" / "policy.json"
        self.audit_log = self.root / "audit" / "audit.log"

    def component_kubeconfig(self, client: str) -> Path:
        return self.root / "kubeconfigs" / f"{client}.kubeconfig"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.root / "pids" / f"{name}.pid"

    def ports(self) -> dict[str, int]:
        return {name: int(port) for name, port in json.loads(self.ports_file.read_text()).items()}


def _write_private(path: Path, text: str) -> None:
    # Atomic, so a reader never sees half a kubeconfig; 0600 because it embeds keys.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise ClusterError(f"{' '.join(cmd[:2])} failed:\n{proc.stderr}")


def _build() -> Path:
    # stderr passes through so that a cold build shows its progress.
    script = HACK_DIR / "build-k8s.sh"
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode or not proc.stdout.strip():
        raise ClusterError(f"{script} failed")
    return Path(proc.stdout.strip().splitlines()[-1])


def _issue(pki: Path, name: str, subject: str, *extensions: str, ca: Path | None = None) -> None:
    # EC keys take milliseconds to generate, RSA ones far longer. The CA signs itself.
    ca = ca or pki
    signer = [] if name == "ca" else ["-CA", str(ca / "ca.crt"), "-CAkey", str(ca / "ca.key")]
    # -config /dev/null keeps the distro's openssl.cnf from adding CA:TRUE to leaves.
    _run(
        "openssl", "req", "-x509", "-new", "-config", os.devnull, *signer,
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc",
        "-keyout", str(pki / f"{name}.key"), "-out", str(pki / f"{name}.crt"),
        "-days", "3650", "-subj", subject,
        *(arg for ext in extensions for arg in ("-addext", ext)),
    )  # fmt: skip


def _ensure_pki(pki: Path) -> None:
    names = ("ca", "kube-apiserver", *CLIENTS)
    wanted = [pki / f"{name}.{ext}" for name in names for ext in ("crt", "key")]
    if all(path.exists() for path in [*wanted, pki / "sa.key", pki / "sa.pub"]):
        return
    # All or nothing: a leaf signed by a CA that no longer exists is useless.
    shutil.rmtree(pki, ignore_errors=True)
    pki.mkdir(parents=True, mode=0o700)
    ca_usage = ("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign")
    _issue(pki, "ca", "/CN=edge-operator-local-ca", *ca_usage)
    leaf = ("basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature")
    # 10.96.0.1 is the `kubernetes` Service's ClusterIP, first of --service-cluster-ip-range.
    sans = "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc"
    _issue(pki, "kube-apiserver", "/CN=kube-apiserver", *leaf, "extendedKeyUsage=serverAuth",
           f"subjectAltName={sans}")  # fmt: skip
    for client, subject in CLIENTS.items():
        _issue(pki, client, subject, *leaf, "extendedKeyUsage=clientAuth")
    rsa = ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
    _run("openssl", "genpkey", *rsa, "-out", str(pki / "sa.key"))
    _run("openssl", "pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def issue_client_cert(dir: Path, pki: Path, name: str, subject: str) -> tuple[Path, Path]:
    """A client certificate for ``subject`` signed by the CA of the cluster in dir,
    written to pki/NAME.{crt,key} unless there; returns (certificate, key)."""
    crt, key = pki / f"{name}.crt", pki / f"{name}.key"
    if not (crt.exists() and key.exists()):
        pki.mkdir(parents=True, exist_ok=True, mode=0o700)
        leaf = ("basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature")
        _issue(pki, name, subject, *leaf, "extendedKeyUsage=clientAuth", ca=_State(dir).pki)
    return crt, key


def _kubeconfig(pki: Path, port: int, client: str) -> str:
    def data(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    cluster = {"server": f"https://127.0.0.1:{port}", "certificate-authority-data": data("ca.crt")}
    user = {
        "client-certificate-data": data(f"{client}.crt"),
        "client-key-data": data(f"{client}.key"),
    }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": client, "user": user}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": client}}],
        "current-context": CONTEXT,
    }
    # JSON is valid YAML, and json is in the stdlib.
    return json.dumps(config, indent=2) + "\n"


def _opener(context: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    # Go's clients never proxy 127.0.0.1, but urllib would use $http(s)_proxy for it.
    handlers = (urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


class Api:
    """A minimal client for the local apiserver, authenticated as the admin."""

    def __init__(self, state: _State) -> None:
        self.base = f"https://127.0.0.1:{state.ports()['kube-apiserver']}"
        context = ssl.create_default_context(cafile=state.pki / "ca.crt")
        context.load_cert_chain(state.pki / "admin.crt", state.pki / "admin.key")
        self._opener = _opener(context)

    def call(
        self, method: str, path: str, body: object = None, content_type: str = "application/json"
    ) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", content_type)
        with self._opener.open(request, timeout=5) as response:
            return bytes(response.read())

    def ready(self) -> bool:
        return _succeeds(lambda: self.call("GET", "/readyz") == b"ok")


def api(dir: Path) -> Api:
    """An admin client of the running cluster in dir."""
    return Api(_State(dir))


def _succeeds(probe: Callable[[], object]) -> bool:
    # Refused connections, TLS and HTTP errors, missing files: all mean "not (yet)".
    try:
        return bool(probe())
    except (OSError, http.client.HTTPException, ValueError, KeyError):
        return False


def _get_ok(url: str) -> bool:
    with _opener().open(url, timeout=2) as response:
        return bool(response.status == http.HTTPStatus.OK)


def _cmdline(pid: int) -> list[bytes] | None:
    """pid's argv, or None once it has exited (a zombie has none).

    A process in the middle of an exec (a wrapper such as sh or nsenter starting its
    command) reads an empty command line for a moment: that is waited out.
    """
    deadline = time.monotonic() + 0.5
    while True:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
        if raw or zombie or time.monotonic() > deadline:
            return raw.split(b"\0") if raw else None
        time.sleep(0.01)


def _owned(state: _State, name: str, pid: int) -> bool:
    """Whether pid is still this cluster's `name`, not a recycled PID or a zombie."""
    # Reap it if it is our exited child: a zombie still passes kill(pid, 0).
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    argv = _cmdline(pid)
    if argv is None:
        return False
    # Every process is given a path under its state dir: that tells clusters apart.
    # Extra processes (spawn()) may be scripts whose argv[0] is their interpreter.
    marker, root = os.fsencode(f"{state.root}{os.sep}"), os.fsencode(str(state.root))
    named = name not in COMPONENTS or Path(os.fsdecode(argv[0])).name == name
    return named and any(marker in arg or arg == root for arg in argv)


def _running(state: _State) -> dict[str, int]:
    pids = {}
    for name in COMPONENTS:
        with suppress(OSError, ValueError):
            pid = int(state.pid_file(name).read_text())
            if _owned(state, name, pid):
                pids[name] = pid
    return pids


def _spawn(state: _State, name: str, argv: list[str]) -> None:
    for path in (state.log(name), state.pid_file(name)):
        path.parent.mkdir(parents=True, exist_ok=True)
    append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    redirects = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(state.log(name)), append, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    # posix_spawn, not Popen: a Popen dropped while its child runs warns "subprocess
    # is still running" inside the pytest process that called up(). setsid detaches
    # the child from our terminal, so a ^C reaches only this script, which cleans up.
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=redirects, setsid=True)
    except OSError as error:
        raise ClusterError(f"cannot start {name}: {error}") from error
    state.pid_file(name).write_text(f"{pid}\n")
    # posix_spawn returns mid-exec, while /proc/<pid>/cmdline still reads empty and
    # _owned() would take the child for dead. A child that did die is reaped by
    # _owned(), which ends the wait early too.
    deadline = time.monotonic() + 2
    while not _owned(state, name, pid) and Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)


def _stop(state: _State, name: str) -> None:
    with suppress(OSError, ValueError):
        pid = int(state.pid_file(name).read_text())
        signalled = False
        # The scheduler can hang on SIGTERM, hence SIGKILL after the grace period.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            deadline = time.monotonic() + STOP_GRACE
            if _owned(state, name, pid):
                os.kill(pid, sig)
                signalled = True
            while _owned(state, name, pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        # When up() ran in this process the component is our child: reap it, or it
        # lingers as a zombie. It has exited, or is exiting after SIGKILL, by now.
        if signalled:
            with suppress(ChildProcessError):
                os.waitpid(pid, 0)
    state.pid_file(name).unlink(missing_ok=True)


def _extras(state: _State) -> list[str]:
    pids = state.root / "pids"
    found = pids.glob("*.pid") if pids.is_dir() else ()
    return sorted(p.stem for p in found if p.stem not in COMPONENTS)


def _stop_all(state: _State) -> None:
    # Extras (the operator of `make demo`) first: they talk to the API server.
    for name in [*_extras(state), *reversed(COMPONENTS)]:
        _stop(state, name)


def _wait_for(state: _State, what: str, ready: Callable[[], bool], deadline: float) -> None:
    """Poll ready() until it holds, failing fast if a started component died."""
    while not ready():
        running = _running(state)
        for name in COMPONENTS:
            if state.pid_file(name).exists() and name not in running:
                log = state.log(name)
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                raise ClusterError(f"{name} exited during start-up; end of {log}:\n{tail}")
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out waiting for {what}; see the logs in {state.root}/logs")
        time.sleep(POLL_INTERVAL)


def _argv(
    state: _State,
    ports: dict[str, int],
    k8s_bin: Path,
    node_monitor_grace_period: str = "120s",
    kwok_config: Path | None = None,
) -> dict[str, list[str]]:
    pki, kwok_version = state.pki, _versions()["KWOK_VERSION"]
    etcd = str(cache_dir() / f"etcd-{_versions()['ETCD_VERSION']}" / "bin" / "etcd")
    etcd_url = f"http://127.0.0.1:{ports['etcd-client']}"
    peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"

    def serve(name: str) -> list[str]:
        return [str(k8s_bin / name), "--bind-address=127.0.0.1", f"--secure-port={ports[name]}"]

    def client(name: str) -> list[str]:
        kubeconfig = state.component_kubeconfig(name)
        return [*serve(name), f"--kubeconfig={kubeconfig}", "--leader-elect=false"]

    return {
        "etcd": [
            etcd, "--name=local", f"--data-dir={state.root / 'etcd'}", "--logger=zap",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=local={peer_url}",
        ],
        "kube-apiserver": [
            *serve("kube-apiserver"), "--advertise-address=127.0.0.1",
            f"--etcd-servers={etcd_url}", "--service-cluster-ip-range=10.96.0.0/16",
            # No kubelet answers on the advertised address, so don't publish it.
            "--endpoint-reconciler-type=none", "--authorization-mode=Node,RBAC",
            # Real nodes (hack/lab) have no resolvable hostname; logs and exec go to the IP.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'kube-apiserver.crt'}",
            f"--tls-private-key-file={pki / 'kube-apiserver.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--audit-policy-file={state.audit_policy}", f"--audit-log-path={state.audit_log}",
            "--audit-log-format=json", "--audit-log-maxsize=100", "--audit-log-maxbackup=1",
        ],
        "kube-controller-manager": [
            *client("kube-controller-manager"), "--controllers=*",
            "--use-service-account-credentials=true", "--kube-api-qps=100", "--kube-api-burst=200",
            # kwok's status heartbeats come every 20-45 s; leave them room.
            f"--node-monitor-grace-period={node_monitor_grace_period}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
        ],
        "kube-scheduler": client("kube-scheduler"),
        "kwok": [
            str(cache_dir() / f"kwok-{kwok_version}" / "bin" / "kwok"),
            f"--kubeconfig={state.component_kubeconfig('admin')}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector={}={}".format(*KWOK_ANNOTATION),
            # Not the developer's ~/.kwok/kwok.yaml: our Stages (HEARTBEAT_MS), always.
            # Without --server-address kwok opens no port at all, which is all we need.
            f"--config={kwok_config or state.root / KWOK_STAGES_FILE}",
            # No node Leases: kwok v0.7 leaves pods on a node alone until it holds the
            # node's Lease, and after a node is deleted its Lease handling lags more
            # with every deletion (a pod on a new node took 6 s, then 27 s, then 73 s).
            # Heartbeats then go into the node status every 20-45 s instead.
        ],
    }  # fmt: skip


def _free_ports() -> dict[str, int]:
    # All sockets stay open until every port is picked, so none is handed out twice.
    with ExitStack() as stack:
        sockets = {name: stack.enter_context(socket.socket()) for name in PORTS}
        for sock in sockets.values():
            sock.bind(("127.0.0.1", 0))
        return {name: sock.getsockname()[1] for name, sock in sockets.items()}


def _start(
    state: _State,
    k8s_bin: Path,
    node_monitor_grace_period: str = "120s",
    kwok_config: Path | None = None,
) -> None:
    """Start every component from a clean slate; only the certificates are kept."""
    _stop_all(state)
    for leftover in ("etcd", "logs", "pids", "kubeconfigs", "audit"):
        shutil.rmtree(state.root / leftover, ignore_errors=True)
    state.kubeconfig.unlink(missing_ok=True)
    # The start-up deadline counts from here: a cold build, or a wait for another
    # checkout's build to finish with the cache, takes minutes.
    deadline = time.monotonic() + STARTUP_TIMEOUT
    _ensure_pki(state.pki)
    ports = _free_ports()
    _write_private(state.ports_file, json.dumps(ports, indent=2) + "\n")
    for client in CLIENTS:
        kubeconfig = _kubeconfig(state.pki, ports["kube-apiserver"], client)
        _write_private(state.component_kubeconfig(client), kubeconfig)
    _write_private(state.audit_policy, json.dumps(AUDIT_POLICY, indent=2) + "\n")
    _write_private(state.root / KWOK_STAGES_FILE, kwok_stages(*HEARTBEAT_MS))
    argv = _argv(state, ports, k8s_bin, node_monitor_grace_period, kwok_config)
    etcd_health = f"http://127.0.0.1:{ports['etcd-client']}/health"
    # Each backend is waited for, though its clients would retry: when something
    # breaks, the error then names the culprit instead of a timeout further on.
    _spawn(state, "etcd", argv["etcd"])
    _wait_for(state, "etcd", lambda: _succeeds(lambda: _get_ok(etcd_health)), deadline)
    _spawn(state, "kube-apiserver", argv["kube-apiserver"])
    api = Api(state)
    _wait_for(state, "kube-apiserver /readyz", api.ready, deadline)
    for name in COMPONENTS[2:]:
        _spawn(state, name, argv[name])
    # Pods are rejected until the controller-manager has created this account.
    account = "/api/v1/namespaces/default/serviceaccounts/default"
    _wait_for(state, account, lambda: _succeeds(lambda: api.call("GET", account)), deadline)


def _node(name: str, zone: str, pool: str, kubelet_version: str) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": zone,
        "type": "kwok",
        "nodepool": pool,
    }
    info = {"kubeletVersion": kubelet_version, "operatingSystem": "linux", "architecture": "amd64"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": dict([KWOK_ANNOTATION])},
        "spec": {"providerID": f"kwok://{name}"},
        "status": {**ready_status(), "nodeInfo": info},
    }


def ready_status() -> dict[str, Any]:
    """The status of a new kwok Node: Ready from the start, and kept so by kwok.

    kwok's own initialisation can take 30-50 s on a busy machine. Its heartbeat
    stage refreshes the conditions of nodes that are Running and Ready, so a node
    created that way is kept Ready from its first second.
    """
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "kwok",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    return {
        "phase": "Running",
        "allocatable": resources,
        "capacity": resources,
        "conditions": [condition],
    }


def _ensure_nodes(state: _State, count: int, zones: int, deadline: float) -> None:
    """Create the missing kwok Nodes, then wait until kwok reports all of them Ready."""
    api, version = Api(state), _versions()["K8S_VERSION"]
    names = [f"kwok-node-{i}" for i in range(1, count + 1)]
    for i, name in enumerate(names):
        # Round-robin over the zones; each zone's first node joins the `edge` pool.
        zone, pool = f"zone-{string.ascii_lowercase[i % zones]}", "edge" if i < zones else "general"
        try:
            api.call("POST", "/api/v1/nodes", _node(name, zone, pool, version))
        except urllib.error.HTTPError as error:
            if error.code != http.HTTPStatus.CONFLICT:  # Conflict: it exists already
                raise ClusterError(f"creating node {name}: {error.read().decode()}") from error
        except OSError as error:
            raise ClusterError(f"creating node {name}: {error}") from error

    def all_ready() -> bool:
        return ready_nodes(api, "type%3Dkwok").issuperset(names)

    _wait_for(state, "the kwok Nodes to be Ready", lambda: _succeeds(all_ready), deadline)


def ready_nodes(api: Api, selector: str = "") -> set[str]:
    """Names of the Nodes (matching the URL-encoded label selector) that are Ready."""
    nodes = json.loads(api.call("GET", f"/api/v1/nodes?labelSelector={selector}"))["items"]
    return {
        node["metadata"]["name"]
        for node in nodes
        for cond in node.get("status", {}).get("conditions", [])
        if cond["type"] == "Ready" and cond["status"] == "True"
    }


def _healthy(state: _State) -> bool:
    if not state.kubeconfig.exists() or len(_running(state)) != len(COMPONENTS):
        return False
    return _succeeds(lambda: Api(state).ready())


def up(
    dir: Path,
    nodes: int = 6,
    zones: int = 3,
    *,
    node_monitor_grace_period: str = "120s",
    kwok_config: Path | None = None,
) -> Path:
    """Start the local cluster in dir, or reuse it if healthy; return its admin kubeconfig.

    A healthy cluster only gets its missing Nodes added; anything else found in
    dir is stopped by PID and started afresh. If start-up fails, whatever it
    started is stopped again and ClusterError is raised.

    For a cluster started here (not one reused): ``node_monitor_grace_period`` is the
    controller-manager's --node-monitor-grace-period, and ``kwok_config`` a kwok
    configuration file (e.g. Stages) given instead of kwok's defaults; a file with
    any Node Stage replaces all of kwok's default Node Stages (hack/bench.py).
    """
    if nodes < 0 or not 1 <= zones <= len(string.ascii_lowercase):
        raise ClusterError(f"need nodes >= 0 and 1 <= zones <= 26, got {nodes=} {zones=}")
    state = _State(dir)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    if _healthy(state):
        _ensure_nodes(state, nodes, zones, deadline)
        _gateway_api(state)
        return state.kubeconfig
    state.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        _start(state, _build(), node_monitor_grace_period, kwok_config)
        _ensure_nodes(state, nodes, zones, time.monotonic() + STARTUP_TIMEOUT)
        _gateway_api(state)
    except BaseException:
        _stop_all(state)
        raise
    # Written last: its presence tells readers that the cluster is usable.
    _write_private(state.kubeconfig, state.component_kubeconfig("admin").read_text())
    return state.kubeconfig


def _gateway_api(state: _State) -> None:
    """Clusters of today have the Gateway API CRDs; the operator serves them when asked."""
    import gateway_api  # noqa: PLC0415 (it imports this module)

    gateway_api.install(state.component_kubeconfig("admin"))


def restart(dir: Path, name: str, down_seconds: float = 0.0) -> None:
    """Stop one control-plane component (by PID) and start it again as it ran, after
    ``down_seconds``: a crash and restart of the API server or etcd, for fault tests."""
    if name not in COMPONENTS:
        raise ClusterError(f"{name} is not a component: {COMPONENTS}")
    state = _State(dir)
    pid = _running(state).get(name)
    argv = _cmdline(pid) if pid else None
    if not argv:
        raise ClusterError(f"{name} is not running in {dir}")
    _stop(state, name)
    time.sleep(down_seconds)
    if argv[-1] == b"":  # /proc/<pid>/cmdline ends with a NUL
        argv = argv[:-1]
    _spawn(state, name, [os.fsdecode(a) for a in argv])


def operator_kubeconfig(dir: Path) -> Path:
    """Kubeconfig of the operator's own identity (user edge-operator, a cluster admin)."""
    return _State(dir).component_kubeconfig(OPERATOR_USER)


def audit_log(dir: Path) -> Path:
    """JSON-lines audit log of every request made as the operator's identity."""
    return _State(dir).audit_log


def down(dir: Path) -> None:
    """Stop the cluster in dir (only the processes it started, by PID) and delete dir."""
    state = _State(dir)
    if not state.root.exists():
        return
    # Leftovers of an interrupted _write_private are ours too.
    names = {entry.name.removeprefix(".").removesuffix(".tmp") for entry in state.root.iterdir()}
    if names - LAYOUT:
        raise ClusterError(f"not deleting {state.root}: it holds {sorted(names - LAYOUT)}")
    _stop_all(state)
    shutil.rmtree(state.root)


def start_process(dir: Path, name: str, argv: list[str]) -> int:
    """Run argv in the background with its pid and log files in dir; return its PID.

    For other tools that keep state the way the cluster does (hack/lab): argv must
    name a path under dir, which is how stop_process and process_pid recognise it.
    """
    state = _State(dir)
    # posix_spawn does not search $PATH.
    program = argv[0] if os.sep in argv[0] else shutil.which(argv[0])
    if program is None:
        raise ClusterError(f"cannot start {name}: {argv[0]} is not installed")
    _spawn(state, name, [program, *argv[1:]])
    pid = int(state.pid_file(name).read_text())
    if not _owned(state, name, pid):
        raise ClusterError(f"{name} exited at once; see {state.log(name)}")
    return pid


def process_pid(dir: Path, name: str) -> int | None:
    """The PID of the process started as ``name`` in dir, if it still runs."""
    state = _State(dir)
    with suppress(OSError, ValueError):
        pid = int(state.pid_file(name).read_text())
        if _owned(state, name, pid):
            return pid
    return None


def stop_process(dir: Path, name: str) -> None:
    """Stop the process started as ``name`` in dir (SIGTERM, then SIGKILL), by PID."""
    _stop(_State(dir), name)


def log_path(dir: Path, name: str) -> Path:
    """The log file of the process started as ``name`` in dir."""
    return _State(dir).log(name)


def spawn(dir: Path, name: str, argv: list[str]) -> int:
    """Run argv in the background as part of the cluster in dir; `down` stops it.

    argv must name a path under dir (e.g. its kubeconfig): that is how `down`
    recognises the process. Idempotent: returns the running process's PID.
    """
    state = _State(dir)
    if name in COMPONENTS:
        raise ClusterError(f"{name} is a cluster component")
    if not _healthy(state):
        raise ClusterError(f"no healthy cluster in {state.root}; start one with `up`")
    with suppress(OSError, ValueError):
        pid = int(state.pid_file(name).read_text())
        if _owned(state, name, pid):
            return pid
    if not any(f"{state.root}{os.sep}" in arg for arg in argv):
        raise ClusterError(f"the command must name a path under {state.root}")
    return start_process(state.root, name, argv)


def _exports(state: _State) -> str:
    kubeconfig = shlex.quote(str(state.kubeconfig))
    path = shlex.quote(f"{bin_dir()}:{helm_path().parent}")
    return f"export KUBECONFIG={kubeconfig}\nexport PATH={path}:$PATH"


def _command(command: str, state: _State, nodes: int, zones: int, extra: list[str]) -> None:
    if command == "spawn":
        name, *argv = extra
        pid = spawn(state.root, name, argv)
        print(f"{name} is running (pid {pid}, log {state.log(name)})")
    elif command == "up":
        up(state.root, nodes, zones)
        print(f"Local cluster is up in {state.root}. Use it with:\n{_exports(state)}")
        print("kubectl get nodes")
    elif command == "down":
        down(state.root)
    elif command == "status":
        running = _running(state)
        for name in COMPONENTS:
            print(f"{name:<24}", f"pid {running[name]}" if name in running else "not running")
        if not _healthy(state):
            raise ClusterError(f"the cluster in {state.root} is not healthy")
        print(f"{'kube-apiserver URL':<24} {Api(state).base} (readyz ok)")
    elif _healthy(state):
        print(_exports(state))
    else:
        raise ClusterError(f"no healthy cluster in {state.root}; start one with `up`")


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = argparse.ArgumentParser(description="Run a local control plane with kwok nodes.")
    parser.add_argument("command", choices=("up", "down", "status", "env", "spawn"))
    parser.add_argument("--dir", type=Path, default=None, help="state directory")
    parser.add_argument("--nodes", type=int, default=6, help="kwok Nodes to create (up)")
    parser.add_argument("--zones", type=int, default=3, help="zones to spread them over (up)")
    parser.add_argument("--name", help="spawn: the process's name (its pid and log files)")
    parser.epilog = "spawn --name NAME -- COMMAND [ARG...]: a process `down` stops with the cluster"
    words = sys.argv[1:] if argv is None else argv
    # Everything after "--" is spawn's command, options included.
    split = words.index("--") if "--" in words else len(words)
    args = parser.parse_args(words[:split])
    command = words[split + 1 :]
    if (args.command == "spawn") != bool(command and args.name):
        parser.error("spawn takes --name NAME -- COMMAND [ARG...]; the other commands take none")
    try:
        state = _State(args.dir or default_dir())
        _command(args.command, state, args.nodes, args.zones, [args.name, *command])
    except ClusterError as error:
        print(f"localcluster: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130  # up() has already stopped what it started
    return 0


if __name__ == "__main__":
    sys.exit(main())
