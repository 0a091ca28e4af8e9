#!/usr/bin/env python3
"""Release notes and the release's version check (`make release-notes`, `make release-check`).

    python3 hack/release_notes.py notes [--version VERSION]
    python3 hack/release_notes.py check [--version VERSION]

``notes`` prints the body of CHANGELOG.md's section for VERSION (the heading
``## [VERSION] - DATE`` or ``## VERSION``, up to the next ``## `` heading), the text of
the GitHub release; it fails when there is no such section or it is empty.
``VERSION=Unreleased`` prints what the next release holds so far.

``check`` fails unless VERSION equals the package's version (pyproject.toml) and the
chart's ``version`` and ``appVersion`` (Chart.yaml): a tag ``vX.Y.Z`` releases exactly
the package and the chart of X.Y.Z.

VERSION defaults to pyproject.toml's version; a leading ``v`` (the tag's) is dropped.
Stdlib only, like localcluster.py.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHANGELOG = ROOT / "CHANGELOG.md"
PYPROJECT = ROOT / "pyproject.toml"
CHART_YAML = ROOT / "deploy" / "helm" / "edge-operator" / "Chart.yaml"

# Keep a Changelog's link definitions ("[0.1.0]: https://..."), which end the file.
_LINK_DEFINITION = re.compile(r"^\[[^\]]+\]:\s*\S+")
# The version a "## " heading names: its first word, without brackets or a link.
_HEADING_VERSION = re.compile(r"\[?([^\s\[\]()]+)")
# A top-level key of Chart.yaml: `version: 0.1.0`, `appVersion: "0.1.0"  # comment`.
_CHART_KEY = re.compile(r"""^(version|appVersion):\s*(["']?)([^"'#\s]+)\2\s*(?:#.*)?$""")


class ReleaseError(Exception):
    """A missing changelog section, or versions that differ."""


def normalize(version: str) -> str:
    """The version without the tag's leading ``v`` (``v0.1.0`` -> ``0.1.0``)."""
    version = version.strip()
    if re.fullmatch(r"v\d.*", version):
        return version[1:]
    return version


def package_version(pyproject: Path = PYPROJECT) -> str:
    """``project.version`` of pyproject.toml."""
    data = tomllib.loads(pyproject.read_text())
    return str(data["project"]["version"])


def chart_versions(chart_yaml: Path = CHART_YAML) -> dict[str, str]:
    """Chart.yaml's top-level ``version`` and ``appVersion`` (those present)."""
    found: dict[str, str] = {}
    for line in chart_yaml.read_text().splitlines():
        match = _CHART_KEY.match(line)
        if match:
            found[match.group(1)] = match.group(3)
    return found


def _is_heading_of(line: str, version: str) -> bool:
    # "## [0.1.0] - 2026-12-01", "## [0.1.0](https://...)", "## 0.1.0", "## [Unreleased]"
    match = _HEADING_VERSION.match(line[3:].strip())
    if match is None:
        return False
    return normalize(match.group(1)).casefold() == normalize(version).casefold()


def section(changelog: str, version: str) -> str:
    """The body of ``changelog``'s ``## `` section for ``version``, without its heading,
    blank lines around it or the link definitions that may close it."""
    lines = changelog.splitlines()
    start: int | None = None
    end = len(lines)
    fenced = False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("## "):
            continue
        if start is not None:
            end = number
            break
        if _is_heading_of(line, version):
            start = number + 1
    if start is None:
        raise ReleaseError(f"CHANGELOG.md has no section '## [{version}]'")
    body = lines[start:end]
    while body and (not body[-1].strip() or _LINK_DEFINITION.match(body[-1])):
        body.pop()
    while body and not body[0].strip():
        body.pop(0)
    if not body:
        raise ReleaseError(f"CHANGELOG.md's section '## [{version}]' is empty")
    return "\n".join(body) + "\n"


def check(version: str, pyproject: Path = PYPROJECT, chart_yaml: Path = CHART_YAML) -> list[str]:
    """What differs from ``version``: one line each; empty when the release is consistent."""
    wanted = normalize(version)
    chart = chart_versions(chart_yaml)
    found = {
        "pyproject.toml project.version": package_version(pyproject),
        "Chart.yaml version": chart.get("version", "(missing)"),
        "Chart.yaml appVersion": chart.get("appVersion", "(missing)"),
    }
    return [
        f"{where} is {value}, not {wanted}" for where, value in found.items() if value != wanted
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/release_notes.py", description=(__doc__ or "").split("\n", 1)[0]
    )
    parser.add_argument("command", choices=("notes", "check"))
    parser.add_argument("--version", help="default: pyproject.toml's version")
    parser.add_argument("--changelog", type=Path, default=CHANGELOG)
    args = parser.parse_args(argv)
    version = normalize(args.version) if args.version else package_version()
    if args.command == "check":
        problems = check(version)
        for problem in problems:
            print(f"release-check: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"release-check: {version} = package, chart version and chart appVersion")
        return 0
    try:
        sys.stdout.write(section(args.changelog.read_text(), version))
    except ReleaseError as error:
        print(f"release-notes: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
