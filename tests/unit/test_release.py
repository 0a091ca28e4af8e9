"""The release pipeline: hack/release_notes.py (`make release-notes`, `make release-check`)
and the GitHub workflows in .github/workflows, which cannot run here but call only make
targets that do, with every action pinned to a commit.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

import release_notes

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))

SAMPLE = """\
# Changelog

Intro text.

## [Unreleased]

### Added
- Something new.

## [0.2.0] - 2026-12-01

### Fixed
- A bug.

```sh
## not a heading, inside a code block
```

## [0.1.0] - 2026-06-01

### Added
- The first release.

[Unreleased]: https://github.com/edge-operator/edge-operator/compare/v0.2.0...HEAD
[0.2.0]: https://github.com/edge-operator/edge-operator/compare/v0.1.0...v0.2.0
"""


def test_section_is_the_versions_body_only() -> None:
    notes = release_notes.section(SAMPLE, "0.2.0")
    assert notes == "### Fixed\n- A bug.\n\n```sh\n## not a heading, inside a code block\n```\n"


def test_section_accepts_the_tag_and_drops_link_definitions() -> None:
    assert release_notes.section(SAMPLE, "v0.1.0") == "### Added\n- The first release.\n"
    assert release_notes.section(SAMPLE, "Unreleased") == "### Added\n- Something new.\n"


@pytest.mark.parametrize("version", ["0.3.0", "0.1", "1.0.0"])
def test_section_missing_fails(version: str) -> None:
    with pytest.raises(release_notes.ReleaseError, match="no section"):
        release_notes.section(SAMPLE, version)


def test_section_empty_fails() -> None:
    with pytest.raises(release_notes.ReleaseError, match="empty"):
        release_notes.section("## [0.4.0] - 2026-12-02\n\n## [0.3.0]\n- x\n", "0.4.0")


def test_notes_command_fails_on_a_missing_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(SAMPLE)
    assert release_notes.main(["notes", "--version", "0.2.0", "--changelog", str(changelog)]) == 0
    assert capsys.readouterr().out.startswith("### Fixed\n")
    assert release_notes.main(["notes", "--version", "9.9.9", "--changelog", str(changelog)]) == 1
    assert "no section '## [9.9.9]'" in capsys.readouterr().err


def _release_files(tmp_path: Path, package: str, chart: str, app: str) -> tuple[Path, Path]:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f'[project]\nname = "edge-operator"\nversion = "{package}"\n')
    chart_yaml = tmp_path / "Chart.yaml"
    chart_yaml.write_text(
        f"apiVersion: v2\nname: edge-operator\n# comment\nversion: {chart}\n"
        f'appVersion: "{app}"  # quoted\ndependencies:\n  - name: x\n    version: 9.9.9\n'
    )
    return pyproject, chart_yaml


def test_check_passes_when_tag_package_and_chart_agree(tmp_path: Path) -> None:
    pyproject, chart_yaml = _release_files(tmp_path, "1.2.3", "1.2.3", "1.2.3")
    assert release_notes.check("v1.2.3", pyproject, chart_yaml) == []


def test_check_names_each_difference(tmp_path: Path) -> None:
    pyproject, chart_yaml = _release_files(tmp_path, "1.2.3", "1.2.4", "1.2.3")
    assert release_notes.check("1.2.3", pyproject, chart_yaml) == [
        "Chart.yaml version is 1.2.4, not 1.2.3"
    ]
    assert len(release_notes.check("1.3.0", pyproject, chart_yaml)) == 3


def test_the_repository_is_consistent() -> None:
    """The tree's own package and chart versions agree (what `make release-check` checks)."""
    assert release_notes.check(release_notes.package_version()) == []


# --- the workflows -------------------------------------------------------------------


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = workflow["jobs"]
    return [step for job in jobs.values() for step in job.get("steps", [])]


def _uses(workflow: dict[str, Any]) -> list[str]:
    jobs: dict[str, dict[str, Any]] = workflow["jobs"]
    found = [str(job["uses"]) for job in jobs.values() if "uses" in job]
    return found + [str(step["uses"]) for step in _steps(workflow) if "uses" in step]


def _make_targets(script: str) -> set[str]:
    """The targets of every `make` command in a shell script (options, VAR=value and
    redirections are not targets)."""
    targets: set[str] = set()
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        for at, word in enumerate(words):
            if word != "make":
                continue
            for arg in words[at + 1 :]:
                if arg in {"&&", "||", ";", "|"} or arg[0] in "<>|&;":
                    break
                if not arg.startswith("-") and "=" not in arg:
                    targets.add(arg)
    return targets


def _makefile_targets() -> set[str]:
    rule = re.compile(r"^([A-Za-z0-9][\w.-]*(?:[ \t]+[A-Za-z0-9][\w.-]*)*)[ \t]*:(?!=)")
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = rule.match(line)
        if match:
            targets.update(match.group(1).split())
    return targets


def _load(path: Path) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(path.read_text())
    return workflow


def test_the_workflows_exist() -> None:
    assert [path.name for path in WORKFLOWS] == ["ci.yml", "release.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_commit(path: Path) -> None:
    uses = _uses(_load(path))
    assert uses
    unpinned = [u for u in uses if not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", u)]
    assert unpinned == []
    # ... and says which tag that commit is, for the humans who update it.
    for line in path.read_text().splitlines():
        if re.match(r"\s*(- )?uses:", line):
            assert re.search(r"@[0-9a-f]{40} # v\d+(\.\d+)*$", line), line


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_make_target_a_workflow_runs_exists(path: Path) -> None:
    called = set().union(
        *(_make_targets(str(step["run"])) for step in _steps(_load(path)) if "run" in step)
    )
    assert called
    assert called - _makefile_targets() == set()


def test_the_workflows_run_the_tiers_and_the_release_targets() -> None:
    called = {
        target
        for path in WORKFLOWS
        for step in _steps(_load(path))
        if "run" in step
        for target in _make_targets(str(step["run"]))
    }
    assert {
        "lint",
        "unit",
        "e2e",
        "lab-tools",
        "dataplane",
        "release-check",
        "release-notes",
        "image",
        "chart-package",
    } <= called


def test_make_targets_are_parsed_from_scripts() -> None:
    script = (
        'sudo env "PATH=$PATH" CI=true make lab-tools\n'
        'make release-notes VERSION="$VERSION" > dist/notes.md\n'
        "make -s install tools && echo make-believe  # make comment\n"
        "make chart-package \\\n  ARCH=arm64\n"
    )
    assert _make_targets(script) == {
        "lab-tools",
        "release-notes",
        "install",
        "tools",
        "chart-package",
    }
