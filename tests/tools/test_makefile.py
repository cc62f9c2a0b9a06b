"""The Makefile: the targets people and CI use, each a dry run away from what it does."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

TARGETS = [
    "install",
    "serve",
    "test",
    "lint",
    "typecheck",
    "format",
    "models",
    "bench",
    "bench-quick",
    "clean",
]


def make(
    make_program: str, repo_root: Path, *args: str, venv: Path
) -> subprocess.CompletedProcess[str]:
    """Run make in the repository against a throwaway VENV, isolated from any outer make."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    return subprocess.run(
        [make_program, "--no-print-directory", f"VENV={venv}", *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def make_program(require_program: Callable[[str], str]) -> str:
    """Path to make."""
    return require_program("make")


@pytest.mark.parametrize("target", TARGETS)
def test_target_dry_runs(target: str, make_program: str, repo_root: Path, tmp_path: Path) -> None:
    result = make(make_program, repo_root, "-n", target, venv=tmp_path / "venv")
    assert result.returncode == 0, result.stderr


def test_install_creates_the_venv_with_the_constraints(
    make_program: str, repo_root: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    out = make(make_program, repo_root, "-n", "install", venv=venv).stdout
    assert f"python3 -m venv {venv}" in out
    assert "pip install --upgrade pip" in out
    assert "pip install -c constraints.txt -e '.[dev]'" in out


def test_install_is_a_no_op_when_nothing_changed(
    make_program: str, repo_root: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    stamp = venv / ".installed"
    stamp.touch()  # newer than pyproject.toml and constraints.txt
    assert make(make_program, repo_root, "-q", "install", venv=venv).returncode == 0
    os.utime(stamp, (0, 0))  # older than them: an install is due
    assert make(make_program, repo_root, "-q", "install", venv=venv).returncode == 1


def test_test_runs_lint_types_and_the_whole_suite(
    make_program: str, repo_root: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    out = make(make_program, repo_root, "-n", "test", venv=venv).stdout
    lint, mypy, pytest_run = (out.index(s) for s in ("scripts/lint.sh", "/mypy", "-m pytest"))
    assert lint < pytest_run, "lint runs before the suite"
    assert mypy < pytest_run, "the type check runs before the suite"
    lint_script = (repo_root / "scripts" / "lint.sh").read_text(encoding="utf-8")
    assert 'ruff" format --check .' in lint_script
    assert 'ruff" check .' in lint_script


def test_serve_uses_the_default_models(make_program: str, repo_root: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    out = make(make_program, repo_root, "-n", "serve", venv=venv).stdout
    assert f"{venv}/bin/dropserve serve --host 127.0.0.1 --port 8000 --models-dir models" in out
