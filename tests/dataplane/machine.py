"""Whether this machine can run the lab, for the tiers that need it."""

from __future__ import annotations

import os

import pytest

import lab


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
