"""The compose `monitoring` profile: Prometheus and Grafana wired to dropserve's /metrics.

The Grafana dashboard's queries are checked against a real scrape in
tests/integration/test_metrics.py; here its files are checked as deployment files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

MONITORING = ("prometheus", "grafana")
PINNED = re.compile(r"^(prom/prometheus|grafana/grafana):v?\d+\.\d+\.\d+$")


@pytest.fixture(scope="module")
def compose(repo_root: Path) -> dict[str, Any]:
    data = yaml.safe_load((repo_root / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def bind_mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (host path, mode) of the service's `./host:/container[:mode]` volumes."""
    mounts = {}
    for volume in service.get("volumes", ()):
        host, container, *mode = volume.split(":")
        if host.startswith("./"):
            mounts[container] = (host, mode[0] if mode else "rw")
    return mounts


def test_docker_compose_accepts_the_monitoring_profile(
    repo_root: Path, tmp_path: Path, require_program: Callable[[str], str]
) -> None:
    docker_compose = require_program("docker-compose")
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DROPSERVE_", "COMPOSE_"))}
    profile = ["--profile", "monitoring"]
    result = subprocess.run(
        [docker_compose, "--env-file", str(empty_env_file), *profile, "config", "-q"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"docker-compose config rejected the file:\n{result.stderr}"


@pytest.mark.parametrize("name", MONITORING)
def test_monitoring_services_are_opt_in_pinned_and_read_only_mounted(
    name: str, compose: dict[str, Any], repo_root: Path
) -> None:
    service = compose["services"][name]
    assert service["profiles"] == ["monitoring"]
    assert PINNED.match(service["image"]), f"{name}: pin an official image to a release tag"
    assert "no-new-privileges:true" in service["security_opt"]
    for port in service["ports"]:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    mounts = bind_mounts(service)
    assert mounts, f"{name} mounts no configuration"
    for container, (host, mode) in mounts.items():
        assert mode == "ro", f"{name}: {container} must be mounted read-only"
        assert (repo_root / host).exists(), f"{name}: {host} does not exist"


def test_prometheus_scrapes_dropserve(compose: dict[str, Any], repo_root: Path) -> None:
    config = load_yaml(repo_root / "deploy" / "prometheus" / "prometheus.yml")
    mounted = bind_mounts(compose["services"]["prometheus"])["/etc/prometheus/prometheus.yml"]
    assert mounted[0] == "./deploy/prometheus/prometheus.yml"
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "dropserve"]
    assert job["metrics_path"] == "/metrics"
    (target,) = job["static_configs"][0]["targets"]
    service, _, port = target.partition(":")
    assert service in compose["services"]
    assert compose["services"][service]["ports"] == [f"{port}:{port}"]
    assert "profiles" not in compose["services"][service], "the scraped service must always run"


def test_grafana_provisions_the_dashboard_and_its_data_source(
    compose: dict[str, Any], repo_root: Path
) -> None:
    grafana = repo_root / "deploy" / "grafana"
    mounts = bind_mounts(compose["services"]["grafana"])
    assert mounts["/etc/grafana/provisioning"][0] == "./deploy/grafana/provisioning"
    (provider,) = load_yaml(grafana / "provisioning" / "dashboards" / "dropserve.yml")["providers"]
    dashboard_mounts = [c for c, (h, _) in mounts.items() if h.endswith("dropserve-dashboard.json")]
    assert [str(Path(c).parent) for c in dashboard_mounts] == [provider["options"]["path"]]
    (source,) = load_yaml(grafana / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((grafana / "dropserve-dashboard.json").read_text(encoding="utf-8"))
    used = {
        panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel
    } | {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", ())}
    assert used == {source["uid"]}


def test_dashboard_panels_are_well_formed(repo_root: Path) -> None:
    path = repo_root / "deploy" / "grafana" / "dropserve-dashboard.json"
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "dropserve"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_containers_log_json(compose: dict[str, Any], repo_root: Path) -> None:
    for name in ("dropserve", "dropserve-gpu"):
        assert compose["services"][name]["environment"]["DROPSERVE_LOG_FORMAT"] == "json"
    dockerfile = (repo_root / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^\s+DROPSERVE_LOG_FORMAT=json\s*$", dockerfile, re.MULTILINE)
