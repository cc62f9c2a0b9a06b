"""The Dockerfile: hadolint-clean, a slim non-root runtime stage, and a CMD the real CLI accepts.

No Docker engine runs here, so the image is checked as text: its instructions are parsed and the
CMD is handed to `service.cli.build_parser()`.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from service.config import Settings

BASE_IMAGE = "python:3.11-slim"
READY_PATH = "/health/ready"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|cmake)\b")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    """A build stage: its FROM arguments and the instructions after it."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """Every instruction with this keyword, in order."""
        return [i for i in self.instructions if i.keyword == keyword]


def parse_instructions(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile that uses `\\` continuations and whole-line comments."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker too
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, args = " ".join(pending).partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip(), start))
            pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


def parse_stages(text: str) -> list[Stage]:
    """Stages in order; instructions before the first FROM (global ARGs) are dropped."""
    stages: list[Stage] = []
    for instruction in parse_instructions(text):
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def env_assignments(stage: Stage) -> dict[str, str]:
    """The stage's ENV key=value pairs (the form this Dockerfile uses)."""
    values: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for word in shlex.split(instruction.args):
            key, sep, value = word.partition("=")
            assert sep, f"line {instruction.line}: use ENV KEY=value, not the legacy form"
            values[key] = value
    return values


def exec_form(instruction: Instruction) -> list[str]:
    """The argv of a JSON-array (exec form) CMD or HEALTHCHECK ... CMD."""
    args = instruction.args
    if instruction.keyword == "HEALTHCHECK":
        args = args[args.index(" CMD ") + len(" CMD ") :]
    argv = json.loads(args)
    assert isinstance(argv, list), f"line {instruction.line}: use the JSON-array (exec) form"
    assert all(isinstance(a, str) for a in argv)
    return [str(a) for a in argv]


def parse_with_cli(argv: list[str]) -> argparse.Namespace:
    """The CMD's arguments parsed by the real parser (contract: `service.cli.build_parser()`)."""
    from service.cli import build_parser

    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"service.cli.build_parser() rejects the Dockerfile CMD {argv} (exit {exc})")


@pytest.fixture(scope="module")
def dockerfile(repo_root: Path) -> str:
    """The Dockerfile's text."""
    return (repo_root / "Dockerfile").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def stages(dockerfile: str) -> list[Stage]:
    """The parsed build stages."""
    return parse_stages(dockerfile)


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    """The final stage: what the image runs."""
    return stages[-1]


@pytest.fixture(scope="module")
def cmd(runtime: Stage) -> list[str]:
    """The image's CMD argv."""
    (instruction,) = runtime.all("CMD")
    return exec_form(instruction)


def test_hadolint_passes(repo_root: Path, require_program: Callable[[str], str]) -> None:
    hadolint = require_program("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"hadolint found problems:\n{result.stdout}{result.stderr}"


def test_is_multi_stage_on_slim_python(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    assert [s.base for s in stages] == [BASE_IMAGE] * len(stages)
    assert stages[0].name == "builder"


def test_builder_takes_cpu_torch_at_the_constraints_pin(stages: list[Stage]) -> None:
    builder = stages[0]
    args = [i.args for i in builder.all("ARG")]
    assert f"TORCH_INDEX_URL={CPU_TORCH_INDEX}" in args, "the default torch index is the CPU one"
    pip_installs = [i.args for i in builder.all("RUN") if "pip install" in i.args]
    assert pip_installs, "the builder installs the package with pip"
    for command in pip_installs:
        assert "-c constraints.txt" in command, f"pip install without the torch pin: {command}"
    torch_install = pip_installs[0]
    assert '--index-url "${TORCH_INDEX_URL}"' in torch_install, "torch comes from its own index"
    assert "--extra-index-url" not in " ".join(pip_installs), "never mix PyPI into the torch index"


def test_runtime_stage_has_no_build_tools(runtime: Stage) -> None:
    for instruction in runtime.all("RUN"):
        assert not BUILD_TOOLS.search(instruction.args), (
            f"line {instruction.line}: build tools belong in the builder stage: {instruction.args}"
        )
        assert "pip install" not in instruction.args, (
            f"line {instruction.line}: the runtime stage copies the venv; it installs nothing"
        )
    copies_from_builder = [i.args for i in runtime.all("COPY") if i.args.startswith("--from=")]
    assert copies_from_builder == ["--from=builder /opt/venv /opt/venv"]


def test_runs_as_the_fixed_non_root_user(runtime: Stage) -> None:
    users = runtime.all("USER")
    assert users, "the runtime stage must set USER"
    user = users[-1].args
    assert user.split(":")[0] not in {"root", "0"}, f"the image runs as root ({user})"
    assert user == "10001:10001", "the compose file and docs assume uid/gid 10001"


def test_default_models_and_environment(runtime: Stage) -> None:
    env = env_assignments(runtime)
    assert env["DROPSERVE_MODELS_DIR"] == "/models"
    assert env["DROPSERVE_HOST"] == "0.0.0.0"
    assert "/opt/venv/bin" in env["PATH"].split(":")
    known = {f"DROPSERVE_{name.upper()}" for name in Settings.model_fields}
    unknown = {key for key in env if key.startswith("DROPSERVE_")} - known
    assert not unknown, f"ENV sets variables that service.config.Settings does not read: {unknown}"
    assert "models /models" in [i.args for i in runtime.all("COPY")]


def test_cmd_is_the_dropserve_console_script(cmd: list[str], repo_root: Path) -> None:
    scripts = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert cmd[:2] == ["dropserve", "serve"]
    assert scripts.get("dropserve") == "service.cli:main"


def test_cmd_parses_with_the_real_cli(cmd: list[str], runtime: Stage) -> None:
    args = parse_with_cli(cmd[1:])
    assert args.host == "0.0.0.0"
    assert int(args.port) == 8000
    assert Path(args.models_dir) == Path("/models")
    exposed = [i.args for i in runtime.all("EXPOSE")]
    assert exposed == [str(args.port)], "EXPOSE and the CMD's --port disagree"


def test_cmd_leaves_the_device_to_the_environment(cmd: list[str]) -> None:
    # The compose `gpu` profile picks the device with DROPSERVE_DEVICE; a --device flag in the CMD,
    # or a parser default other than None, would override it.
    assert "--device" not in cmd
    args = parse_with_cli(cmd[1:])
    assert args.device is None, "serve --device must default to None so DROPSERVE_DEVICE applies"


def test_healthcheck_asks_for_readiness(runtime: Stage) -> None:
    (instruction,) = runtime.all("HEALTHCHECK")
    argv = exec_form(instruction)
    assert argv[:2] == ["python", "-c"], "slim images have no curl: use python's urllib"
    (url,) = re.findall(r"https?://[^'\"\s]+", argv[2])
    parsed = urlparse(url)
    assert parsed.path == READY_PATH
    assert parsed.hostname == "127.0.0.1"
    assert parsed.port == 8000


def test_dockerignore_keeps_local_state_out(repo_root: Path, stages: list[Stage]) -> None:
    patterns = [
        line.strip()
        for line in (repo_root / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    def ignored(path: str) -> bool:
        # Docker's rule: the last pattern that matches decides; `!` re-includes. Top-level
        # paths are enough here, since the Dockerfile only copies top-level entries.
        verdict = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern.removeprefix("!").rstrip("/")
            if body in {"*", path} or path.startswith(body + "/"):
                verdict = not negated
        return verdict

    for private in (".venv", ".git", ".env", ".pytest_cache", ".mypy_cache", "bench", "tests"):
        assert ignored(private), f"{private} must not reach the build context"
    sources = [
        word
        for stage in stages
        for instruction in stage.all("COPY")
        if not instruction.args.startswith("--from=")
        for word in instruction.args.split()[:-1]
        if not word.startswith("--")
    ]
    assert sources, "expected COPY instructions from the build context"
    for source in sources:
        assert not ignored(source.removeprefix("./")), (
            f".dockerignore drops {source}, COPY needs it"
        )
