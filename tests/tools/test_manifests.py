"""The deployment manifests validate offline, and every check proves it can fail.

Core Kubernetes kinds go through `kubernetes-validate --strict`, the KServe InferenceService and
the KubeRay RayService through `check-jsonschema` with the CRD schemas copied into
tests/tools/schemas (see the README there), the Serve config through Ray's own
`ServeDeploySchema`, and the compose `scale` profile through `docker-compose config`. Each check
also runs on a deliberately broken copy, which it must reject.
"""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

SCHEMAS = Path(__file__).parent / "schemas"
KUBERNETES_VERSION = "1.33.0"
CORE_MANIFESTS = [
    "deploy/k8s/base/deployment.yaml",
    "deploy/k8s/base/service.yaml",
    "deploy/k8s/base/hpa.yaml",
    "deploy/k8s/base/pdb.yaml",
]
CRD_MANIFESTS = {
    "deploy/k8s/kserve/inferenceservice-cpu.yaml": "inferenceservice-serving-v1beta1-strict.json",
    "deploy/k8s/kserve/inferenceservice-gpu.yaml": "inferenceservice-serving-v1beta1-strict.json",
    "deploy/ray/rayservice.yaml": "rayservice-ray-v1-strict.json",
}
SERVE_CONFIG = "deploy/ray/serve_config.yaml"


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def write(path: Path, documents: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return path


def misspell_readiness_probe(pod_spec: dict[str, Any]) -> None:
    """The kind of mistake strict validation exists for: a probe that would silently vanish."""
    container = pod_spec["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")


@pytest.fixture(scope="module")
def kubernetes_validate(require_program: Callable[[str], str]) -> Callable[..., Any]:
    program = require_program("kubernetes-validate")

    def validate(*paths: Path | str, cwd: Path) -> subprocess.CompletedProcess[str]:
        argv = [program, "--strict", "--quiet", "-k", KUBERNETES_VERSION, *map(str, paths)]
        return run(argv, cwd)

    return validate


@pytest.fixture(scope="module")
def check_jsonschema(require_program: Callable[[str], str]) -> Callable[..., Any]:
    program = require_program("check-jsonschema")

    def check(schema: str, path: Path | str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return run([program, "--schemafile", str(SCHEMAS / schema), str(path)], cwd)

    return check


def test_core_kinds_are_valid(kubernetes_validate: Callable[..., Any], repo_root: Path) -> None:
    result = kubernetes_validate(*CORE_MANIFESTS, cwd=repo_root)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validate_rejects_a_misspelt_field(
    kubernetes_validate: Callable[..., Any], repo_root: Path, tmp_path: Path
) -> None:
    deployment = load(repo_root / CORE_MANIFESTS[0])
    misspell_readiness_probe(deployment["spec"]["template"]["spec"])
    result = kubernetes_validate(write(tmp_path / "deployment.yaml", [deployment]), cwd=tmp_path)
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


@pytest.mark.parametrize("kustomization", ["deploy/k8s/base", "deploy/k8s/overlays/gpu"])
def test_kustomizations_render_valid_manifests(
    kustomization: str,
    kubernetes_validate: Callable[..., Any],
    require_program: Callable[[str], str],
    repo_root: Path,
    tmp_path: Path,
) -> None:
    kubectl = require_program("kubectl")
    rendered = run([kubectl, "kustomize", kustomization], repo_root)
    assert rendered.returncode == 0, rendered.stderr
    documents = list(yaml.safe_load_all(rendered.stdout))
    kinds = sorted(document["kind"] for document in documents)
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    result = kubernetes_validate(write(tmp_path / "rendered.yaml", documents), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    if kustomization.endswith("gpu"):
        (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "dropserve:cuda"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert {"name": "DROPSERVE_DEVICE", "value": "cuda"} in container["env"]


@pytest.mark.parametrize("manifest", sorted(CRD_MANIFESTS))
def test_custom_resources_match_their_crd(
    manifest: str, check_jsonschema: Callable[..., Any], repo_root: Path
) -> None:
    result = check_jsonschema(CRD_MANIFESTS[manifest], manifest, cwd=repo_root)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("manifest", sorted(CRD_MANIFESTS))
def test_crd_schemas_reject_a_misspelt_field(
    manifest: str, check_jsonschema: Callable[..., Any], repo_root: Path, tmp_path: Path
) -> None:
    resource = load(repo_root / manifest)
    if resource["kind"] == "InferenceService":
        misspell_readiness_probe(resource["spec"]["predictor"])
    else:
        head = resource["spec"]["rayClusterConfig"]["headGroupSpec"]
        misspell_readiness_probe(head["template"]["spec"])
    broken = write(tmp_path / Path(manifest).name, [resource])
    result = check_jsonschema(CRD_MANIFESTS[manifest], broken, cwd=tmp_path)
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


def test_serve_config_is_a_valid_serve_deploy_config(requires_ray: None, repo_root: Path) -> None:
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import ServeDeploySchema

    config = load(repo_root / SERVE_CONFIG)
    schema = ServeDeploySchema.model_validate(config)
    (application,) = schema.applications
    (deployment,) = application.deployments
    # ServeDeploySchema keeps autoscaling_config as a plain dict: check it as Serve will.
    AutoscalingConfig(**deployment.autoscaling_config)


def test_serve_deploy_schema_rejects_a_broken_config(requires_ray: None, repo_root: Path) -> None:
    from ray.serve.schema import ServeDeploySchema

    config = load(repo_root / SERVE_CONFIG)
    broken = copy.deepcopy(config)
    broken["applications"][0]["deployments"][0]["num_replicas"] = "two"
    with pytest.raises(ValueError, match="num_replicas"):
        ServeDeploySchema.model_validate(broken)
    del config["applications"][0]["import_path"]
    with pytest.raises(ValueError, match="import_path"):
        ServeDeploySchema.model_validate(config)


def test_serve_config_builds_the_application(requires_ray: None, repo_root: Path) -> None:
    import importlib

    from ray.serve import Application

    (application,) = load(repo_root / SERVE_CONFIG)["applications"]
    module_name, _, attribute = application["import_path"].partition(":")
    builder = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(builder(application["args"]), Application)


def compose_config(
    docker_compose: str, compose_file: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DROPSERVE_", "COMPOSE_"))}
    argv = [docker_compose, "--env-file", str(empty_env_file), "-f", str(compose_file)]
    return subprocess.run(
        [*argv, "--profile", "scale", "config", "-q"],
        cwd=compose_file.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_rejects_a_broken_scale_profile(
    require_program: Callable[[str], str], repo_root: Path, tmp_path: Path
) -> None:
    # The valid file passes in test_compose.py (every profile); here the same check must fail.
    docker_compose = require_program("docker-compose")
    compose = load(repo_root / "docker-compose.yml")
    assert (
        compose_config(docker_compose, write(tmp_path / "ok.yml", [compose]), tmp_path).returncode
        == 0
    )
    compose["services"]["loadbalancer"]["depends_on"]["dropserve-replica"]["condition"] = "healthy"
    result = compose_config(docker_compose, write(tmp_path / "broken.yml", [compose]), tmp_path)
    assert result.returncode != 0
    assert "condition" in result.stderr
