"""The featurizer registry: a variant names a key, a layer and a weights source; `get` builds it once per process.

Each featurizer module registers its own entry (base.register); importing this package imports them all.
"""

from __future__ import annotations

import functools
from pathlib import Path

from matching.featurizers import finetuned, histogram, torch_models  # noqa: F401  (each registers itself)
from matching.featurizers.base import (
    IMAGENET,
    REGISTRY,
    SENTINELS,
    UNTRAINED,
    Featurizer,
    FeaturizerError,
    FeaturizerSpec,
    Layer,
    WeightsError,
    spec_for,
)


def resolve_weights(weights: str) -> str:
    """'none', 'imagenet', or a file path; relative paths are in the private build storage."""
    if weights in SENTINELS:
        return weights
    from matching.storage import private_path

    path = Path(weights)
    return str(path if path.is_absolute() else private_path(weights))


def get(key: str, weights: str) -> Featurizer:
    """The featurizer for a weights source, built once per process (rebuilt if the weights file changes)."""
    spec = spec_for(key)
    weights = resolve_weights(weights)
    path = Path(weights)
    stamp = path.stat().st_mtime_ns if weights not in SENTINELS and path.exists() else 0
    return _build(spec.key, weights, stamp)


@functools.lru_cache(maxsize=4)
def _build(key: str, weights: str, stamp: int) -> Featurizer:
    return REGISTRY[key].featurizer(weights)


__all__ = [
    "IMAGENET",
    "REGISTRY",
    "SENTINELS",
    "UNTRAINED",
    "Featurizer",
    "FeaturizerError",
    "FeaturizerSpec",
    "Layer",
    "WeightsError",
    "get",
    "resolve_weights",
    "spec_for",
]
