"""The image and every manifest agree: port, probe paths, command and shutdown timing.

One test module reads them all: the Dockerfile, docker-compose.yml, deploy/k8s (base, GPU
overlay, KServe), deploy/ray and deploy/nginx, and holds them to the same values, which are also
the ones the CLI and the app use.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from service.cli import build_parser
from service.config import Settings
from tests.tools.test_dockerfile import Stage, exec_form, parse_stages

PORT = 8000
READY_PATH = "/health/ready"
LIVE_PATH = "/health/live"
# Seconds past drain + grace for the process to exit after the last request.
EXIT_MARGIN_S = 5
DEPLOYMENT = "deploy/k8s/base/deployment.yaml"
KSERVE = [
    "deploy/k8s/kserve/inferenceservice-cpu.yaml",
    "deploy/k8s/kserve/inferenceservice-gpu.yaml",
]
DROPSERVE_SERVICES = ["dropserve", "dropserve-gpu", "dropserve-replica"]


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def seconds(duration: str | int | float) -> float:
    """A compose duration (`40s`, `1m30s`) or a number of seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration, "an empty duration"
    assert parts, f"unexpected duration {duration!r}"
    return int(parts[1] or 0) * 60.0 + int(parts[2] or 0)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """The container's literal environment (entries filled in by Kubernetes are left out)."""
    return {
        item["name"]: str(item["value"]) for item in container.get("env", []) if "value" in item
    }


def shutdown_budget(env: dict[str, Any]) -> float:
    """Drain delay + shutdown grace the server will use with this environment."""
    defaults = Settings.model_fields
    grace = float(env.get("DROPSERVE_SHUTDOWN_GRACE_S", defaults["shutdown_grace_s"].default))
    drain = float(env.get("DROPSERVE_DRAIN_DELAY_S", defaults["drain_delay_s"].default))
    return grace + drain


@pytest.fixture(scope="module")
def runtime(repo_root: Path) -> Stage:
    return parse_stages((repo_root / "Dockerfile").read_text(encoding="utf-8"))[-1]


@pytest.fixture(scope="module")
def image_command(runtime: Stage) -> list[str]:
    """The image's CMD: what every manifest that runs the image must run too."""
    (instruction,) = runtime.all("CMD")
    return exec_form(instruction)


@pytest.fixture(scope="module")
def compose(repo_root: Path) -> dict[str, Any]:
    return load(repo_root / "docker-compose.yml")


@pytest.fixture(scope="module")
def pod_containers(repo_root: Path) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) of every manifest that runs the dropserve image directly."""
    found = {}
    deployment = load(repo_root / DEPLOYMENT)
    pod = deployment["spec"]["template"]["spec"]
    found[DEPLOYMENT] = (pod, pod["containers"][0])
    for path in KSERVE:
        predictor = load(repo_root / path)["spec"]["predictor"]
        found[path] = (predictor, predictor["containers"][0])
    return found


def test_the_app_serves_the_probe_paths_on_the_default_port() -> None:
    from service.api import create_app

    paths = create_app(Settings()).openapi()["paths"]
    assert {READY_PATH, LIVE_PATH} <= set(paths)
    assert Settings.model_fields["port"].default == PORT


def test_image_command_port_and_healthcheck(runtime: Stage, image_command: list[str]) -> None:
    assert image_command[:2] == ["dropserve", "serve"]
    args = build_parser().parse_args(image_command[1:])
    assert args.port == PORT
    assert [i.args for i in runtime.all("EXPOSE")] == [str(PORT)]
    (healthcheck,) = runtime.all("HEALTHCHECK")
    (url,) = re.findall(r"https?://[^'\"\s]+", exec_form(healthcheck)[2])
    assert (urlparse(url).path, urlparse(url).port) == (READY_PATH, PORT)


@pytest.mark.parametrize("name", DROPSERVE_SERVICES)
def test_compose_services_run_the_image_as_built(name: str, compose: dict[str, Any]) -> None:
    service = compose["services"][name]
    assert "command" not in service, "the compose services run the image's CMD"
    (url,) = re.findall(r"https?://[^'\"\s]+", service["healthcheck"]["test"][-1])
    assert (urlparse(url).path, urlparse(url).port) == (READY_PATH, PORT)
    container_ports = [str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])]
    container_ports += [str(p) for p in service.get("expose", [])]
    assert container_ports == [str(PORT)]
    assert seconds(service["stop_grace_period"]) >= (
        shutdown_budget(service["environment"]) + EXIT_MARGIN_S
    )


def test_nginx_balances_the_replicas_on_the_same_port(
    compose: dict[str, Any], repo_root: Path
) -> None:
    conf = (repo_root / "deploy/nginx/nginx.conf").read_text(encoding="utf-8")
    assert re.search(rf"^\s*listen {PORT};", conf, re.M)
    upstreams = re.findall(r"^\s*server\s+([\w.-]+):(\d+)\s", conf, re.M)
    assert upstreams == [("dropserve-replica", str(PORT))]
    assert re.search(r"proxy_next_upstream [^;]*\bhttp_503\b", conf), "skip loading/draining"
    balancer = compose["services"]["loadbalancer"]
    assert [p.rsplit(":", 1)[-1] for p in balancer["ports"]] == [str(PORT)]
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in balancer["volumes"]
    health = balancer["healthcheck"]["test"][-1]
    assert (urlparse(health).path, urlparse(health).port) == (READY_PATH, PORT)
    condition = balancer["depends_on"]["dropserve-replica"]["condition"]
    assert condition == "service_healthy"


@pytest.mark.parametrize("manifest", [DEPLOYMENT, *KSERVE])
def test_pods_run_the_image_command_with_the_same_probes(
    manifest: str,
    pod_containers: dict[str, tuple[dict[str, Any], dict[str, Any]]],
    image_command: list[str],
) -> None:
    pod, container = pod_containers[manifest]
    assert container["command"] == image_command
    (port,) = container["ports"]
    assert port["containerPort"] == PORT
    for probe, path in (("readinessProbe", READY_PATH), ("livenessProbe", LIVE_PATH)):
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == path, f"{manifest}: {probe}"
        assert http_get["port"] in (PORT, port.get("name")), f"{manifest}: {probe} port"
    budget = shutdown_budget(env_of(container))
    assert pod["terminationGracePeriodSeconds"] >= budget + EXIT_MARGIN_S, manifest
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001, "the image's USER"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("manifest", [DEPLOYMENT, KSERVE[0]])
def test_cpu_pods_run_one_process_per_requested_cpu(
    manifest: str, pod_containers: dict[str, tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    # With no CPU limit, DROPSERVE_PROCESSES=0 would count the node's cores: the pods pass
    # their CPU request instead, rounded up to whole cores.
    _, container = pod_containers[manifest]
    (entry,) = [item for item in container["env"] if item["name"] == "DROPSERVE_PROCESSES"]
    field = entry["valueFrom"]["resourceFieldRef"]
    assert field == {"resource": "requests.cpu", "divisor": "1"}
    assert "cpu" not in container["resources"].get("limits", {})
    assert container["resources"]["requests"]["cpu"]


def test_service_and_autoscaler_point_at_the_deployment(repo_root: Path) -> None:
    deployment = load(repo_root / DEPLOYMENT)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = load(repo_root / "deploy/k8s/base/service.yaml")
    (port,) = service["spec"]["ports"]
    assert port["port"] == PORT
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named.get(port["targetPort"], port["targetPort"]) == PORT
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    pdb = load(repo_root / "deploy/k8s/base/pdb.yaml")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    target = load(repo_root / "deploy/k8s/base/hpa.yaml")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert container["resources"]["requests"]["cpu"], "a CPU HPA needs a CPU request"


def test_gpu_variants_ask_for_a_gpu_and_use_it(
    pod_containers: dict[str, tuple[dict[str, Any], dict[str, Any]]], repo_root: Path
) -> None:
    _, kserve_gpu = pod_containers[KSERVE[1]]
    patch = load(repo_root / "deploy/k8s/overlays/gpu/gpu.yaml")
    (overlay_gpu,) = patch["spec"]["template"]["spec"]["containers"]
    for container in (kserve_gpu, overlay_gpu):
        assert env_of(container)["DROPSERVE_DEVICE"] == "cuda"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert kserve_gpu["image"] == "dropserve:cuda"
    kustomization = load(repo_root / "deploy/k8s/overlays/gpu/kustomization.yaml")
    assert {"name": "dropserve", "newTag": "cuda"} in kustomization["images"]


def test_ray_serve_config_and_rayservice_agree(repo_root: Path) -> None:
    config = load(repo_root / "deploy/ray/serve_config.yaml")
    rayservice = load(repo_root / "deploy/ray/rayservice.yaml")
    assert yaml.safe_load(rayservice["spec"]["serveConfigV2"]) == config
    assert config["http_options"]["port"] == PORT
    (application,) = config["applications"]
    (deployment,) = application["deployments"]
    assert deployment["graceful_shutdown_timeout_s"] == Settings().shutdown_grace_s
    assert set(application["args"]) <= set(Settings.model_fields), "args are Settings fields"
    cluster = rayservice["spec"]["rayClusterConfig"]
    for group in cluster["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        (container,) = pod["containers"]
        assert [p["containerPort"] for p in container["ports"]] == [PORT]
        assert container["readinessProbe"]["httpGet"]["port"] == PORT
        assert pod["terminationGracePeriodSeconds"] >= (
            deployment["graceful_shutdown_timeout_s"] + EXIT_MARGIN_S
        )


def test_serve_config_import_path_names_the_builder(repo_root: Path) -> None:
    # Read as source, so that this holds without ray installed.
    (application,) = load(repo_root / "deploy/ray/serve_config.yaml")["applications"]
    module, _, attribute = application["import_path"].partition(":")
    source = (repo_root / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    functions = {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
    assert attribute in functions
    deployment_name = application["deployments"][0]["name"]
    assert f'APP_NAME = "{deployment_name}"' in source, "the config names the deployment"
