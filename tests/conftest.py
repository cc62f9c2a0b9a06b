"""Shared test setup: import path, markers from the folder, the CUDA skip, and missing tools."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    import torch

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
if str(REPO_ROOT) not in sys.path:  # `service` and `tests.factories` import without installing
    sys.path.insert(0, str(REPO_ROOT))

# First folder under tests/ -> marker (each is declared in pyproject.toml).
FOLDER_MARKERS = {"unit": "unit", "integration": "integration", "e2e": "e2e", "tools": "tools"}


def _cuda_available() -> bool:
    import torch  # imported lazily so tool tests that never need torch do not pay for it

    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test after its folder, and skip GPU tests on machines without CUDA."""
    cuda: bool | None = None
    for item in items:
        try:
            folder = item.path.resolve().relative_to(TESTS_DIR).parts[0]
        except ValueError:
            folder = ""
        if folder in FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, FOLDER_MARKERS[folder]))
        if "requires_cuda" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gpu)
        if item.get_closest_marker("gpu") is not None:
            if cuda is None:
                cuda = _cuda_available()
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs CUDA; torch.cuda is not available"))


def missing_tool(message: str) -> NoReturn:
    """Skip a test whose program or package is missing; fail it under DROPSERVE_REQUIRE_TOOLS=1,
    as `.ci/run` sets, so that CI cannot pass by skipping."""
    if os.environ.get("DROPSERVE_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{message} (DROPSERVE_REQUIRE_TOOLS=1 turns this skip into a failure)")
    pytest.skip(message)


def require_program(name: str) -> str:
    """The program's path on PATH, or `missing_tool` naming the Debian package to install."""
    found = shutil.which(name)
    if found is None:
        missing_tool(f"{name} is not installed; install it with: apt-get install -y {name}")
    return found


@pytest.fixture(scope="session")
def requires_ray() -> None:
    """Skip without ray (the `ray` extra); fail instead under DROPSERVE_REQUIRE_TOOLS=1 (CI)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        missing_tool(
            "ray is not installed; install it with: pip install -c constraints.txt -e '.[ray]'"
        )


@pytest.fixture
def requires_cuda() -> torch.device:
    """The CUDA device; a test that asks for it is marked `gpu` and skipped without CUDA."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA; torch.cuda is not available")
    return torch.device("cuda")
