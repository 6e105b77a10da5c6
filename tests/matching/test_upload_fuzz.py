"""Property-based fuzzing of the upload checks (hypothesis, bounded): random bytes, valid-looking and broken
archives, CSVs of random shapes, damaged checkpoints.

Whatever the file: the check returns what would be stored (float32, finite, one row per known item) or refuses
with UploadError, never another exception; memory stays within twice the file plus what the limits allow; and
a refused upload stores nothing.
"""

from __future__ import annotations

import io
import itertools
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from matching.services import variants_from_embeddings
from matching.uploads import Limits, UploadError, check_weights, read_embeddings
from tests.matching.conftest import peak_memory, snapshot

LIMITS = Limits(rows=30, bytes=1024 * 1024)  # the demo catalog's 30 items; arrays of at most 1 MB
SLACK = 2 * 1024 * 1024
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

DTYPES = ["<f4", "<f8", ">f8", "<f2", "<i8", "|u1", "|b1", "<c8", "|O", "<U64", "|S64", "<U9999", "<M8[s]"]
SHAPES = st.lists(st.one_of(st.integers(0, 40), st.integers(0, 10**12)), min_size=0, max_size=3).map(tuple)


@st.composite
def npy_bytes(draw, ids=None) -> bytes:
    """A .npy: a header of any dtype and shape (huge ones included), then some data, all of it or cut short."""
    if ids is not None and not draw(st.booleans()):
        return _npy(np.asarray(ids))  # a real id array, so that the other member is what gets tested
    if not draw(st.booleans()):  # a real array of embeddings, some of whose values are not finite in float32
        shape = draw(st.tuples(st.integers(0, 40), st.integers(1, 64)))
        array = np.full(shape, draw(st.sampled_from([0.0, 1.5, -2.0])), dtype=draw(st.sampled_from(["<f4", "<f8"])))
        if array.size and draw(st.booleans()):
            array.flat[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from([1e39, np.nan, -np.inf]))
        return _npy(array)
    dtype, shape = draw(st.sampled_from(DTYPES)), draw(SHAPES)
    buffer = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    except ValueError:
        buffer.write(b"\x93NUMPY\x01\x00")
    return buffer.getvalue() + draw(st.binary(max_size=2048))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@st.composite
def npz_bytes(draw, item_ids) -> bytes:
    """A zip of .npy members under the names an upload uses (or not), stored or deflated, perhaps damaged."""
    usual = [] if draw(st.booleans()) else ["embeddings.npy", "item_ids.npy"]  # hypothesis favours False
    others = st.sampled_from(["embeddings.npy", "item_ids.npy", "vectors.npy", "sha256.npy", "embeddings", "x.npy"])
    names = usual + draw(st.lists(others, max_size=3))
    buffer = io.BytesIO()
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name in names:
            ids = item_ids[: draw(st.integers(0, len(item_ids)))] if "ids" in name or "sha" in name else None
            archive.writestr(name, draw(npy_bytes(ids=ids)))
    data = bytearray(buffer.getvalue())
    if draw(st.integers(0, 3)) == 3:  # now and then, flip bytes anywhere: headers, sizes, the central directory
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.integers(0, 3)) == 3:
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


TOKENS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(["1e39", "-1e39", "nan", "inf", "", " 1.5 ", "1_0", '"1"', "x", "0x10", "\x00", "é"]),
)


@st.composite
def csv_text(draw, keys) -> str:
    """Rows of a key (an item id, a hash, junk) and values, mostly of one width; perhaps a header, odd line ends."""
    width = draw(st.integers(0, 6))
    rows = []
    if draw(st.booleans()):
        rows.append("id," + ",".join(f"v{i}" for i in range(width)))
    for _ in range(draw(st.integers(0, 35))):
        key = draw(st.one_of(st.sampled_from(keys), st.text(max_size=8)))
        n = width if draw(st.integers(0, 9)) else draw(st.integers(0, 8))
        rows.append(",".join([key, *(draw(TOKENS) for _ in range(n))]))
    return draw(st.sampled_from(["", "\ufeff"])) + draw(st.sampled_from(["\n", "\r\n", "\r"])).join(rows)


def check(path: Path, name: str, ids_path: Path | None = None) -> None:
    """The property: stored-ready embeddings or an UploadError, within twice the file plus the limits."""
    size = path.stat().st_size + (ids_path.stat().st_size if ids_path else 0)
    with peak_memory() as peak:
        try:
            embeddings = read_embeddings(path, filename=name, ids_path=ids_path, limits=LIMITS)
        except UploadError:
            embeddings = None
    assert peak.bytes <= 2 * size + 2 * LIMITS.bytes + SLACK, f"{peak.bytes:,} bytes at peak for {size:,}"
    if embeddings is not None:
        assert embeddings.vectors.dtype == np.float32 and np.isfinite(embeddings.vectors).all()
        assert len(set(embeddings.item_ids.tolist())) == len(embeddings.item_ids) == len(embeddings.vectors) >= 2


@pytest.fixture
def item_keys(demo_catalog) -> list[str]:
    return [str(i.pk) for i in demo_catalog] + [i.sha256 for i in demo_catalog]


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".npy", ".npz", ".csv"]))
def test_random_bytes_are_refused_with_an_upload_error(item_keys, tmp_path, data, suffix):
    path = tmp_path / f"e{suffix}"
    path.write_bytes(data.draw(st.binary(max_size=4096)))
    ids = tmp_path / "ids.txt"
    ids.write_bytes(data.draw(st.binary(max_size=512)))

    check(path, path.name, ids)


@FUZZ
@given(data=st.data())
@pytest.mark.filterwarnings("ignore:Duplicate name")  # two members of one name: a case, not a mistake
def test_valid_looking_and_broken_npz_archives_are_read_or_refused_within_bounds(demo_catalog, tmp_path, data):
    path = tmp_path / "e.npz"
    path.write_bytes(data.draw(npz_bytes([i.pk for i in demo_catalog])))

    check(path, "e.npz")


@FUZZ
@given(data=st.data())
def test_npy_with_any_header_and_an_id_list_is_read_or_refused_within_bounds(item_keys, tmp_path, data):
    path, ids = tmp_path / "e.npy", tmp_path / "ids.txt"
    path.write_bytes(data.draw(npy_bytes()))
    ids.write_text("\n".join(data.draw(st.lists(st.sampled_from(item_keys), max_size=40))))

    check(path, "e.npy", ids)


@FUZZ
@given(data=st.data())
@example(data=None)  # one that is accepted: every item once, sensible values
def test_csv_of_any_shape_is_read_or_refused_within_bounds(demo_catalog, item_keys, tmp_path, data):
    path = tmp_path / "e.csv"
    if data is None:
        path.write_text("\n".join(f"{i.pk},{i.pk % 7},{i.pk % 3}.5,-1e-3" for i in demo_catalog))
    else:
        path.write_text(data.draw(csv_text(item_keys)), encoding="utf-8", newline="")

    check(path, "e.csv")


_names = itertools.count()


@settings(FUZZ, max_examples=25)
@given(data=st.data())
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_an_upload_the_checks_refuse_stores_nothing(demo_catalog, item_keys, isolated_media, data):
    suffix = data.draw(st.sampled_from([".csv", ".npz"]))
    content = data.draw(csv_text(item_keys)).encode() if suffix == ".csv" else data.draw(npz_bytes(item_keys[:30]))
    before = snapshot(isolated_media)

    try:
        variants_from_embeddings(
            name=f"fuzzed {next(_names)}", metrics=["l2"], upload=SimpleUploadedFile(f"e{suffix}", content or b"x")
        )
    except UploadError:
        assert snapshot(isolated_media) == before


@pytest.fixture(scope="module")
def small_checkpoints() -> list[bytes]:
    """Real torch.save files: a plain state dict, and a fine-tuned checkpoint's metadata around small tensors."""
    plain, finetuned = io.BytesIO(), io.BytesIO()
    torch.save({"fc.weight": torch.zeros(4, 4), "fc.bias": torch.zeros(4)}, plain)
    torch.save(
        {
            "format": "vsearch-finetuned-1",
            "backbone": "resnet18",
            "hidden_dim": 4,
            "classes": ["a", "b"],
            "input_size": 32,
            "state_dict": {"hidden.weight": torch.zeros(4, 512), "head.weight": torch.zeros(2, 4)},
        },
        finetuned,
    )
    return [plain.getvalue(), finetuned.getvalue()]


@settings(FUZZ, max_examples=40)
@given(data=st.data(), architecture=st.sampled_from(["resnet18", "finetuned"]))
def test_damaged_checkpoints_are_refused_with_an_upload_error(small_checkpoints, tmp_path, data, architecture):
    content = bytearray(data.draw(st.sampled_from(small_checkpoints)))
    for _ in range(data.draw(st.integers(0, 4))):
        content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    content = content[: data.draw(st.integers(0, len(content)))]
    path = tmp_path / "w.pt"
    path.write_bytes(bytes(content))

    layer = "hidden" if architecture == "finetuned" else "penultimate"
    with pytest.raises(UploadError):
        check_weights(path, filename="w.pt", architecture=architecture, layer=layer)
