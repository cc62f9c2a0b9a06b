"""The set of models a server process serves, kept where its siblings can read it.

With several processes on one port, every admin action and reload reaches them all, so they
serve the same model versions. A process that the host restarts (after a crash, say) must come
back to that same set, not to whatever the models folder holds by then: so each process writes
its set, after every change, to a file in the host's private folder, and a process starting
beside running siblings loads the newest of their sets.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

from service.peers import ProcessPeers

__all__ = ["ModelSet", "save_model_set", "sibling_model_set"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSet:
    """Model name -> versions served, and the names unloaded by request."""

    versions: dict[str, list[int]] = field(default_factory=dict)
    unloaded: list[str] = field(default_factory=list)


def save_model_set(peers: ProcessPeers, model_set: ModelSet) -> None:
    """Write this process's set, replacing the last one atomically."""
    path = peers.folder / f"models-{peers.index}.json"
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps({"versions": model_set.versions, "unloaded": model_set.unloaded}))
    os.replace(staging, path)


def sibling_model_set(peers: ProcessPeers) -> ModelSet | None:
    """The newest set a sibling wrote, or None when none has (a fresh start)."""
    written = []
    for index in peers.siblings:
        path = peers.folder / f"models-{index}.json"
        try:
            written.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    for _, path in sorted(written, reverse=True):
        try:
            data = json.loads(path.read_text())
            versions = {str(k): [int(v) for v in vs] for k, vs in data["versions"].items()}
            return ModelSet(versions, [str(name) for name in data["unloaded"]])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("the model set in %s is unreadable (%r); trying another", path, exc)
    return None
