"""Hostile uploads cost memory in proportion to their size, never to what they claim, and store nothing.

Each file here is small and declares (or would expand to) something large. Peak memory is measured with
tracemalloc around the upload service (numpy and Python allocations), or as the peak RSS of a subprocess where
torch allocates; the bound is twice the file plus a little.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

from matching.featurizers.finetuned import FORMAT
from matching.services import variants_from_embeddings
from matching.uploads import UploadError, read_embeddings
from tests.matching.conftest import peak_memory, snapshot

ROOT = Path(__file__).resolve().parents[2]
SLACK = 2 * 1024 * 1024  # what a refusal costs whatever the file: the service's queries, a message


def within_twice(size: int) -> int:
    return 2 * size + SLACK


def npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """A .npy header declaring `shape`, with no data after it."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def npz_of_zeros(ids, shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """An .npz whose embeddings are `shape` zeros, deflated as they are written: tiny, however much it holds."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("item_ids.npy", "w") as fh:
            np.lib.format.write_array(fh, np.asarray(ids))
        with archive.open("embeddings.npy", "w", force_zip64=True) as fh:
            fh.write(npy_header(shape, dtype))
            left, zeros = math.prod(shape) * np.dtype(dtype).itemsize, bytes(1 << 20)
            while left:
                fh.write(zeros[: min(left, len(zeros))])
                left -= min(left, len(zeros))
    return buffer.getvalue()


def ids_of(items) -> str:
    return "\n".join(str(i.pk) for i in items)


# Each: (what, files made from the catalog's items, settings to apply, a part of the message).
HOSTILE = [
    (
        "an npz declaring a huge array",
        lambda items: {"upload": ("e.npz", npz_of_zeros([i.pk for i in items], (100_000, 16)))},
        {},
        "declares 100,000 rows, more than the catalog's 30 items",
    ),
    (
        "an npz expanding past the upload limit",
        lambda items: {"upload": ("e.npz", npz_of_zeros([i.pk for i in items], (30, 16384)))},
        {"VSEARCH_MAX_UPLOAD_BYTES": 1024 * 1024},
        "over the upload limit of 1,048,576; nothing was read",
    ),
    (
        "an npz expanding a thousandfold",
        lambda items: {"upload": ("e.npz", npz_of_zeros([i.pk for i in items], (30, 16384)))},
        {"NPZ_EXPANSION_FLOOR": 1024 * 1024},
        "times its size",
    ),
    (
        "an npy declaring data it does not hold",
        lambda items: {"upload": ("e.npy", npy_header((30, 16384))), "ids_upload": ("ids.txt", ids_of(items))},
        {},
        "is truncated",
    ),
    (
        "an id list longer than the catalog",
        lambda items: {
            "upload": ("e.npy", _npy(np.ones((30, 4)))),
            "ids_upload": ("ids.txt", "1\n" * 2_000_000),
        },
        {},
        "has more ids than the catalog's 30 items",
    ),
    (
        "a csv with more rows than the catalog",
        lambda items: {"upload": ("e.csv", "".join(f"{n}," + ",".join("1" * 50) + "\n" for n in range(40_000)))},
        {},
        "has more rows than the catalog's 30 items",
    ),
    (
        "a csv row of a million values",
        lambda items: {"upload": ("e.csv", f"{items[0].pk}," + ",".join("1" * 1_000_000) + "\n")},
        {},
        "is longer than",
    ),
]


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _uploaded(name: str, data: bytes | str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data.encode() if isinstance(data, str) else data)


@pytest.mark.parametrize(("case", "make", "changes", "message"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_a_hostile_embeddings_file_is_refused_within_twice_its_size_and_nothing_is_stored(
    demo_catalog, isolated_media, settings, monkeypatch, case, make, changes, message
):
    for name, value in changes.items():
        if name.startswith("VSEARCH_"):
            setattr(settings, name, value)
        else:
            monkeypatch.setattr(f"matching.uploads.{name}", value)
    files = {field: _uploaded(*spec) for field, spec in make(demo_catalog).items()}
    size = sum(f.size for f in files.values())
    before = snapshot(isolated_media)

    with peak_memory() as peak, pytest.raises(UploadError) as refused:
        variants_from_embeddings(name="hostile", metrics=["l2"], **files)

    assert message in str(refused.value)
    assert peak.bytes <= within_twice(size), f"{case}: {peak.bytes:,} bytes at peak for a {size:,}-byte file"
    assert snapshot(isolated_media) == before


def test_a_wide_csv_is_read_into_float32_rows_within_twice_its_size(demo_catalog, tmp_path):
    values = np.random.default_rng(0).normal(size=(len(demo_catalog), 16384))
    path = tmp_path / "wide.csv"
    rows = zip(demo_catalog, values, strict=True)
    path.write_text("".join(f"{i.pk}," + ",".join(f"{x:.5f}" for x in row) + "\n" for i, row in rows))

    with peak_memory() as peak:
        embeddings = read_embeddings(path, filename="wide.csv")

    assert embeddings.vectors.dtype == np.float32 and embeddings.vectors.shape == (30, 16384)
    np.testing.assert_allclose(embeddings.vectors, values, atol=1e-5)
    assert peak.bytes <= within_twice(path.stat().st_size), f"{peak.bytes:,} bytes at peak"


MEASURE_CHECK = """
import json, os, re, sys
from pathlib import Path
import django
django.setup()
import torch
from matching.uploads import UploadError, check_weights

def peak_rss():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024

Path("/proc/self/clear_refs").write_text("5")  # the peak so far (imports) no longer counts
before = peak_rss()
try:
    check_weights(Path(sys.argv[1]), filename="ft.pt", architecture="finetuned", layer="hidden")
    outcome = "accepted"
except UploadError as exc:
    outcome = str(exc)
print(json.dumps({"grew": peak_rss() - before, "outcome": outcome}))
"""


def weights_check_in_a_subprocess(path: Path, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="vsearch_site.settings", DJANGO_SECRET_KEY="test", VSEARCH_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_CHECK, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_finetuned_checkpoint_declaring_a_huge_hidden_layer_is_refused_before_the_network_is_built(tmp_path):
    path = tmp_path / "ft.pt"
    torch.save(
        {
            "format": FORMAT,
            "backbone": "resnet18",
            "hidden_dim": 16384,  # in range, but its tensors say otherwise
            "classes": ["a", "b"],
            "input_size": 224,
            "state_dict": {"hidden.weight": torch.zeros(1, 1)},
        },
        path,
    )

    measured = weights_check_in_a_subprocess(path, tmp_path)

    assert "hidden.weight is (1, 1), but backbone=resnet18, hidden_dim=16384" in measured["outcome"]
    # Building first costs the backbone (45 MB) and a 16384-wide layer (34 MB for ResNet-18's 512 inputs).
    assert measured["grew"] <= within_twice(path.stat().st_size) + 8 * 1024 * 1024, measured
