"""Checking staff uploads before anything is stored: model weights and precomputed embeddings.

Everything here reads an uploaded file (a path to a temporary copy) and either returns what will be
stored or raises UploadError with a message for a person. Nothing touches MEDIA_ROOT or the database.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matching.featurizers import REGISTRY, FeaturizerError, WeightsError
from matching.models import Item
from vsearch_site.errors import InvalidInput

WEIGHT_SUFFIXES = {".pt", ".pth", ".safetensors"}
EMBEDDING_SUFFIXES = {".npy", ".npz", ".csv"}
MAX_DIM = 16384


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


def read_embeddings(path: Path, *, filename: str, ids_path: Path | None = None, ids_filename: str = "") -> Embeddings:
    """Parse .npy (+ an item-id list), .npz (ids or hashes + vectors) or CSV keyed by item id or image hash."""
    suffix = Path(filename).suffix.lower()
    if suffix not in EMBEDDING_SUFFIXES:
        raise UploadError(f"{filename}: embeddings must be .npy (with an id list), .npz or .csv.")
    if suffix == ".npy":
        if ids_path is None:
            raise UploadError(
                f"{filename}: a .npy file needs an item-id list beside it (one item id or image hash per line)."
            )
        vectors = _load_npy(path, filename)
        keys = _read_id_list(ids_path, ids_filename or "id list")
    elif suffix == ".npz":
        keys, vectors = _load_npz(path, filename)
    else:
        keys, vectors = _load_csv(path, filename)
    return _resolve(keys, vectors, filename)


def _load_npy(path: Path, filename: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise UploadError(f"{filename} is not a plain numeric .npy array ({exc}).") from None
    except Exception as exc:
        raise UploadError(f"{filename} is not a readable .npy file ({exc.__class__.__name__}).") from None


def _load_npz(path: Path, filename: str) -> tuple[list[str], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            vector_key = next((k for k in ("embeddings", "vectors", "features") if k in names), None)
            key_key = next((k for k in ("item_ids", "ids", "sha256", "hashes") if k in names), None)
            if vector_key is None or key_key is None:
                raise UploadError(
                    f"{filename} must hold 'embeddings' (or 'vectors') and 'item_ids' (or 'sha256'); "
                    f"it has {', '.join(sorted(names))}."
                )
            return [str(k) for k in archive[key_key].tolist()], archive[vector_key]
    except UploadError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UploadError(f"{filename} is not a readable .npz archive ({exc}).") from None


def _load_csv(path: Path, filename: str) -> tuple[list[str], np.ndarray]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError(f"{filename} is not a UTF-8 text CSV.") from None
    reader = csv.reader(io.StringIO(text))
    rows = [r for r in reader if r]
    if rows and not _is_number(rows[0][1] if len(rows[0]) > 1 else ""):
        rows = rows[1:]  # a header row
    if not rows:
        raise UploadError(f"{filename} has no rows.")
    width = len(rows[0])
    keys, values = [], []
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise UploadError(
                f"{filename}: row {number} has {len(row) - 1} values, the first row {width - 1} (wrong dimension)."
            )
        keys.append(row[0].strip())
        try:
            values.append([float(v) for v in row[1:]])
        except ValueError:
            raise UploadError(f"{filename}: row {number} has a value that is not a number.") from None
    return keys, np.array(values, dtype=np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_id_list(path: Path, filename: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError(f"{filename} is not a UTF-8 text file of item ids.") from None
    return [line.strip().split(",")[0] for line in text.splitlines() if line.strip()]


def _resolve(keys: list[str], vectors: np.ndarray, filename: str) -> Embeddings:
    if not isinstance(vectors, np.ndarray) or vectors.dtype.kind not in "fiu":
        raise UploadError(f"{filename}: embeddings must be numbers.")
    if vectors.ndim != 2:
        raise UploadError(f"{filename}: embeddings must be a 2-D array (rows x dimension), not {vectors.ndim}-D.")
    rows, dim = vectors.shape
    if not 1 <= dim <= MAX_DIM:
        raise UploadError(f"{filename}: dimension {dim} is outside 1..{MAX_DIM}.")
    if rows != len(keys):
        raise UploadError(f"{filename}: {rows} embedding rows but {len(keys)} item ids (wrong row count).")
    if rows < 2:
        raise UploadError(f"{filename}: at least two items are needed to find matches.")
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise UploadError(
            f"{filename}: {int(bad.sum())} rows contain NaN or Inf (first: row {int(np.argmax(bad)) + 1})."
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
        raise UploadError(
            f"{filename}: {len(unknown)} ids are not in the catalog (e.g. {', '.join(unknown[:3])}); "
            "use item ids or the images' SHA-256."
        )
    if len(set(ids)) != len(ids):
        raise UploadError(f"{filename}: some items appear more than once.")
    order = np.argsort(np.array(ids))
    return Embeddings(np.array(ids, dtype=np.int64)[order], vectors.astype(np.float32)[order])
