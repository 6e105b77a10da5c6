"""Shared fixtures: an isolated media folder, eager tasks, and small named worlds."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

REQUIRE_SERVICES = os.environ.get("VSEARCH_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    """Without a service: skip with the reason; in CI (VSEARCH_REQUIRE_SERVICES=1) that skip is a failure."""
    if REQUIRE_SERVICES:
        pytest.fail(f"VSEARCH_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def isolated_media(settings, tmp_path):
    """This test's public media root (catalog images); build files go to `isolated_private` beside it."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.VSEARCH_PRIVATE_ROOT = tmp_path / "private"
    settings.VSEARCH_TASKS = "eager"
    settings.VSEARCH_ALLOW_DOWNLOADS = False
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # Tallies recomputed on every read: a test reads what it just wrote (one test checks the 5 s production cache).
    settings.VSEARCH_TALLY_SECONDS = 0
    # Votes count from the first (no gold qualification) unless a test is about the qualification.
    settings.VSEARCH_QUALIFY_GOLD = 0
    # Pages render without a prior collectstatic (production serves the hashed manifest).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True
    from voting import design, sampling
    from vsearch_site.celery import app

    app.conf.task_always_eager = True
    sampling.memo.clear()  # the per-process memos of the rotation and the design must not outlive a test
    design.memo.clear()
    yield settings.MEDIA_ROOT


@pytest.fixture
def isolated_private(isolated_media, settings):
    """This test's private build storage: features, indexes, weights, uploads."""
    return settings.VSEARCH_PRIVATE_ROOT


def png_bytes(colour=(200, 30, 30), size=(48, 40), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def patterned_png(seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def demo_catalog(db):
    """A catalog of 30 synthetic garments (3 of each of 10 categories), rendered at 64 px."""
    from django.core.management import call_command

    call_command("make_demo_catalog", n=30, seed=7, size=64, verbosity=0)
    from matching.models import Item

    return list(Item.objects.order_by("id"))
