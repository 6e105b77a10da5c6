"""Small copies of catalog images (the item's crop), made once and served as public catalog images.

A thumbnail is named by its image's content hash and crop, like the image itself, so it says nothing about any
model and never needs to be made twice. The map draws them when zoomed in.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterable

from PIL import Image

from matching.storage import media_path, media_url, write_atomic

log = logging.getLogger(__name__)

SIZE = 64  # pixels on the longer side: a map point zoomed in is drawn at 24-64 CSS px
QUALITY = 80


def thumbnail_name(sha256: str, crop_key: str) -> str:
    crop = f"-{hashlib.sha1(crop_key.encode()).hexdigest()[:10]}" if crop_key else ""
    return f"items/thumbs/{sha256[:2]}/{sha256}{crop}.{SIZE}.webp"


def thumbnail_url(sha256: str, crop_key: str) -> str:
    return media_url(thumbnail_name(sha256, crop_key))


def thumbnail_bytes(image: Image.Image, bbox: list | None) -> bytes:
    """The item's crop, at most SIZE px on its longer side, as WebP on white (transparency flattened)."""
    if bbox:
        image = image.crop(tuple(bbox))
    image.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="WEBP", quality=QUALITY, method=4)
    return buffer.getvalue()


def thumbnails_ensure(
    rows: Iterable[tuple[str, str, str, list | None]], *, progress: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """Make the missing thumbnails of (image name, sha256, crop_key, bbox) rows; (made, unreadable).

    An unreadable image (a file gone from the media root) is logged and skipped: its map point stays a dot.
    `progress(rows seen)` is called every 100 rows.
    """
    made = failed = 0
    for seen, (image_name, sha256, crop_key, bbox) in enumerate(rows, start=1):
        if progress and seen % 100 == 0:
            progress(seen)
        target = media_path(thumbnail_name(sha256, crop_key))
        if target.exists():
            continue
        try:
            with Image.open(media_path(image_name)) as image:
                if not bbox:
                    image.draft("RGB", (SIZE * 2, SIZE * 2))  # JPEG: decode at 1/2..1/8 scale, far faster
                image.load()
                data = thumbnail_bytes(image, bbox)
        except (OSError, ValueError) as exc:
            log.warning("no thumbnail for %s: %s", image_name, exc)
            failed += 1
            continue
        write_atomic(target, data)
        made += 1
    return made, failed
