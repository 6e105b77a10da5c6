"""Staff uploads: a staff API client, a snapshot of what is stored, and a measure of an upload's peak memory."""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torchvision
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from matching.models import FeatureSet, MatchPair, Variant


@pytest.fixture(scope="session")
def resnet18_weights(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("weights") / "r18.pt"
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path.read_bytes()


@pytest.fixture
def staff_api(db) -> APIClient:
    user = User.objects.create_user("sam", password="pw-for-tests-only", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def snapshot(media: Path) -> tuple:
    """Rows and files an upload could leave behind (the public media root and the private build storage beside
    it): equal before and after a refusal."""
    from django.conf import settings

    files = [
        str(p.relative_to(root.parent))
        for root in (Path(media), Path(settings.VSEARCH_PRIVATE_ROOT))
        if root.exists()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]
    return (Variant.objects.count(), FeatureSet.objects.count(), MatchPair.objects.count(), files)


def upload(client, **fields):
    data = {
        "kind": "weights",
        "name": "my resnet",
        "description": "trained on Tuesday",
        "metrics": ["l2"],
        "architecture": "resnet18",
        "layer": "penultimate",
        **fields,
    }
    return client.post("/api/variants/upload", data, format="multipart")


def weights_file(data: bytes, name: str = "r18.pt") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


@dataclass
class Peak:
    bytes: int = 0


@contextlib.contextmanager
def peak_memory() -> Iterator[Peak]:
    """The most Python and numpy memory (tracemalloc) held at once inside the block, above what it started with.

    Torch's allocator is not traced: measure a network in a subprocess (ru_maxrss) instead.
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    peak = Peak()
    try:
        yield peak
    finally:
        peak.bytes = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()
