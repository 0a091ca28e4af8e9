"""The ``edge-operator`` command: run, crd, version."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_operator import __version__, crd

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
        "--liveness",
        metavar="URL",
        default=None,
        help="serve kopf's liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz",
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

    commands.add_parser("version", help="print the version")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        # Set before kopf imports the Kubernetes client, which reads it at import time;
        # kopf's login and edge_operator.kube both take it from there.
        os.environ["KUBECONFIG"] = args.kubeconfig
    import kopf  # noqa: PLC0415 - heavy; only `run` needs it
    import prometheus_client  # noqa: PLC0415

    import edge_operator.handlers  # noqa: F401, PLC0415 - registers the handlers

    kopf.configure(
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    )
    logging.getLogger().setLevel(args.log_level)
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port, addr=args.metrics_bind_address)
    kopf.run(clusterwide=True, standalone=True, liveness_endpoint=args.liveness)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "crd":
        if args.output_dir is None:
            sys.stdout.write(crd.render())
        else:
            print(crd.write(args.output_dir))
        return 0
    print(f"edge-operator {__version__}")
    return 0
