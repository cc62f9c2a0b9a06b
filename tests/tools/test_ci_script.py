"""`.ci/run`: strict bash that installs the tool-test programs and then runs `make test`."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def script(repo_root: Path) -> Path:
    """Path to .ci/run."""
    return repo_root / ".ci" / "run"


def test_is_strict_executable_bash(script: Path, require_program: Callable[[str], str]) -> None:
    text = script.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert script.stat().st_mode & stat.S_IXUSR, ".ci/run must be executable"
    syntax = subprocess.run(
        [require_program("bash"), "-n", str(script)], capture_output=True, text=True, check=False
    )
    assert syntax.returncode == 0, syntax.stderr


def test_needs_nothing_outside_the_clone(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    assert "shared" not in text, ".ci/run must work from a bare clone, without ../shared"
    assert 'apt-get install -y --no-install-recommends "$package"' in text
    for program in ("docker-compose", "curl", "wrk"):
        assert f"install_program {program} {program} " in text, program
    assert "apt-get install -y --no-install-recommends chromium" in text


@pytest.mark.parametrize("exit_code", [0, 1, 5])
def test_runs_make_test_and_passes_on_its_status(
    exit_code: int, script: Path, tmp_path: Path, require_program: Callable[[str], str]
) -> None:
    # Stand-ins for make and docker-compose on PATH: the script must call `make test` with the
    # tool tests made mandatory, and exit with make's status (pytest's 5 included).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "make-call"
    fake_make = bin_dir / "make"
    fake_make.write_text(
        "#!/bin/sh\n"
        f'echo "$* CI=$CI REQUIRE=$DROPSERVE_REQUIRE_TOOLS" > "{record}"\n'
        f"exit {exit_code}\n",
        encoding="utf-8",
    )
    fake_compose = bin_dir / "docker-compose"
    fake_compose.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    fake_chromium = bin_dir / "chromium"
    fake_chromium.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    fakes = [fake_make, fake_compose, fake_chromium]
    for program in ("curl", "wrk"):
        fakes.append(bin_dir / program)
        fakes[-1].write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    for fake in fakes:
        fake.chmod(0o755)
    bash = require_program("bash")
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{Path(bash).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "CI": "true",
        "DROPSERVE_CHROMIUM": str(fake_chromium),
    }
    result = subprocess.run(
        [bash, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == exit_code, result.stderr
    assert record.read_text(encoding="utf-8").split() == ["test", "CI=true", "REQUIRE=1"]
