"""Feature files, the hand-off between featurizing and everything after it (indexes, pairs, training, search).

A feature set's files: `<layer>.npy` (float32, one row per item, memory-mapped when read) and `ids.npy`
(the item id of each row) in one folder per featurizer and weights source, in the private build storage.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from matching.featurizers import SENTINELS, resolve_weights
from matching.models import FeatureSet
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


def features_load(feature_set: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, vectors) of a ready feature set, vectors memory-mapped."""
    base = Path(feature_set.path)
    ids = np.load(private_path(str(base.parent / "ids.npy")))
    vectors = np.load(private_path(feature_set.path), mmap_mode="r")
    return ids, vectors


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
