"""Loaded models: every bundle version under the models folder, with its two engines."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from service.bundle import Bundle, Manifest, discover, load_bundle
from service.config import Settings
from service.device import resolve_torch_device
from service.engines import MCDropoutEngine, OnnxEngine
from service.errors import DropserveError, ModelNotFoundError, NotReadyError

__all__ = ["LoadedModel", "ModelRegistry"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """One model version, verified and warmed: the manifest plus both inference engines."""

    bundle: Bundle
    deterministic: OnnxEngine
    mc: MCDropoutEngine

    @property
    def manifest(self) -> Manifest:
        return self.bundle.manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    def warm_up(self, rounds: int, samples: int) -> None:
        """Run both engines a few times so the first request pays no lazy initialisation."""
        row = np.asarray([self.manifest.normalization.feature_mean], dtype=np.float64)
        for round_ in range(rounds):
            self.deterministic.predict(row)
            self.mc.sample(row, samples, seed=round_)


@dataclass
class ModelRegistry:
    """Discovers, verifies, loads and warms every bundle; answers lookups by name and version."""

    settings: Settings
    device: torch.device = field(init=False)
    _models: dict[str, dict[int, LoadedModel]] = field(default_factory=dict, init=False)
    _failures: dict[str, str] = field(default_factory=dict, init=False)
    _ready: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self.device = resolve_torch_device(self.settings.device)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def failures(self) -> dict[str, str]:
        """Bundle path -> why it was skipped."""
        return dict(self._failures)

    def load_all(self) -> None:
        """Load every bundle version found; a broken bundle is logged and skipped, not fatal."""
        settings = self.settings
        models_dir = Path(settings.models_dir)
        found = discover(models_dir)
        if not found:
            logger.warning("no model bundles found under %s", models_dir.resolve())
        for name, versions in found.items():
            for version, path in versions.items():
                try:
                    loaded = self._load_one(path)
                except DropserveError as exc:
                    logger.error("skipping bundle %s: %s", path, exc.message)
                    self._failures[str(path)] = exc.message
                    continue
                except Exception as exc:  # a bug or a broken file must not take down the rest
                    logger.exception("skipping bundle %s: unexpected error", path)
                    self._failures[str(path)] = f"unexpected error: {type(exc).__name__}"
                    continue
                self._models.setdefault(name, {})[version] = loaded
                logger.info(
                    "loaded model %s version %d (%s) on %s",
                    name,
                    version,
                    loaded.manifest.task,
                    self.device,
                )
        self._ready.set()

    def _load_one(self, path: Path) -> LoadedModel:
        settings = self.settings
        bundle = load_bundle(path)
        deterministic = OnnxEngine(bundle, self.device, settings.onnx_threads)
        deterministic.load()
        mc = MCDropoutEngine(bundle, self.device, settings.mc_chunk_elements)
        mc.load()
        loaded = LoadedModel(bundle, deterministic, mc)
        loaded.warm_up(settings.warmup_rounds, settings.default_samples)
        return loaded

    def models(self) -> dict[str, dict[int, LoadedModel]]:
        """name -> version -> model, versions ascending."""
        return {name: dict(sorted(v.items())) for name, v in sorted(self._models.items())}

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        """The named model at `version`, or its newest version.

        Raises:
            NotReadyError: models are still loading.
            ModelNotFoundError: no such model or version is loaded.
        """
        if not self.ready:
            raise NotReadyError("models are still loading; retry when /health/ready answers 200")
        versions = self._models.get(name)
        if not versions:
            known = ", ".join(sorted(self._models)) or "none"
            raise ModelNotFoundError(f"model '{name}' is not loaded; loaded models: {known}")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            have = ", ".join(str(v) for v in sorted(versions))
            raise ModelNotFoundError(
                f"model '{name}' has no version {version}; available versions: {have}"
            )
        return versions[version]
