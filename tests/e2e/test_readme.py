"""The examples of README.md and docs/*.md run as written against a real server and answer what
the page shows."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from tests.conftest import require_program
from tests.e2e.conftest import REPO_ROOT, Server

README_PATH = REPO_ROOT / "README.md"
PAGES = [README_PATH, *sorted((REPO_ROOT / "docs").glob("*.md"))]
README = README_PATH.read_text()
CONFIGURATION = (REPO_ROOT / "docs" / "configuration.md").read_text()
DOCUMENTED_URL = "http://127.0.0.1:8000"
EXAMPLE = re.compile(r"```bash\n(curl .*?)```\n```json\n(.*?)```", re.DOTALL)
PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)
FENCED = re.compile(r"^```(\w*)\n(.*?)^```\n", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _name(page: Path) -> str:
    return page.relative_to(REPO_ROOT).as_posix()


def unanswered_curl_blocks(text: str) -> list[str]:
    """Bash blocks that start with curl but are not followed at once by their JSON answer, so
    `examples` never runs them."""
    blocks = list(FENCED.finditer(text))
    unanswered = []
    for i, block in enumerate(blocks):
        if block.group(1) != "bash" or not block.group(2).startswith("curl "):
            continue
        after = blocks[i + 1] if i + 1 < len(blocks) else None
        if after is None or after.start() != block.end() or after.group(1) != "json":
            unanswered.append(block.group(2))
    return unanswered


def examples(text: str) -> list[tuple[str, str]]:
    return [(cmd.replace("\\\n", " ").strip(), out.strip()) for cmd, out in EXAMPLE.findall(text)]


def curl_cases() -> list[Any]:
    return [
        pytest.param(command, documented, id=f"{_name(page)}-{i}")
        for page in PAGES
        for i, (command, documented) in enumerate(examples(page.read_text()))
    ]


def python_cases() -> list[Any]:
    return [
        pytest.param(block, id=f"{_name(page)}-{i}")
        for page in PAGES
        for i, block in enumerate(PYTHON.findall(page.read_text()))
    ]


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
    commands = [cmd for cmd, _ in examples(README)]
    assert len(commands) >= 5
    assert any("/predict" in c for c in commands)
    assert any("/uncertainty" in c for c in commands)


def test_docs_examples_are_harvested_whole() -> None:
    """Each harvested example is one curl block and its own JSON block, and no curl example is
    left without the answer that makes it run."""
    for page in PAGES:
        text = page.read_text()
        for command, documented in examples(text):
            assert "```" not in command, f"{_name(page)}: a curl block without its JSON answer"
            json.loads(documented)
        unanswered = unanswered_curl_blocks(text)
        assert not unanswered, f"{_name(page)}: curl example(s) with no JSON answer: {unanswered}"


def test_docs_pages_have_examples() -> None:
    """The protocol page carries runnable v2 curl and tritonclient examples."""
    protocol = (REPO_ROOT / "docs" / "protocol-v2.md").read_text()
    assert any("/v2/models/concrete/infer" in cmd for cmd, _ in examples(protocol))
    assert any("tritonclient" in block for block in PYTHON.findall(protocol))
    assert examples((REPO_ROOT / "docs" / "api.md").read_text())


@pytest.mark.parametrize(("command", "documented"), curl_cases())
def test_readme_curl_example(server: Server, command: str, documented: str) -> None:
    curl = require_program("curl")
    argv = shlex.split(command.replace(DOCUMENTED_URL, server.base_url))
    assert argv[0] == "curl"
    result = subprocess.run([curl, *argv[1:]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert_matches(json.loads(documented), json.loads(result.stdout))


def test_readme_documents_the_two_commands_and_every_setting() -> None:
    assert "make serve" in README
    assert "make test" in README
    assert "(docs/configuration.md)" in README
    for name in Settings.model_fields:
        assert f"`DROPSERVE_{name.upper()}`" in CONFIGURATION, name


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces -> '-'."""
    text = FENCED.sub("", page.read_text())
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_docs_links_resolve() -> None:
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            assert path.exists(), f"{_name(page)} links to {target}, which does not exist"
            if anchor:
                assert anchor in anchors(path), f"{_name(page)} links to a missing {target}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_readme_has_a_python_example() -> None:
    assert PYTHON.findall(README)


@pytest.mark.parametrize("block", python_cases())
def test_readme_python_examples_run(server: Server, block: str) -> None:
    host = server.base_url.removeprefix("http://")
    code = block.replace("127.0.0.1:8000", host)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
