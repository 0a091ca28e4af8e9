"""Whether this machine can run the lab, for the tiers that need it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import lab
from lab import net


def require_lab() -> None:
    """Skip (saying why) where the lab cannot run, or another lab (`make demo`'s) is up;
    under CI, which runs as root on a machine of its own, fail instead."""
    try:
        lab.preflight()
        running = lab.owner()
        if running is not None:
            raise lab.LabError(f"another lab is up in {running} (`make lab-down` stops it)")
    except lab.LabError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the lab must run in CI: {error}")
        pytest.skip(f"needs the lab of real nodes: {error}")


#: Where containerd, CNI and kubelet keep files outside their configured directories.
SHARED = (Path("/var/lib/kubelet"), Path("/run/containerd"), Path("/var/lib/cni"))


def shared_files() -> set[Path]:
    """Everything in the machine-wide directories that node daemons write to."""
    return {path for top in SHARED if top.exists() for path in (top, *top.rglob("*"))}


def leftovers(root: Path, before: set[Path]) -> list[str]:
    """Everything of a lab that could outlive it, by kind; ``before``: shared_files()
    before the lab started (another runtime on the machine may own some)."""
    found = [f"namespace {n}" for n in net.namespaces()]
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        found += (
            [f"cgroup {c}" for c in hierarchy.glob(f"{net.PREFIX}*")] if hierarchy.is_dir() else []
        )
    marker = str(root).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                found.append(f"process {proc.name}: {cmdline[:120]!r}")
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mounts.splitlines() if str(root) in line]
    if root.exists():
        found.append(f"state {root}")
    found += [f"file {path}" for path in sorted(shared_files() - before)]
    if net.run("ip", "link", "show", lab.HOST_LINK, check=False):
        found.append(f"link {lab.HOST_LINK}")
    return found
