"""Model metadata: the list of loaded models and each one's public manifest."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import RegistryDep, SettingsDep
from service.api.fast_json import JSONRoute
from service.api.schemas import ErrorResponse
from service.api.v1.responses import model_detail
from service.api.v1.schemas import ModelDetail, ModelList, ModelSummary

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=JSONRoute)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 404, 503)
}


@router.get("", response_model=ModelList, responses=_ERRORS)
async def list_models(registry: RegistryDep) -> ModelList:
    summaries = []
    for name, versions in registry.models().items():
        latest = versions[max(versions)].manifest
        summaries.append(
            ModelSummary(
                name=name,
                versions=list(versions),
                latest=latest.version,
                task=latest.task,
                description=latest.description,
            )
        )
    return ModelList(models=summaries)


@router.get("/{name}", response_model=ModelDetail, responses=_ERRORS)
async def get_model(name: str, registry: RegistryDep, settings: SettingsDep) -> ModelDetail:
    model = registry.get(name)
    return model_detail(model, list(registry.models()[name]), settings)


@router.get("/{name}/versions/{version}", response_model=ModelDetail, responses=_ERRORS)
async def get_model_version(
    name: str, version: int, registry: RegistryDep, settings: SettingsDep
) -> ModelDetail:
    model = registry.get(name, version)
    return model_detail(model, list(registry.models()[name]), settings)
