"""Checking staff uploads before anything is stored: model weights and precomputed embeddings.

Everything here reads an uploaded file (a path to a temporary copy) and either returns what will be
stored or raises UploadError with a message for a person. Nothing touches MEDIA_ROOT; the database is only read.

Memory is bounded by the file, not by what it claims: array headers (.npy, and each member of an .npz with its
declared size) are read and checked against the limits before any data, and a CSV is streamed into a float32
array sized by a first pass, never held as Python lists.
"""

from __future__ import annotations

import csv
import math
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from django.conf import settings

from matching.featurizers import REGISTRY, FeaturizerError, WeightsError
from matching.models import Item
from vsearch_site.errors import InvalidInput

WEIGHT_SUFFIXES = {".pt", ".pth", ".safetensors"}
EMBEDDING_SUFFIXES = {".npy", ".npz", ".csv"}
MAX_DIM = 16384
# A CSV value is at most 25 characters as Python or numpy write it ("-1.234567890123456789e+00"); 32 leaves room for
# spaces. A longer line cannot be a row of at most MAX_DIM values and is refused before it is split.
CSV_LINE_CHARS = (MAX_DIM + 1) * 32
# An id list holds one item id or SHA-256 (64 characters) a line, perhaps with more columns after a comma.
ID_LINE_CHARS = 1024
# An .npz may be compressed, and what it expands to is held in memory, so it may expand to at most this many times
# its own size (above a floor that small catalogs never reach). Measured with np.savez_compressed on 5000 x 512
# arrays: float32 embeddings deflate 1.1x, ReLU outputs 1.9x, float64 1.8-3.2x, 0/1 codes as float32 16x, SHA-256
# id strings 16x; zeros 1000x.
NPZ_MAX_EXPANSION = 32
NPZ_EXPANSION_FLOOR = 64 * 1024 * 1024
# The keys an .npz may use for its two arrays, in order of preference.
VECTOR_KEYS = ("embeddings", "vectors", "features")
ID_KEYS = ("item_ids", "ids", "sha256", "hashes")


class UploadError(InvalidInput):
    """An upload that cannot be accepted; the message says why."""


def check_weights(path: Path, *, filename: str, architecture: str, layer: str) -> None:
    """Load the weights as the featurizer will (weights_only, strict keys and shapes).

    `path` must carry the upload's suffix: the loader picks the format by it.
    """
    suffix = Path(filename).suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise UploadError(f"{filename}: weights must be a .pt/.pth state dict or .safetensors file.")
    spec = REGISTRY.get(architecture)
    if spec is None or not spec.accepts_files:
        choices = ", ".join(k for k, s in REGISTRY.items() if s.accepts_files)
        raise UploadError(f"Unknown architecture {architecture!r}; choose one of {choices}.")
    if layer not in spec.layer_names:
        raise UploadError(f"{architecture} has no layer {layer!r}; choose one of {', '.join(spec.layer_names)}.")
    try:
        spec.featurizer(str(path))
    except (WeightsError, FeaturizerError) as exc:
        raise UploadError(str(exc).replace(path.name, filename)) from None


@dataclass(frozen=True)
class Embeddings:
    item_ids: np.ndarray  # int64, one per row
    vectors: np.ndarray  # float32 (rows, dim)


@dataclass(frozen=True)
class Limits:
    """What one embeddings upload may hold: rows (one per catalog item at most), values a row, bytes of arrays."""

    rows: int
    bytes: int
    dim: int = MAX_DIM

    @classmethod
    def for_catalog(cls) -> Limits:
        return cls(rows=Item.objects.count(), bytes=settings.VSEARCH_MAX_UPLOAD_BYTES)


def read_embeddings(
    path: Path,
    *,
    filename: str,
    ids_path: Path | None = None,
    ids_filename: str = "",
    limits: Limits | None = None,
) -> Embeddings:
    """Parse .npy (+ an item-id list), .npz (ids or hashes + vectors) or CSV keyed by item id or image hash."""
    suffix = Path(filename).suffix.lower()
    if suffix not in EMBEDDING_SUFFIXES:
        raise UploadError(f"{filename}: embeddings must be .npy (with an id list), .npz or .csv.")
    limits = limits or Limits.for_catalog()
    if suffix == ".npy":
        if ids_path is None:
            raise UploadError(
                f"{filename}: a .npy file needs an item-id list beside it (one item id or image hash per line)."
            )
        keys, vectors = _load_npy(path, filename, ids_path, ids_filename or "id list", limits)
    elif suffix == ".npz":
        keys, vectors = _load_npz(path, filename, limits)
    else:
        keys, vectors = _load_csv(path, filename, limits)
    return _resolve(keys, vectors, filename, limits)


# ---------------------------------------------------------------------------------------- .npy and .npz


@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    dtype: np.dtype
    length: int  # bytes of magic and header, before the data

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _read_header(fp: BinaryIO, what: str) -> _Header:
    """The shape and dtype of a .npy stream, from its header alone (numpy.lib.format), before any data is read."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise UploadError(f"{what} is a .npy of format version {version}; save it with numpy.save.")
        length = fp.tell()
    except UploadError:
        raise
    except (ValueError, SyntaxError, TypeError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as exc:
        raise UploadError(f"{what} is not a readable .npy array ({exc}).") from None
    if any(size < 0 for size in shape):
        raise UploadError(f"{what} declares a negative size {shape}.")
    return _Header(shape=tuple(shape), dtype=dtype, length=length)


def _check_vectors_header(header: _Header, what: str, limits: Limits) -> None:
    if header.dtype.kind not in "fiu":
        raise UploadError(f"{what} is not a plain numeric array (dtype {header.dtype}); embeddings must be numbers.")
    if len(header.shape) != 2:
        raise UploadError(f"{what}: embeddings must be a 2-D array (rows x dimension), not {len(header.shape)}-D.")
    rows, dim = header.shape
    if rows > limits.rows:
        raise UploadError(f"{what} declares {rows:,} rows, more than the catalog's {limits.rows:,} items.")
    if not 1 <= dim <= limits.dim:
        raise UploadError(f"{what}: dimension {dim:,} is outside 1..{limits.dim:,}.")
    if header.nbytes > limits.bytes:
        raise UploadError(
            f"{what} declares {header.nbytes:,} bytes of embeddings, over the upload limit of {limits.bytes:,}."
        )


def _check_ids_header(header: _Header, rows: int, what: str) -> None:
    if header.dtype.kind not in "iuUS":
        raise UploadError(f"{what}: item ids must be integers or SHA-256 strings, not {header.dtype}.")
    if len(header.shape) != 1 or header.shape[0] != rows:
        raise UploadError(f"{what}: {rows:,} embedding rows but ids of shape {header.shape} (wrong row count).")
    if header.dtype.kind in "US" and header.dtype.itemsize > 64 * (4 if header.dtype.kind == "U" else 1):
        raise UploadError(f"{what}: ids are strings of up to {header.dtype.itemsize:,} bytes; a SHA-256 has 64.")


def _load_npy(
    path: Path, filename: str, ids_path: Path, ids_filename: str, limits: Limits
) -> tuple[list[str], np.ndarray]:
    with path.open("rb") as fp:
        header = _read_header(fp, filename)
    _check_vectors_header(header, filename, limits)
    if header.length + header.nbytes > path.stat().st_size:
        raise UploadError(f"{filename} is truncated: its header declares more data than the file holds.")
    keys = _read_id_list(ids_path, ids_filename, limits)
    if len(keys) != header.shape[0]:
        raise UploadError(f"{filename}: {header.shape[0]} embedding rows but {len(keys)} item ids (wrong row count).")
    try:
        return keys, np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UploadError(f"{filename} is not a readable .npy array ({exc}).") from None


def _load_npz(path: Path, filename: str, limits: Limits) -> tuple[list[str], np.ndarray]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            vector_key = next((k for k in VECTOR_KEYS if k in members), None)
            key_key = next((k for k in ID_KEYS if k in members), None)
            if vector_key is None or key_key is None:
                raise UploadError(
                    f"{filename} must hold 'embeddings' (or 'vectors') and 'item_ids' (or 'sha256'); "
                    f"it has {', '.join(sorted(members)) or 'nothing'}."
                )
            vector_info, key_info = members[vector_key], members[key_key]
            _check_expansion(filename, vector_info.file_size + key_info.file_size, path.stat().st_size, limits)
            vectors_what, ids_what = f"{filename}: '{vector_key}'", f"{filename}: '{key_key}'"
            with archive.open(vector_info) as fp:
                vectors_header = _read_header(fp, vectors_what)
            _check_vectors_header(vectors_header, vectors_what, limits)
            with archive.open(key_info) as fp:
                ids_header = _read_header(fp, ids_what)
            _check_ids_header(ids_header, vectors_header.shape[0], ids_what)
            for header, info, what in ((vectors_header, vector_info, vectors_what), (ids_header, key_info, ids_what)):
                if header.length + header.nbytes > info.file_size:
                    raise UploadError(f"{what} is truncated: its header declares more data than the member holds.")
            # Only now is any data read: at most the declared sizes just checked, into arrays of those sizes.
            with archive.open(key_info) as fp:
                ids = np.lib.format.read_array(fp, allow_pickle=False)
            with archive.open(vector_info) as fp:
                vectors = np.lib.format.read_array(fp, allow_pickle=False)
    except UploadError:
        raise
    except (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error) as exc:
        raise UploadError(f"{filename} is not a readable .npz archive ({exc}).") from None
    if ids.dtype.kind == "S":
        keys = [k.decode("ascii", "replace") for k in ids.tolist()]
    else:
        keys = [str(k) for k in ids.tolist()]
    return keys, vectors


def _check_expansion(filename: str, declared: int, size: int, limits: Limits) -> None:
    """Refuse an archive whose arrays would expand past the upload limit, or far past the archive's own size."""
    if declared > limits.bytes:
        raise UploadError(
            f"{filename} expands to {declared:,} bytes, over the upload limit of {limits.bytes:,}; nothing was read."
        )
    if declared > max(NPZ_MAX_EXPANSION * size, NPZ_EXPANSION_FLOOR):
        raise UploadError(
            f"{filename} would expand {declared / max(size, 1):,.0f} times its size ({declared:,} bytes); at most "
            f"{NPZ_MAX_EXPANSION}x is accepted. Save it with numpy.savez (uncompressed) or as .npy."
        )


# ---------------------------------------------------------------------------------------- CSV and id lists


def _bounded_lines(fh, filename: str, max_chars: int, hint: str) -> Iterator[str]:
    """The file's lines, refusing one longer than `max_chars` before it is read whole."""
    number = 0
    while True:
        line = fh.readline(max_chars + 1)
        if not line:
            return
        number += 1
        if len(line) > max_chars:
            raise UploadError(f"{filename}: line {number} is longer than {max_chars:,} characters ({hint}).")
        yield line


def _csv_rows(path: Path, filename: str, limits: Limits) -> Iterator[list[str]]:
    """Non-empty CSV rows, one a line, none with more than `limits.dim` values (counted before the line is split)."""
    hint = f"a row holds an id and at most {limits.dim:,} values"
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for line in _bounded_lines(fh, filename, CSV_LINE_CHARS, hint):
                if line.count(",") > limits.dim:
                    raise UploadError(f"{filename}: a row has more than {limits.dim:,} values (dimension too large).")
                for row in csv.reader([line]):
                    if row:
                        yield row
    except UnicodeDecodeError:
        raise UploadError(f"{filename} is not a UTF-8 text CSV.") from None
    except csv.Error as exc:
        raise UploadError(f"{filename} is not a readable CSV ({exc}).") from None


def _load_csv(path: Path, filename: str, limits: Limits) -> tuple[list[str], np.ndarray]:
    # First pass: the shape, refusing a wrong one as soon as it shows. Second: the values, into float32 rows.
    rows, width, header = 0, 0, False
    for number, row in enumerate(_csv_rows(path, filename, limits), start=1):
        if number == 1 and not _is_number(row[1] if len(row) > 1 else ""):
            header = True
            continue
        if rows == 0:
            width = len(row)
            if not 1 <= width - 1 <= limits.dim:
                raise UploadError(f"{filename}: dimension {width - 1:,} is outside 1..{limits.dim:,}.")
        elif len(row) != width:
            raise UploadError(
                f"{filename}: row {rows + 1} has {len(row) - 1} values, the first row {width - 1} (wrong dimension)."
            )
        rows += 1
        if rows > limits.rows:
            raise UploadError(f"{filename} has more rows than the catalog's {limits.rows:,} items.")
    if rows == 0:
        raise UploadError(f"{filename} has no rows.")
    if rows * (width - 1) * 4 > limits.bytes:
        raise UploadError(f"{filename}: {rows:,} x {width - 1:,} values are over the upload limit of {limits.bytes:,}.")
    keys: list[str] = []
    vectors = np.empty((rows, width - 1), dtype=np.float32)
    data = _csv_rows(path, filename, limits)
    if header:
        next(data)
    for number, row in enumerate(data, start=1):
        keys.append(row[0].strip())
        try:
            values = [float(v) for v in row[1:]]
        except ValueError:
            raise UploadError(f"{filename}: row {number} has a value that is not a number.") from None
        with np.errstate(over="ignore"):
            vectors[number - 1] = values  # beyond float32's range becomes inf, refused with NaN and Inf
    return keys, vectors


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_id_list(path: Path, filename: str, limits: Limits) -> list[str]:
    keys = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for line in _bounded_lines(fh, filename, ID_LINE_CHARS, "one item id or image hash a line"):
                if line.strip():
                    keys.append(line.strip().split(",")[0])
                    if len(keys) > limits.rows:
                        raise UploadError(f"{filename} has more ids than the catalog's {limits.rows:,} items.")
    except UnicodeDecodeError:
        raise UploadError(f"{filename} is not a UTF-8 text file of item ids.") from None
    return keys


# ---------------------------------------------------------------------------------------- checks on the values


def _resolve(keys: list[str], vectors: np.ndarray, filename: str, limits: Limits) -> Embeddings:
    if not isinstance(vectors, np.ndarray) or vectors.dtype.kind not in "fiu":
        raise UploadError(f"{filename}: embeddings must be numbers.")
    if vectors.ndim != 2:
        raise UploadError(f"{filename}: embeddings must be a 2-D array (rows x dimension), not {vectors.ndim}-D.")
    rows, dim = vectors.shape
    if not 1 <= dim <= limits.dim:
        raise UploadError(f"{filename}: dimension {dim} is outside 1..{limits.dim}.")
    if rows != len(keys):
        raise UploadError(f"{filename}: {rows} embedding rows but {len(keys)} item ids (wrong row count).")
    if rows < 2:
        raise UploadError(f"{filename}: at least two items are needed to find matches.")
    # Cast first, then check: a float64 of 1e39 is finite but becomes inf as the float32 that is stored.
    with np.errstate(over="ignore", invalid="ignore"):
        vectors = vectors.astype(np.float32, copy=False)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise UploadError(
            f"{filename}: {int(bad.sum())} rows contain NaN or Inf, or values beyond float32's range "
            f"(first: row {int(np.argmax(bad)) + 1})."
        )
    by_id = {str(pk): pk for pk in Item.objects.values_list("id", flat=True)}
    by_hash: dict[str, int] = {}
    if any(len(k) == 64 for k in keys):
        for pk, sha in Item.objects.filter(crop_key="").values_list("id", "sha256"):
            by_hash.setdefault(sha, pk)
    ids, unknown = [], []
    for key in keys:
        pk = by_hash.get(key.lower()) if len(key) == 64 else by_id.get(key)
        if pk is None:
            unknown.append(key)
        ids.append(pk)
    if unknown:
        shown = ", ".join(k[:64] for k in unknown[:3])
        raise UploadError(
            f"{filename}: {len(unknown)} ids are not in the catalog (e.g. {shown}); "
            "use item ids or the images' SHA-256."
        )
    if len(set(ids)) != len(ids):
        raise UploadError(f"{filename}: some items appear more than once.")
    order = np.argsort(np.array(ids))
    return Embeddings(np.array(ids, dtype=np.int64)[order], vectors[order])
