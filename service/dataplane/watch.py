"""Watch the models folder and reload when its bundles change (the reload of /admin/reload).

Each tick compares a cheap signature of the folder (the stat of every bundle file) with the one
last acted on; only a change costs a reload, and only once the folder has held still for one
tick, so a version copied in by hand is not read while its files still grow. A bundle that
still fails (half copied, broken) is reported by the reload like any other, the serving version
keeps serving, and the next change of its files tries it again. Every server process watches
for itself: they read the same folder, so they come to serve the same versions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from service.bundle.manifest import BUNDLE_FILES, MANIFEST_FILE, NAME_PATTERN
from service.dataplane.registry import ModelRegistry

__all__ = ["FolderSignature", "folder_signature", "watch_models"]

logger = logging.getLogger(__name__)

_VERSION = re.compile(r"[1-9][0-9]*")  # as service.bundle.discover reads version folders

# (inode, size, mtime in ns) of each file, None for a file that is missing.
FileStat = tuple[int, int, int] | None


@dataclass(frozen=True)
class FolderSignature:
    """`name/version` -> the stat of each of its files, in a fixed order."""

    versions: dict[str, tuple[FileStat, ...]]

    def changes(self, before: FolderSignature) -> tuple[list[str], list[str], list[str]]:
        """The versions added, removed and changed since `before`."""
        added = sorted(set(self.versions) - set(before.versions))
        removed = sorted(set(before.versions) - set(self.versions))
        changed = sorted(
            key
            for key, files in self.versions.items()
            if key in before.versions and before.versions[key] != files
        )
        return added, removed, changed


def _stat(path: Path) -> FileStat:
    try:
        info = path.stat()  # follows links, so a swapped Kubernetes `..data` link shows
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def _children(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return [entry for entry in entries if entry.is_dir()]
    except OSError:  # gone or unreadable meanwhile: it reads as empty, as discover does
        return []


def folder_signature(models_dir: Path) -> FolderSignature:
    """Stat every file of every `<name>/<version>/` folder; nothing is read or hashed.

    Staging folders (`.staging-*`, as `save_bundle` writes) do not parse as versions, so a
    bundle being written is invisible until it is renamed into place.
    """
    files = (MANIFEST_FILE, *BUNDLE_FILES)
    versions: dict[str, tuple[FileStat, ...]] = {}
    for name_dir in _children(models_dir):
        if not re.fullmatch(NAME_PATTERN, name_dir.name):
            continue
        for version_dir in _children(Path(name_dir.path)):
            if _VERSION.fullmatch(version_dir.name):
                folder = Path(version_dir.path)
                versions[f"{name_dir.name}/{version_dir.name}"] = tuple(
                    _stat(folder / name) for name in files
                )
    return FolderSignature(dict(sorted(versions.items())))


async def watch_models(
    registry: ModelRegistry, interval_s: float, applied: FolderSignature
) -> None:
    """Reload `registry` whenever its models folder changes, until cancelled.

    Args:
        registry: the models to keep in step with the folder; its own reload verifies, loads
            beside and swaps, and keeps names unloaded by request unloaded.
        interval_s: seconds between looks at the folder.
        applied: the folder as the first load found it.
    """
    models_dir = Path(registry.settings.models_dir)
    pending: FolderSignature | None = None
    while True:
        await asyncio.sleep(interval_s)
        if not registry.ready:
            continue  # the first load is still running; it reads the folder itself
        now = await asyncio.to_thread(folder_signature, models_dir)
        if now == applied:
            pending = None
            continue
        if now != pending:
            pending = now  # changed since the last look: wait until it holds still
            continue
        added, removed, changed = now.changes(applied)
        logger.info(
            "models folder %s changed (added: %s; removed: %s; changed: %s); reloading",
            models_dir,
            ", ".join(added) or "none",
            ", ".join(removed) or "none",
            ", ".join(changed) or "none",
        )
        try:
            await asyncio.to_thread(registry.reload)
        except Exception:  # a bug in one reload must not end the watching
            logger.exception("reloading the models folder %s failed", models_dir)
        # What was seen before the reload read the folder: a change during it shows next tick.
        applied, pending = now, None
