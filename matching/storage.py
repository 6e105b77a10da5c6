"""Files under MEDIA_ROOT: content-addressed item images and atomically replaced build artifacts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings


def media_path(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


def item_image_name(sha256: str, extension: str) -> str:
    return f"items/{sha256[:2]}/{sha256}.{extension}"


def write_atomic(relative: str, data: bytes) -> Path:
    """Write to a temporary file beside the target, fsync, then rename into place.

    A reader (or a process that memory-mapped the old file) never sees a half-written file.
    """
    target = media_path(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def temp_path_beside(relative: str) -> Path:
    """A fresh temporary path in the target's folder, for writers (numpy, Annoy) that need a filename."""
    target = media_path(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)
