"""The edge-operator command, run as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_operator import __version__, crd
from edge_operator.cli import main


def test_crd_command_prints_the_crd() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_operator", "crd"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == crd.render()


def test_crd_command_writes_a_file(tmp_path: Path) -> None:
    assert main(["crd", "--output-dir", str(tmp_path)]) == 0
    assert (tmp_path / crd.CRD_FILE).read_text() == crd.render()


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_operator", "version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"edge-operator {__version__}"


def test_unknown_command_fails() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_operator", "nope"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
