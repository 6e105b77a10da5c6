"""Reading catalog sources: image checks and the entries of folders and manifests. No database here."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Formats we store and serve; anything else Pillow can read is refused by name.
ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}


class BadImage(ValueError):
    """An image that cannot enter the catalog; the message says why, for a person."""


@dataclass(frozen=True)
class Entry:
    """One image a source offers: where it is, and the labels that come with it."""

    path: Path
    category: str
    attributes: dict = field(default_factory=dict)
    bbox: tuple[int, int, int, int] | None = None
    source: str = ""


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    sha256: str
    extension: str
    width: int
    height: int


def read_image_file(path: Path, *, max_bytes: int) -> bytes:
    """A file's bytes, its size checked before it is read (and the read capped, should it grow meanwhile)."""
    try:
        # Non-blocking: a FIFO named by a manifest must not hang the import (it is refused below).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise BadImage(f"cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BadImage("not a regular file")
        if info.st_size > max_bytes:
            raise BadImage(f"file is {info.st_size:,} bytes, over the limit of {max_bytes:,}")
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise BadImage(f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise BadImage(f"file is over the limit of {max_bytes:,} bytes")
    return data


def check_image(data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Decode fully (catches truncation) under the size and pixel limits; raise BadImage otherwise."""
    image = open_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    return CheckedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        extension=ALLOWED_FORMATS[image.format],
        width=image.width,
        height=image.height,
    )


def open_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    formats: dict[str, str] = ALLOWED_FORMATS,
    draft: tuple[int, int] | None = None,
) -> Image.Image:
    """The decoded image, if `data` is one of `formats` under the size and pixel limits; BadImage otherwise.

    Every byte is decoded (a truncated file is refused). `draft`: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale,
    still at least this size, which is several times faster for a phone photo that is shrunk anyway.
    """
    if not data:
        raise BadImage("empty file")
    if len(data) > max_bytes:
        raise BadImage(f"file is {len(data):,} bytes, over the limit of {max_bytes:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise BadImage(f"{width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}")
            if image.format not in formats:
                raise BadImage(f"{image.format} images are not accepted (use {', '.join(sorted(formats))})")
            if draft is not None and image.format in ("JPEG", "MPO"):
                image.draft("RGB", draft)
            image.load()
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image (Pillow cannot identify it)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"over the pixel limit of {max_pixels:,} (decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"truncated or corrupt image ({exc})") from None
    return image


def check_bbox(bbox, width: int, height: int) -> tuple[int, int, int, int] | None:
    if bbox is None:
        return None
    left, top, right, bottom = bbox
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise BadImage(f"bbox {list(bbox)} is outside the {width}x{height} image or empty")
    return bbox


def parse_bbox(raw) -> tuple[int, int, int, int] | None:
    """Accept '', None, [l, t, r, b] or 'l,t,r,b' / '[l, t, r, b]'."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = json.loads(text) if text.startswith("[") else [part for part in text.split(",")]
        except json.JSONDecodeError:
            raise BadImage(f"bbox {text!r} is not four numbers") from None
    try:
        values = tuple(int(round(float(v))) for v in raw)
    except (TypeError, ValueError):
        raise BadImage(f"bbox {raw!r} is not four numbers") from None
    if len(values) != 4:
        raise BadImage(f"bbox {raw!r} is not four numbers")
    return values


def parse_attributes(raw) -> dict:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        raise BadImage(f"attributes {raw!r} are not a JSON object") from None
    if not isinstance(value, dict):
        raise BadImage(f"attributes {raw!r} are not a JSON object")
    return value


class SourceError(ValueError):
    """The source as a whole cannot be read (missing folder, manifest without required columns)."""


OUTSIDE_HINT = "pass --allow-outside to import it anyway"


def entries_from(source: Path, *, allow_outside: bool = False) -> list[Entry | tuple[str, str]]:
    """Entries of a folder of category folders or of a CSV/JSON manifest.

    Every image must lie inside the folder (the manifest's folder), reached without symbolic links, unless
    `allow_outside`: an import publishes what it reads, so a manifest must not name `../../private/secret.png`.
    Rows that are wrong before any image is read come back as (name, reason) pairs.
    """
    source = Path(source)
    if not source.exists():
        raise SourceError(f"{source} does not exist")
    if source.is_dir():
        return _entries_from_folder(source, allow_outside=allow_outside)
    if source.suffix.lower() == ".csv":
        with source.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
        return _entries_from_rows(rows, source, allow_outside=allow_outside)
    if source.suffix.lower() == ".json":
        try:
            rows = json.loads(source.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise SourceError(f"{source} is not valid JSON: {exc}") from None
        if isinstance(rows, dict) and isinstance(rows.get("items"), list):
            rows = rows["items"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SourceError(f"{source} must hold a list of objects (or {{'items': [...]}})")
        return _entries_from_rows(rows, source, allow_outside=allow_outside)
    raise SourceError(f"{source} is neither a folder nor a .csv/.json manifest")


def _entries_from_folder(root: Path, *, allow_outside: bool) -> list[Entry | tuple[str, str]]:
    out: list[Entry | tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()  # folders already walked: a link back up must not loop forever
    for folder, subfolders, files in os.walk(root, followlinks=allow_outside):
        here = Path(folder)
        info = here.stat()
        if (info.st_dev, info.st_ino) in seen:
            subfolders[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        for name in list(subfolders):
            if (here / name).is_symlink() and not allow_outside:
                subfolders.remove(name)
                out.append((str((here / name).relative_to(root)), f"is a symbolic link to a folder; {OUTSIDE_HINT}"))
        for name in files:
            path = here / name
            rel = path.relative_to(root)
            if name.startswith("."):
                continue
            if path.is_symlink() and not allow_outside:
                out.append((str(rel), f"is a symbolic link; {OUTSIDE_HINT}"))
                continue
            if not path.is_file():
                continue
            if len(rel.parts) < 2:
                out.append((str(rel), "not inside a category folder (expected CATEGORY/image.jpg)"))
                continue
            out.append(Entry(path=path, category=rel.parts[0], source=str(rel)))
    return sorted(out, key=lambda e: Path(e[0] if isinstance(e, tuple) else e.source).parts)


def confined(path_text: str, folder: Path) -> Path:
    """`path_text` (relative to `folder`, or absolute) if it lies inside `folder` reached without symbolic links.

    The path is normalised ('..' taken out) first and then resolved: any difference is a link on the way.
    """
    base = folder.resolve()
    path = Path(os.path.normpath(base / path_text))
    if not path.is_relative_to(base):
        raise BadImage(f"is outside the manifest's folder {base}; {OUTSIDE_HINT}")
    if Path(os.path.realpath(path)) != path:
        raise BadImage(f"is a symbolic link or inside a linked folder; {OUTSIDE_HINT}")
    return path


def _entries_from_rows(rows: list[dict], manifest: Path, *, allow_outside: bool) -> list[Entry | tuple[str, str]]:
    if rows and not {"path", "category"} <= set(rows[0]):
        raise SourceError(f"{manifest} needs the columns path and category (it has {', '.join(rows[0])})")
    out: list[Entry | tuple[str, str]] = []
    for number, row in enumerate(rows, start=1):
        name = str(row.get("path") or f"row {number}")
        try:
            path_text = str(row.get("path") or "").strip()
            category = str(row.get("category") or "").strip()
            if not path_text:
                raise BadImage("no path")
            if not category:
                raise BadImage("no category")
            if allow_outside:
                path = Path(path_text)
                if not path.is_absolute():
                    path = manifest.parent / path
            else:
                path = confined(path_text, manifest.parent)
            out.append(
                Entry(
                    path=path,
                    category=category,
                    attributes=parse_attributes(row.get("attributes")),
                    bbox=parse_bbox(row.get("bbox")),
                    source=path_text,
                )
            )
        except BadImage as exc:
            out.append((name, str(exc)))
    return out
