"""The ``edge-operator`` command: run, plan, crd, provider-rbac, version."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edge_operator import __version__, crd, memory
from edge_operator.names import DEFAULT_NAMESPACE

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-operator",
        description="Dedicated edge (ingress) nodes for Kubernetes from one EdgeGateway.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run the operator against the current kubeconfig or in-cluster config"
    )
    run.add_argument(
        "--kubeconfig",
        metavar="PATH",
        default=None,
        help="kubeconfig to use (default: in-cluster credentials, else $KUBECONFIG)",
    )
    run.add_argument(
        "--health-port",
        type=int,
        default=8081,
        metavar="PORT",
        help="serve /healthz (liveness) and /readyz (readiness) on this port (0: off;"
        " default 8081)",
    )
    run.add_argument(
        "--health-bind-address",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the health server binds to (default 127.0.0.1; 0.0.0.0 in a pod)",
    )
    run.add_argument(
        "--leader-election",
        action="store_true",
        help="run as one of several replicas: only the holder of a Lease works, the others"
        " wait (the Helm chart turns this on)",
    )
    run.add_argument(
        "--leader-election-id",
        default="edge-operator",
        metavar="NAME",
        help="name of the Lease (default edge-operator)",
    )
    run.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
        metavar="NAMESPACE",
        help="namespace of the Lease (default $POD_NAMESPACE, else edge-system)",
    )
    run.add_argument(
        "--deployment",
        default="",
        metavar="NAME",
        help="the operator's own Deployment (the Helm chart sets it): a leader that stops"
        " while it is deleted or scaled to 0 takes edgeoperator.dev/drain off every Node",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="serve Prometheus metrics at /metrics on this port (0: off; default 0)",
    )
    run.add_argument(
        "--metrics-bind-address",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the metrics server binds to (default 127.0.0.1; 0.0.0.0 in a pod)",
    )
    run.add_argument(
        "--resync-seconds",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="full reconcile of every gateway this often, changes or not (default 3600):"
        " a safety net, since watches of gateways, nodes and owned objects queue every pass",
    )
    run.add_argument(
        "--probe-edge-nodes",
        choices=("on", "off"),
        default="on",
        help="probe every edge node's load-balancer health check (healthCheckNodePort) as the"
        " load balancer does and report it in status; needs the operator to reach node"
        " addresses (default on)",
    )
    run.add_argument("--log-level", choices=LOG_LEVELS, default="INFO", help="default INFO")
    run.add_argument(
        "--log-format", choices=("plain", "json"), default="plain", help="default plain"
    )

    gen = commands.add_parser("crd", help="print or write the EdgeGateway CRD")
    gen.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the CRD file into DIR instead of printing it",
    )

    rbac = commands.add_parser(
        "provider-rbac", help="print or write the provider ClusterRoles installed with the operator"
    )
    rbac.add_argument(
        "--output", type=Path, default=None, metavar="FILE", help="write them to FILE"
    )

    preview = commands.add_parser(
        "plan",
        help="print what applying an EdgeGateway would change, changing nothing",
        description=(
            "Print what applying the EdgeGateway in FILE would change on the cluster of the"
            " kubeconfig: node labels and taints, controller pods evicted, and the objects"
            " created, updated (a diff of the fields the operator sets) or deleted. Only reads."
        ),
        epilog=(
            "exit status: 0 nothing would change; 2 something would; 1 an error (the file is"
            " unreadable or invalid, the API cannot be reached) or a refusal: the operator"
            ' would change nothing and report why ("refused: <Reason>: <message>",'
            " e.g. NodeOwnedByOtherGateway or MinWorkerNodes). Errors go to standard error."
        ),
    )
    preview.add_argument(
        "-f",
        "--filename",
        type=Path,
        required=True,
        metavar="FILE",
        help="the EdgeGateway manifest (YAML); - reads standard input",
    )
    preview.add_argument(
        "--kubeconfig",
        metavar="PATH",
        default=None,
        help="kubeconfig to use (default: in-cluster credentials, else $KUBECONFIG or"
        " ~/.kube/config)",
    )

    uninstall = commands.add_parser(
        "uninstall",
        help="the Helm chart's pre-delete hook: refuse while EdgeGateways exist, or delete"
        " them and wait for their nodes to be restored",
    )
    uninstall.add_argument(
        "--delete-gateways",
        action="store_true",
        help="delete every EdgeGateway and wait until each is gone (default: refuse)",
    )
    uninstall.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS")
    uninstall.add_argument(
        "--leader-election-id", default="edge-operator", metavar="NAME", help="the Lease"
    )
    uninstall.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
        help="namespace of the Lease (default $POD_NAMESPACE, else edge-system)",
    )
    uninstall.add_argument("--kubeconfig", metavar="PATH", default=None)

    commands.add_parser("version", help="print the version")
    return parser


def provider_rbac() -> str:
    """The provider ClusterRoles as the YAML the Helm chart installs (its files/)."""
    import yaml  # noqa: PLC0415

    from edge_operator.desired.workload import provider_cluster_roles  # noqa: PLC0415

    header = (
        "# Generated by `edge-operator provider-rbac` from src/edge_operator/desired/providers/."
        " Do not edit.\n"
        "# The ClusterRoles that gateways' controller pods are bound to; the Helm chart installs"
        " them.\n"
    )

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True

    roles = provider_cluster_roles()
    return header + yaml.dump_all(roles, Dumper=NoAliases, sort_keys=False, width=100)


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _quiet_per_event_logs(level: str) -> None:
    """kopf logs every handled event at INFO; at INFO the operator logs only its changes."""
    if logging.getLevelName(level) >= logging.INFO:
        for noisy in ("kopf.objects", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(args: argparse.Namespace) -> int:
    memory.few_arenas()  # before any thread starts
    if args.kubeconfig:
        # Set before kopf imports the Kubernetes client, which reads it at import time;
        # kopf's login and edge_operator.kube both take it from there.
        os.environ["KUBECONFIG"] = args.kubeconfig
    # Read when the handlers module is imported (the resync loop's interval), below.
    os.environ["EDGE_OPERATOR_RESYNC_SECONDS"] = str(args.resync_seconds)
    os.environ["EDGE_OPERATOR_PROBE_EDGE_NODES"] = args.probe_edge_nodes
    import kopf  # noqa: PLC0415 - heavy; only `run` needs it
    import prometheus_client  # noqa: PLC0415

    import edge_operator.handlers  # noqa: F401, PLC0415 - registers the handlers
    from edge_operator import leader, metrics, probes  # noqa: PLC0415
    from edge_operator.kube import Kube  # noqa: PLC0415

    kopf.configure(
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    )
    logging.getLogger().setLevel(args.log_level)
    _quiet_per_event_logs(args.log_level)
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port, addr=args.metrics_bind_address)
    if args.health_port:
        probes.serve(args.health_bind_address, args.health_port)
    elector = None
    if args.leader_election:
        identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"
        config = leader.LeaseConfig(
            args.leader_election_namespace, args.leader_election_id, identity
        )
        lease_client = Kube.connect()
        lease_client.timeout = config.request_timeout
        elector = leader.Elector(lease_client, config, observed=probes.STATE.standby_ok)
        elector.acquire()
        # A leader that cannot renew must stop writing before a standby takes over.
        elector.keep(on_lost=leader.fence)
    else:
        metrics.LEADER.labels(args.leader_election_id).set(1)
    liveness = f"http://127.0.0.1:{_free_loopback_port()}/healthz"
    probes.STATE.kopf_liveness_url = liveness
    probes.STATE.kopf_started_at = time.monotonic()
    probes.STATE.leading.set()
    try:
        kopf.run(clusterwide=True, standalone=True, liveness_endpoint=liveness)
    finally:
        if args.deployment and (elector is None or elector.leading.is_set()):
            from edge_operator import uninstall  # noqa: PLC0415

            uninstall.on_exit(Kube.connect(), args.leader_election_namespace, args.deployment)
        if elector is not None:
            elector.release()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "plan":
        from edge_operator import plan  # noqa: PLC0415 - the Kubernetes client is heavy

        return plan.run(args.filename, args.kubeconfig)
    if args.command == "uninstall":
        from edge_operator import uninstall  # noqa: PLC0415
        from edge_operator.kube import Kube  # noqa: PLC0415

        return uninstall.run(
            Kube.connect(args.kubeconfig),
            delete_gateways=args.delete_gateways,
            namespace=args.namespace,
            lease_name=args.leader_election_id,
            timeout=args.timeout,
        )
    if args.command == "crd":
        if args.output_dir is None:
            sys.stdout.write(crd.render())
        else:
            print(crd.write(args.output_dir))
        return 0
    if args.command == "provider-rbac":
        text = provider_rbac()
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.write_text(text)
            print(args.output)
        return 0
    print(f"edge-operator {__version__}")
    return 0
