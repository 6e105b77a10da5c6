"""Where files live, and the one way build files are written.

Two places: the public media root holds only catalog images (content-addressed, served to anyone); the
private build storage holds what would name a model (features, indexes, weights, uploads).
Every file a build or an upload writes goes through `atomic_file`: a temporary file beside the target,
fsync, then a rename, so a reader (or a process that memory-mapped the old file) never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings


def media_path(relative: str) -> Path:
    """A public file (catalog images) under MEDIA_ROOT."""
    return Path(settings.MEDIA_ROOT) / relative


def media_url(relative: str) -> str:
    """The public URL of a catalog image."""
    return f"{settings.MEDIA_URL}{relative}"


def private_path(relative: str) -> Path:
    """A build file (features, indexes, weights, uploads): in the private storage, never served."""
    return Path(settings.VSEARCH_PRIVATE_ROOT) / relative


# What earlier versions kept under the media root (and served): moved to the private storage by migration 0006.
BUILD_FOLDERS = ("features", "indexes", "weights", "uploads")


def item_image_name(sha256: str, extension: str) -> str:
    return f"items/{sha256[:2]}/{sha256}.{extension}"


class AtomicFile:
    """A temporary file in `folder`, renamed onto `target` (fsynced first) by `commit()`, removed by `discard()`.

    The target may be named late (an upload is named by its content hash, known once it is written). The
    rename leaves the inode of a file it replaces alone, so memory-mapped readers keep their view.
    """

    def __init__(self, folder: Path, *, target: Path | None = None, name: str = "file", suffix: str = ".tmp"):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=suffix)
        os.close(fd)
        self.path = Path(tmp)
        self.target = target

    def commit(self) -> Path:
        if self.target is None:
            raise ValueError("an atomic file needs a target before it is committed")
        with self.path.open("rb+") as fh:
            os.fsync(fh.fileno())
        self.target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, self.target)
        return self.target

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target` for a writer to fill (numpy, Annoy, torch, a copy loop); when the
    block ends without an error it is fsynced and renamed onto `target`, otherwise removed."""
    target = Path(target)
    pending = AtomicFile(target.parent, target=target, name=target.name)
    try:
        yield pending.path
        pending.commit()
    except BaseException:
        pending.discard()
        raise


def write_atomic(target: Path, data: bytes) -> Path:
    """`data` into `target`, whole or not at all."""
    with atomic_file(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)
