"""The lab itself under bad conditions: it fails with one clear line, and `lab down`
leaves nothing behind, even after a start that failed half-way.

Each test starts (or fails to start) a lab of its own, so this directory runs apart
from tests/dataplane, whose lab is up for the whole of that directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import lab
import localcluster
from lab import net
from tests.dataplane.machine import leftovers, require_lab, shared_files

HACK = Path(lab.__file__).resolve().parents[1]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _as_nobody(tmp_path: Path) -> Path:
    """A copy of hack/ that user nobody can read (a checkout may live under /root)."""
    copy = tmp_path / "hack"
    shutil.copytree(HACK, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in (*copy.rglob("*"), copy):
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    return copy


@pytest.fixture(autouse=True)
def machine() -> None:
    require_lab()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A directory directly in /tmp: readable by user nobody (pytest's tmp_path is
    not), and short, since the lab's unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="eo-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_without_root_up_says_so_in_one_line(short_tmp: Path) -> None:
    tmp_path = short_tmp
    hack = _as_nobody(tmp_path)
    proc = subprocess.run(
        [*NOBODY, "/usr/bin/python3", str(hack / "lab"), "up", "--dir", str(tmp_path / "lab")],
        capture_output=True,
        text=True,
        check=False,
    )
    print(proc.stderr)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "lab: the lab needs root (network namespaces, cgroups, mounts); run as root"
    ]


def test_a_missing_package_is_named(short_tmp: Path) -> None:
    """Without root to install it, build-lab.sh names the Debian package it lacks."""
    tmp_path = short_tmp
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        for tool in Path(directory).iterdir():
            link = bin_dir / tool.name
            if tool.name != "haproxy" and not link.exists():
                link.symlink_to(tool)
    hack = _as_nobody(tmp_path)
    env = {**os.environ, "PATH": str(bin_dir), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [*NOBODY, "bash", str(hack / "build-lab.sh"), "v0.0.0"],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    print(proc.stderr)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "build-lab: missing Debian packages haproxy, and only root can install them"
    ]


@pytest.fixture
def foreign_link() -> Iterator[None]:
    """An interface with the name of the lab's host link that is not the lab's."""
    net.run("ip", "link", "add", lab.HOST_LINK, "type", "bridge")
    yield
    net.run("ip", "link", "delete", lab.HOST_LINK, check=False)


@pytest.mark.usefixtures("foreign_link")
def test_a_name_in_use_is_refused_and_left_alone(short_tmp: Path) -> None:
    root = short_tmp / "lab"
    with pytest.raises(lab.LabError, match=f"a network interface named {lab.HOST_LINK} exists"):
        lab.up(root)
    lab.down(root)
    link = net.run("ip", "-d", "-o", "link", "show", lab.HOST_LINK)
    assert " bridge " in link, "lab down removed an interface that is not the lab's"


@pytest.fixture
def broken_kubelet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A tool cache like the real one, whose kubelet exits at once."""
    real = localcluster.cache_dir()
    lab.build()  # everything the lab runs is in the real cache
    fake = tmp_path / "cache"
    fake.mkdir()
    for entry in real.iterdir():
        if not entry.name.startswith((".", "build")) and not entry.name.startswith("k8s-"):
            (fake / entry.name).symlink_to(entry)
    (k8s,) = real.glob("k8s-*")
    (fake / k8s.name / "bin").mkdir(parents=True)
    for binary in (k8s / "bin").iterdir():
        (fake / k8s.name / "bin" / binary.name).symlink_to(binary)
    kubelet = fake / k8s.name / "bin" / "kubelet"
    kubelet.unlink()
    message = "kubelet: broken on purpose by the test"
    kubelet.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    kubelet.chmod(0o755)
    monkeypatch.setenv("EDGE_OPERATOR_CACHE", str(fake))
    return message


def test_a_failed_up_leaves_nothing_behind(short_tmp: Path, broken_kubelet: str) -> None:
    root, before = short_tmp / "lab", shared_files()
    with pytest.raises(lab.LabError) as failed:
        lab.up(root)
    print(f"lab up failed as it should: {failed.value}")
    assert "kubelet" in str(failed.value)
    assert leftovers(root, before) == []
    lab.down(root)  # again: nothing to do, no error
    assert leftovers(root, before) == []


def test_down_after_up_leaves_nothing_behind(short_tmp: Path) -> None:
    root, before = short_tmp / "lab", shared_files()
    running = lab.up(root, edges=1, workers=1)
    assert running.topology.nodes
    lab.down(root)
    assert leftovers(root, before) == []
