"""The README's examples run as written against a real server and answer what the README shows."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from typing import Any

import pytest

from service.config import Settings
from tests.e2e.conftest import REPO_ROOT, Server

README = (REPO_ROOT / "README.md").read_text()
DOCUMENTED_URL = "http://127.0.0.1:8000"
EXAMPLE = re.compile(r"```bash\n(curl .*?)```\n```json\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    return [(cmd.replace("\\\n", " ").strip(), out.strip()) for cmd, out in EXAMPLE.findall(README)]


def assert_matches(documented: Any, actual: Any, where: str = "") -> None:
    """Equal structure and strings; floats equal to 1e-5 relative (CPU rounding may differ)."""
    if isinstance(documented, dict):
        assert isinstance(actual, dict), where
        assert documented.keys() == actual.keys(), where
        for key in documented:
            assert_matches(documented[key], actual[key], f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(actual, list), where
        assert len(documented) == len(actual), where
        for i, (d, a) in enumerate(zip(documented, actual, strict=True)):
            assert_matches(d, a, f"{where}[{i}]")
    elif isinstance(documented, float) and not isinstance(documented, bool):
        assert actual == pytest.approx(documented, rel=1e-5, abs=1e-9), where
    else:
        assert documented == actual, where


def test_readme_has_examples() -> None:
    commands = [cmd for cmd, _ in examples()]
    assert len(commands) >= 5
    assert any("/predict" in c for c in commands)
    assert any("/uncertainty" in c for c in commands)


@pytest.mark.parametrize(("command", "documented"), examples())
def test_readme_curl_example(server: Server, command: str, documented: str) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    argv = shlex.split(command.replace(DOCUMENTED_URL, server.base_url))
    assert argv[0] == "curl"
    result = subprocess.run([curl, *argv[1:]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert_matches(json.loads(documented), json.loads(result.stdout))


def test_readme_documents_the_two_commands_and_every_setting() -> None:
    assert "make serve" in README
    assert "make test" in README
    for name in Settings.model_fields:
        assert f"`DROPSERVE_{name.upper()}`" in README, name


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_readme_python_examples_run(server: Server) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert blocks
    host = server.base_url.removeprefix("http://")
    for block in blocks:
        code = block.replace("127.0.0.1:8000", host)
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip()
