"""Feature files, the hand-off between featurizing and everything after it (indexes, pairs, training, search).

A feature set's files: `<layer>.r<N>.npy` (float32, one row per item, memory-mapped when read) and `ids.r<N>.npy`
(the item id of each row: the items it covers) in one folder per featurizer and weights source, in the private
build storage; revision N is the FeatureSet's `revision` (files from before revisions are named without `.r<N>`).
Rows of items deleted since are still in the files until the next featurizing run drops them: `features_load`
leaves them out.

A variant's items file (`indexes/variant-<id>.items.npy`) lists the catalog items its pairs were computed over:
what the catalog is compared with to tell a stale model.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from matching.featurizers import SENTINELS, resolve_weights
from matching.models import FeatureSet, Item
from matching.storage import atomic_file, media_path, private_path


class ItemImages(Dataset):
    """Catalog images, cropped to their bbox, through a featurizer's transform: rows of (id, image, bbox)."""

    def __init__(self, rows: list[tuple[int, str, list | None]], transform):
        self.rows = rows
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        _, name, bbox = self.rows[i]
        with Image.open(media_path(name)) as image:
            image = image.convert("RGB")
            if bbox:
                image = image.crop(tuple(bbox))
            return self.transform(image)


def feature_dir(feature_set: FeatureSet) -> str:
    """The folder of a feature set's files, relative to the private storage."""
    weights = feature_set.weights
    if weights in SENTINELS:
        slug = weights
    else:
        slug = f"{Path(weights).stem[:40]}-{hashlib.sha1(weights.encode()).hexdigest()[:10]}"
    return f"features/{feature_set.featurizer}/{slug}"


def revision_file(folder: str, name: str, revision: int) -> str:
    """`<folder>/<name>.r<revision>.npy` (a layer's vectors, or `ids`); revision 0 is the unversioned name."""
    return f"{folder}/{name}.npy" if revision == 0 else f"{folder}/{name}.r{revision}.npy"


REVISION_FILE = re.compile(r"^(?P<name>[^.]+)(?:\.r(?P<revision>\d+))?\.npy$")


def ids_path(feature_set: FeatureSet) -> str:
    """The item ids beside a feature set's vectors: `ids` with the vectors' revision."""
    base = Path(feature_set.path)
    found = REVISION_FILE.match(base.name)
    revision = int(found["revision"]) if found and found["revision"] else 0
    return revision_file(str(base.parent), "ids", revision)


def catalog_ids() -> np.ndarray:
    """Every catalog item's id, ascending (gold copies are not in the catalog)."""
    ids = Item.objects.order_by("id").values_list("id", flat=True)
    return np.fromiter(ids.iterator(chunk_size=20_000), dtype=np.int64)


def features_read(feature_set: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, vectors) as the files hold them, every row (some items may have been deleted since); mmapped."""
    ids = np.load(private_path(ids_path(feature_set)))
    vectors = np.load(private_path(feature_set.path), mmap_mode="r")
    return ids, vectors


def features_load(feature_set: FeatureSet, catalog: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, vectors) of the items still in the catalog: the files' rows, memory-mapped, or a copy without the
    rows of items deleted since featurizing (until the next run drops them from the files)."""
    ids, vectors, _ = features_rows(feature_set, catalog)
    return ids, vectors


def features_rows(feature_set: FeatureSet, catalog: np.ndarray | None = None):
    """As `features_load`, plus the file row of each returned row (an index built over every row is read through
    them)."""
    ids, vectors = features_read(feature_set)
    present = np.isin(ids, catalog_ids() if catalog is None else catalog)
    if present.all():
        return ids, vectors, np.arange(len(ids))
    rows = np.flatnonzero(present)
    return ids[rows], np.asarray(vectors[rows]), rows


def array_save(relative: str, array: np.ndarray) -> None:
    """One .npy file in the private storage, written whole or not at all."""
    with atomic_file(private_path(relative)) as tmp, tmp.open("wb") as fh:
        np.save(fh, array)


def features_current(feature_set: FeatureSet) -> bool:
    """The feature file exists and is newer than the weights file it came from (retrained in place: stale)."""
    if not feature_set.path or not private_path(feature_set.path).exists():
        return False
    if feature_set.weights in SENTINELS:
        return True
    weights = Path(resolve_weights(feature_set.weights))
    if not weights.exists():
        return True
    return weights.stat().st_mtime <= private_path(feature_set.path).stat().st_mtime


# ---------------------------------------------------------------------------------------- coverage


def items_path(variant_id: int) -> str:
    """The items a variant's pairs were computed over (written when its pairs are complete)."""
    return f"indexes/variant-{variant_id}.items.npy"


def items_read(variant_id: int) -> np.ndarray | None:
    path = private_path(items_path(variant_id))
    return np.load(path) if path.exists() else None


def fingerprint(ids: np.ndarray) -> tuple[int, int, int]:
    """(count, largest, sum) of a set of item ids. Ids are never reused (AUTOINCREMENT / sequences), so a set that
    gained or lost items almost always differs from the catalog in one of the three: equal fingerprints let a
    reader skip the exact comparison, which costs a read of every catalog id."""
    if len(ids) == 0:
        return (0, 0, 0)
    return (int(len(ids)), int(ids.max()), int(ids.sum(dtype=np.int64)))


@functools.lru_cache(maxsize=256)
def _file_fingerprint(path: str, stamp: tuple[int, int]) -> tuple[int, int, int]:
    return fingerprint(np.load(path))


def file_fingerprint(relative: str) -> tuple[int, int, int] | None:
    """The fingerprint of an ids file, read once per version of the file in each process; None if it is missing."""
    path = private_path(relative)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return _file_fingerprint(str(path), (stat.st_mtime_ns, stat.st_size))
