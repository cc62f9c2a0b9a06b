"""docker-compose.yml: valid for docker-compose and the Compose Specification, and hardened.

The schema is a copy kept in tests/tools/schemas (see the README there), so this never reads
anything outside the repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from service.config import Settings

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
READY_PATH = "/health/ready"
INTERPOLATION = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):-(?P<default>[^}]*)\}$")


def settings_variables() -> set[str]:
    """Every environment variable that service.config.Settings reads."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def env_example(repo_root: Path) -> dict[str, str]:
    """KEY=value pairs of .env.example."""
    pairs = {}
    for line in (repo_root / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


@pytest.fixture(scope="module")
def compose(repo_root: Path) -> dict[str, Any]:
    """docker-compose.yml as data (YAML anchors and merge keys resolved)."""
    data = yaml.safe_load((repo_root / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def cpu(compose: dict[str, Any]) -> dict[str, Any]:
    """The default (CPU) service."""
    service: dict[str, Any] = compose["services"]["dropserve"]
    return service


@pytest.fixture(scope="module")
def gpu(compose: dict[str, Any]) -> dict[str, Any]:
    """The service of the `gpu` profile."""
    service: dict[str, Any] = compose["services"]["dropserve-gpu"]
    return service


@pytest.mark.parametrize(
    "profile_args",
    [[], ["--profile", "gpu"], ["--profile", "scale"]],
    ids=["default", "gpu", "scale"],
)
def test_docker_compose_accepts_the_file(
    profile_args: list[str],
    repo_root: Path,
    tmp_path: Path,
    require_program: Callable[[str], str],
) -> None:
    docker_compose = require_program("docker-compose")
    # An empty env file and a clean environment: the result must not depend on a local `.env`.
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DROPSERVE_", "COMPOSE_"))}
    result = subprocess.run(
        [docker_compose, "--env-file", str(empty_env_file), *profile_args, "config", "-q"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"docker-compose config rejected the file:\n{result.stderr}"


def test_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The file declares draft-07 with a `$schema` URI spelling that jsonschema does not map, so
    # name the validator rather than let it guess (and warn).
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    messages = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    assert not messages, "\n".join(messages)


def test_schema_copy_rejects_an_unknown_key(compose: dict[str, Any]) -> None:
    # Guards the check above: a schema that accepted anything would make it pass vacuously.
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = {**compose, "services": {"dropserve": {**compose["services"]["dropserve"]}}}
    broken["services"]["dropserve"]["raed_only"] = True
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_cpu_service(cpu: dict[str, Any]) -> None:
    assert cpu["build"] == "."
    assert cpu["image"] == "dropserve:latest"
    assert cpu["ports"] == ["8000:8000"]
    assert "profiles" not in cpu, "the CPU service starts with a plain `docker compose up`"


@pytest.mark.parametrize("name", ["dropserve", "dropserve-gpu", "dropserve-replica"])
def test_services_are_hardened(name: str, compose: dict[str, Any], repo_root: Path) -> None:
    service = compose["services"][name]
    assert service["restart"] == "unless-stopped"
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"], "a read-only root needs a writable /tmp"
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["volumes"] == ["./models:/models:ro"]
    (dockerfile_user,) = re.findall(
        r"^USER\s+(\S+)\s*$", (repo_root / "Dockerfile").read_text(encoding="utf-8"), re.M
    )
    assert service["user"] == dockerfile_user == "10001:10001"
    assert "env_file" not in service, "docker-compose config fails when an env_file is missing"


@pytest.mark.parametrize("name", ["dropserve", "dropserve-gpu", "dropserve-replica"])
def test_healthcheck_asks_for_readiness(name: str, compose: dict[str, Any]) -> None:
    test = compose["services"][name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], "slim images have no curl: use python's urllib"
    (url,) = re.findall(r"https?://[^'\"\s]+", test[3])
    assert urlparse(url).path == READY_PATH
    assert urlparse(url).port == 8000


def test_gpu_profile(gpu: dict[str, Any]) -> None:
    assert gpu["profiles"] == ["gpu"]
    assert gpu["environment"]["DROPSERVE_DEVICE"] == "cuda"
    assert gpu["ports"] == ["8001:8000"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    # The CPU image's torch has no CUDA: the GPU service builds its own image with a CUDA torch.
    assert gpu["image"] != "dropserve:latest"
    assert "TORCH_INDEX_URL" in gpu["build"]["args"]


def test_environment_names_real_settings(compose: dict[str, Any]) -> None:
    known = settings_variables()
    for name, service in compose["services"].items():
        if "build" not in service:
            continue  # third-party images (the monitoring profile) read their own variables
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name} sets variables that Settings does not read: {unknown}"
    documented = {
        "DROPSERVE_DEVICE",
        "DROPSERVE_DEFAULT_SAMPLES",
        "DROPSERVE_MAX_SAMPLES",
        "DROPSERVE_MAX_ROWS",
        "DROPSERVE_LOG_LEVEL",
    }
    assert documented <= set(compose["services"]["dropserve"]["environment"])


def test_substitution_defaults_match_env_example(cpu: dict[str, Any], repo_root: Path) -> None:
    example = env_example(repo_root)
    for key, value in cpu["environment"].items():
        match = INTERPOLATION.match(str(value))
        if match is None:
            continue
        assert match["name"] == key, f"{key} substitutes ${{{match['name']}}}"
        assert match["default"] == example[key], (
            f"{key}: compose defaults to {match['default']!r}, .env.example says {example[key]!r}"
        )
