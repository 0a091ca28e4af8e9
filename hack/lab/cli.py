"""The lab's commands (see ``python3 hack/lab --help``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lab
from lab import lb


def _status(root: Path) -> None:
    running = lab.Lab.load(root)
    print(f"lab in {running.root}; KUBECONFIG={running.kubeconfig}")
    for node in running.topology.nodes:
        print(f"  node {node.name:<10} {node.ip:<13} pool={node.pool:<8} zone={node.zone}")
    for client in running.topology.clients:
        print(f"  client {client.name:<8} {client.ip}")
    print(f"  cdn             {lab.CDN_ADDRESS}")
    dead = [name for name, pid in running.processes() if pid is None]
    print(f"  processes: {sum(1 for _ in running.processes()) - len(dead)} running", end="")
    print(f", not running: {', '.join(dead)}" if dead else "")
    memory = running.memory()
    shown = ", ".join(f"{name} {size >> 20}" for name, size in memory.items())
    print(f"  memory (RSS, MiB): {sum(memory.values()) >> 20} in all: {shown}")
    for key, svc in running.load_balancer().items():
        health = ", ".join(
            f"{n}={'up' if h['healthy'] else 'down'}"
            + ("" if h.get("inPool", True) else " (deregistered)")
            for n, h in svc["nodes"].items()
        )
        print(f"  load balancer {svc['address']} ({svc['mode']}) -> {key}: {health}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/lab", description="Real nodes, a load balancer and clients on this machine."
    )
    parser.add_argument(
        "command",
        choices=("up", "down", "status", "curl", "build", "preflight", "lb"),
        help=(
            "curl: one request from a client namespace; build: only build what the lab"
            " runs; preflight: whether the lab can run here; lb: the load balancer process"
        ),
    )
    parser.add_argument(
        "--if-possible",
        action="store_true",
        help="build: where the lab cannot run, say why and succeed without building",
    )
    parser.add_argument("--dir", "--root", dest="dir", type=Path, default=None)
    parser.add_argument("--edges", type=int, default=2, help="edge candidates (up)")
    parser.add_argument("--workers", type=int, default=2, help="worker nodes (up)")
    parser.add_argument("--zones", type=int, default=2, help="zones to spread nodes over (up)")
    parser.add_argument("--client", default="client-1", help="client namespace (curl)")
    parser.add_argument("--url", default="", help="http://ADDRESS[:PORT]/PATH (curl)")
    parser.add_argument("--header", action="append", default=[], help="Name: value (curl)")
    parser.add_argument("--interval", type=int, default=None, help="lb: seconds between checks")
    parser.add_argument("--threshold", type=int, default=None, help="lb: results in a row")
    parser.add_argument(
        "--deregistration-delay",
        type=float,
        default=None,
        help="lb: seconds before an exclusion label takes a node out of the pool",
    )
    args = parser.parse_args(argv)
    root = (args.dir or lab.default_dir()).expanduser().resolve()
    try:
        if args.command == "preflight":
            lab.preflight()
        elif args.command == "build":
            try:
                lab.preflight()
            except lab.LabError as error:
                if not args.if_possible:
                    raise
                print(f"lab: not building, the lab cannot run here: {error}")
                return 0
            for name, path in lab.build().items():
                print(f"{name:<11} {path}")
        elif args.command == "up":
            start = time.monotonic()
            lab.up(root, args.edges, args.workers, args.zones)
            print(f"lab up in {time.monotonic() - start:.0f}s")
            _status(root)
        elif args.command == "down":
            lab.down(root)
        elif args.command == "status":
            _status(root)
        elif args.command == "curl":
            host, _, rest = args.url.removeprefix("http://").partition("/")
            address, _, port = host.partition(":")
            headers = dict(h.split(":", 1) for h in args.header)
            status, body = lab.Lab.load(root).request(
                args.client,
                address,
                port=int(port or 80),
                path=f"/{rest}",
                headers={k.strip(): v.strip() for k, v in headers.items()},
            )
            print(body, end="" if body.endswith("\n") else "\n")
            return 0 if status < 400 else 1
        else:
            lb.serve(root, args.interval, args.threshold, args.deregistration_delay)
    except lab.LabError as error:
        print(f"lab: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a request that got no answer (curl)
        print(f"lab: {args.url}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
