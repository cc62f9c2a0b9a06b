"""Loaded models: every bundle version under the models folder, with its two engines.

The table of loaded models is replaced, never mutated: a reload builds the new table beside the
old one and swaps the reference, so a request that already holds a `LoadedModel` finishes on it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from service.bundle import Bundle, Manifest, ReadPolicy, discover, load_bundle, verify_bundle
from service.config import Settings
from service.dataplane.model_set import ModelSet
from service.device import resolve_torch_device
from service.engines import DeterministicEngine, EngineFactory, StochasticEngine, build_engines
from service.engines.precision import Setting, resolve_precision
from service.errors import BundleError, DropserveError, ModelNotFoundError, NotReadyError

__all__ = ["EngineFactory", "LoadedModel", "ModelRegistry", "ReloadReport"]

logger = logging.getLogger(__name__)

Table = dict[str, dict[int, "LoadedModel"]]


@dataclass(frozen=True)
class LoadedModel:
    """One model version, verified and warmed: the manifest plus both inference engines."""

    bundle: Bundle
    deterministic: DeterministicEngine
    mc: StochasticEngine

    @property
    def manifest(self) -> Manifest:
        return self.bundle.manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def macs_per_row(self) -> int:
        """Multiply-adds of one deterministic forward of one row (the cost of a predict row)."""
        arch = self.manifest.architecture
        widths = [len(self.manifest.features), *arch.hidden, self.manifest.n_outputs]
        return sum(a * b for a, b in itertools.pairwise(widths))

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def device(self) -> str:
        """Where Monte-Carlo dropout runs, e.g. "cpu" or "cuda:0"."""
        return str(self.mc.device)

    def warm_up(self, rounds: int, samples: int, precision: Setting = "fp32") -> None:
        """Run both engines a few times so the first request pays no lazy initialisation (on
        CUDA this captures the graph of a one-row request with the default T)."""
        row = np.asarray([self.manifest.normalization.feature_mean], dtype=np.float64)
        chosen = resolve_precision(
            precision, self.mc.device, samples, largest_layer_macs=self.mc.largest_layer_macs
        )
        for round_ in range(rounds):
            self.deterministic.predict(row)
            self.mc.sample(row, samples, seed=round_, precision=chosen)


@dataclass(frozen=True)
class ReloadReport:
    """What a (re)load changed: `name/version` keys, failures by bundle path, and the seconds
    each newly loaded version took to verify, load and warm up."""

    loaded: list[str]
    unloaded: list[str]
    kept: list[str]
    failed: dict[str, str]
    load_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class ModelRegistry:
    """Discovers, verifies, loads and warms every bundle; answers lookups by name and version.

    `on_reload`, when given, receives the report of every (re)load (for metrics); `on_change`
    the set of models served after every (re)load and unload; `engines` builds the engines of
    each version (tests pass service.engines.fake's).
    """

    settings: Settings
    on_reload: Callable[[ReloadReport], None] | None = None
    on_change: Callable[[ModelSet], None] | None = None
    engines: EngineFactory = build_engines
    device: torch.device = field(init=False)
    _models: Table = field(default_factory=dict, init=False)
    _failures: dict[str, str] = field(default_factory=dict, init=False)
    _unloaded: frozenset[str] = field(default_factory=frozenset, init=False)
    _ready: threading.Event = field(default_factory=threading.Event, init=False)
    _reload_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stuck: dict[str, threading.Thread] = field(default_factory=dict, init=False)
    _policy: ReadPolicy = field(init=False)

    def __post_init__(self) -> None:
        self.device = resolve_torch_device(self.settings.device)
        self._policy = ReadPolicy(
            models_dir=Path(self.settings.models_dir),
            follow_outside_symlinks=self.settings.follow_outside_symlinks,
            max_file_bytes=self.settings.max_bundle_file_bytes,
        )
        if self.settings.torch_threads:  # process-wide: the engines' forwards run on these
            torch.set_num_threads(self.settings.torch_threads)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def failures(self) -> dict[str, str]:
        """Bundle path -> why it was skipped at the last (re)load."""
        return dict(self._failures)

    def load_all(self, pinned: ModelSet | None = None) -> ReloadReport:
        """First load at startup; the registry is ready once it returns. With `pinned` (the set
        sibling processes serve), only its versions are loaded and its unloaded names skipped."""
        try:
            if pinned is not None:
                self._unloaded = frozenset(pinned.unloaded)
            return self.reload(pinned=pinned)
        finally:
            self._ready.set()

    def snapshot(self) -> ModelSet:
        """The versions served now, and the names unloaded by request."""
        versions = {name: list(versions) for name, versions in self._models.items()}
        return ModelSet(versions, sorted(self._unloaded))

    def reload(self, only: str | None = None, *, pinned: ModelSet | None = None) -> ReloadReport:
        """Rescan the models folder and swap in the result.

        New or changed bundles are loaded and warmed beside the serving ones; a bundle that fails
        verification or loading is reported and skipped, and a version already serving keeps
        serving from memory. Versions gone from disk are unloaded. With `only`, just that model
        is rescanned and the rest of the table is left as it is; with `pinned`, only the
        versions it lists are loaded.
        """
        with self._reload_lock:
            current = self._models
            found = discover(Path(self.settings.models_dir))
            if only is not None:
                found = {only: found[only]} if only in found else {}
            elif pinned is not None:
                found = {
                    name: {v: path for v, path in versions.items() if v in pinned.versions[name]}
                    for name, versions in found.items()
                    if name in pinned.versions
                }
            elif not found:
                logger.warning("no model bundles found under %s", self.settings.models_dir)
            table: Table = {} if only is None else {n: v for n, v in current.items() if n != only}
            failed: dict[str, str] = {}
            loaded: list[str] = []
            kept: list[str] = []
            load_seconds: dict[str, float] = {}
            for name, versions in found.items():
                if name in self._unloaded and only is None:
                    continue
                for version, path in versions.items():
                    key = f"{name}/{version}"
                    old = current.get(name, {}).get(version)
                    model: LoadedModel | None
                    began = time.perf_counter()
                    try:
                        model = self._refresh_bounded(path, old)
                    except DropserveError as exc:
                        logger.error("bundle %s: %s", path, exc.message)
                        failed[str(path)] = exc.message
                        model = old  # a version already in memory keeps serving
                    except Exception as exc:  # a bug or broken file must not take the rest down
                        logger.exception("bundle %s: unexpected error while loading", path)
                        failed[str(path)] = f"unexpected error: {type(exc).__name__}"
                        model = old
                    if model is None:
                        continue
                    table.setdefault(name, {})[version] = model
                    (kept if model is old else loaded).append(key)
                    if model is not old:
                        load_seconds[key] = time.perf_counter() - began
            previous = {f"{n}/{v}" for n, versions in current.items() for v in versions}
            now = {f"{n}/{v}" for n, versions in table.items() for v in versions}
            self._models = {name: dict(sorted(v.items())) for name, v in sorted(table.items())}
            self._failures = failed if only is None else {**self._failures, **failed}
            if only is not None:
                self._unloaded = self._unloaded - {only}
            report = ReloadReport(
                loaded=sorted(loaded),
                unloaded=sorted(previous - now),
                kept=sorted(kept),
                failed=failed,
                load_seconds=load_seconds,
            )
        if self.on_reload is not None:
            self.on_reload(report)
        if self.on_change is not None:
            self.on_change(self.snapshot())
        for key in report.loaded:
            logger.info("loaded model %s on %s", key, self.device)
        for key in report.unloaded:
            logger.info("unloaded model %s", key)
        return report

    def unload(self, name: str) -> list[int]:
        """Stop serving every version of `name` until it is loaded again by name."""
        with self._reload_lock:
            if name not in self._models:
                raise ModelNotFoundError(f"model '{name}' is not loaded; nothing to unload")
            versions = list(self._models[name])
            self._models = {n: v for n, v in self._models.items() if n != name}
            self._unloaded = self._unloaded | {name}
        if self.on_change is not None:
            self.on_change(self.snapshot())
        logger.info("unloaded model %s (versions %s) on request", name, versions)
        return versions

    def _refresh_bounded(self, path: Path, old: LoadedModel | None) -> LoadedModel:
        """`_refresh` on its own thread, given up after the load timeout.

        A load that never ends (a file on a hung mount, a runtime that deadlocks) would hold
        the reload lock and so every later reload, load and unload. The abandoned thread holds
        no lock and its result is dropped; it is a daemon, so it cannot delay the exit either.
        """
        key = str(path)
        timeout = self.settings.bundle_load_timeout_s
        earlier = self._stuck.get(key)
        if earlier is not None and earlier.is_alive():
            # One stuck thread per version at most, however often reloads are asked for.
            raise BundleError(
                f"{path}: an earlier load of this version has not finished after the "
                f"DROPSERVE_BUNDLE_LOAD_TIMEOUT_S of {timeout:g} s; check its files and the "
                "filesystem they are on, then reload again"
            )
        outcome: list[LoadedModel | BaseException] = []

        def run() -> None:
            try:
                outcome.append(self._refresh(path, old))
            except BaseException as exc:  # handed to the reload thread, which reports it
                outcome.append(exc)

        thread = threading.Thread(target=run, name=f"load {key}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            self._stuck[key] = thread
            raise BundleError(
                f"{path}: loading took longer than DROPSERVE_BUNDLE_LOAD_TIMEOUT_S "
                f"({timeout:g} s) and was abandoned; check the bundle's files and the filesystem "
                "they are on, or raise the timeout for a model that is slow to warm up"
            )
        self._stuck.pop(key, None)
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _refresh(self, path: Path, old: LoadedModel | None) -> LoadedModel:
        if old is not None:
            _, manifest_sha256, _ = verify_bundle(path, self._policy)
            if manifest_sha256 == old.bundle.manifest_sha256:
                return old  # unchanged on disk and still intact: keep the warm engines
        return self._load_one(path)

    def _load_one(self, path: Path) -> LoadedModel:
        settings = self.settings
        bundle = load_bundle(path, self._policy)
        deterministic, mc = self.engines(bundle, self.device, settings)
        loaded = LoadedModel(bundle, deterministic, mc)
        loaded.warm_up(settings.warmup_rounds, settings.default_samples, settings.precision)
        return loaded

    def models(self) -> Table:
        """name -> version -> model, versions ascending (a snapshot)."""
        return self._models

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        """The named model at `version`, or its newest version.

        Raises:
            NotReadyError: models are still loading.
            ModelNotFoundError: no such model or version is loaded.
        """
        if not self.ready:
            raise NotReadyError("models are still loading; retry when /health/ready answers 200")
        table = self._models
        versions = table.get(name)
        if not versions:
            known = ", ".join(sorted(table)) or "none"
            raise ModelNotFoundError(f"model '{name}' is not loaded; loaded models: {known}")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            have = ", ".join(str(v) for v in sorted(versions))
            raise ModelNotFoundError(
                f"model '{name}' has no version {version}; available versions: {have}"
            )
        return versions[version]
