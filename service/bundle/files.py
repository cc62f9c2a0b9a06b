"""Read a bundle's files confined to the models folder: regular files only, bounded in size.

A manifest names its files, so without these checks a manifest could make the server read any
file the process can open (an absolute path, `..`, a symlink leaving the models folder) or block
forever on a FIFO. Every read goes through `read_bundle_file`.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from service.errors import BundleError

__all__ = ["DEFAULT_MAX_FILE_BYTES", "MAX_MANIFEST_BYTES", "ReadPolicy", "read_bundle_file"]

DEFAULT_MAX_FILE_BYTES = 1 << 30
# Sixteen example rows and the statistics of a few thousand features fit many times over.
MAX_MANIFEST_BYTES = 1 << 20


@dataclass(frozen=True)
class ReadPolicy:
    """Where a bundle's files may live and how large they may be.

    `models_dir` None means the bundle's grandparent (bundles lie in `<models>/<name>/<version>`).
    """

    models_dir: Path | None = None
    follow_outside_symlinks: bool = False
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def root(self, bundle: Path) -> Path:
        """The resolved models folder that `bundle`'s files must stay inside."""
        return Path(os.path.realpath(self.models_dir or bundle.parent.parent))

    def check_folder(self, bundle: Path) -> None:
        """Refuse a bundle folder that resolves outside the models folder (unless allowed)."""
        root = self.root(bundle)
        if not self.follow_outside_symlinks and not _inside(bundle, root):
            raise BundleError(
                f"{bundle}: the bundle folder resolves through a symlink to outside the models "
                f"folder {root}; move the bundle into the models folder, or set "
                "DROPSERVE_FOLLOW_OUTSIDE_SYMLINKS=true to allow links that leave it"
            )


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(root)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_bundle_file(
    file: Path, bundle: Path, policy: ReadPolicy, *, label: str, max_bytes: int | None = None
) -> bytes:
    """The bytes of `file`, a plain name inside `bundle`, after every confinement check.

    Args:
        file: the path to read, `bundle / <known name>`.
        bundle: the bundle folder.
        policy: the models folder, whether symlinks may leave it, and the size bound.
        label: what the file is, for messages ("the manifest", "file listed in the manifest").
        max_bytes: a fixed bound in place of the policy's (the manifest's).

    Raises:
        BundleError: the file is missing, resolves outside the models folder, is not a regular
            file, or is over the size bound.
    """
    limit = policy.max_file_bytes if max_bytes is None else max_bytes
    root = policy.root(bundle)
    real = os.path.realpath(file)
    if not policy.follow_outside_symlinks and not Path(real).is_relative_to(root):
        raise BundleError(
            f"{file}: {label} resolves through a symlink to outside the models folder {root}; "
            "keep a bundle's files inside the models folder, or set "
            "DROPSERVE_FOLLOW_OUTSIDE_SYMLINKS=true to allow links that leave it"
        )
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        # O_NOFOLLOW: `real` has no symlinks left; one swapped in since is refused.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise BundleError(f"{file}: cannot read {label}, it is missing") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BundleError(f"{file}: {label} was replaced by a symlink while read") from exc
        raise BundleError(f"{file}: cannot read {label} ({exc.strerror})") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise BundleError(
            f"{file}: {label} is {_kind(info.st_mode)}; a bundle holds regular files only"
        )
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            raise BundleError(_too_large(file, label, info.st_size, limit, max_bytes))
        data = handle.read(limit + 1)  # a file that grows while read still stops at the bound
    if len(data) > limit:
        raise BundleError(_too_large(file, label, len(data), limit, max_bytes))
    return data


def _too_large(file: Path, label: str, size: int, limit: int, fixed: int | None) -> str:
    fix = (
        "a manifest never needs that much; check what wrote it"
        if fixed is not None
        else "raise DROPSERVE_MAX_BUNDLE_FILE_BYTES if the bundle is genuine"
    )
    return f"{file}: {label} has {size} bytes, over the limit of {limit}; {fix}"
