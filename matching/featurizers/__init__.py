"""The featurizer registry: a variant names a key, a layer and a weights source; `get` builds it once per process."""

from __future__ import annotations

import functools
from pathlib import Path

from matching.featurizers.base import Featurizer, FeaturizerError, FeaturizerSpec, WeightsError
from matching.featurizers.finetuned import finetuned_featurizer
from matching.featurizers.histogram import ColourHistogram
from matching.featurizers.torch_models import torchvision_featurizer

REGISTRY: dict[str, FeaturizerSpec] = {
    spec.key: spec
    for spec in [
        FeaturizerSpec(
            "vgg16", "VGG16, fully connected layers", ("fc6", "fc7"), True, lambda w: torchvision_featurizer("vgg16", w)
        ),
        FeaturizerSpec(
            "resnet18",
            "ResNet-18, penultimate layer",
            ("penultimate",),
            True,
            lambda w: torchvision_featurizer("resnet18", w),
        ),
        FeaturizerSpec(
            "resnet50",
            "ResNet-50, penultimate layer",
            ("penultimate",),
            True,
            lambda w: torchvision_featurizer("resnet50", w),
        ),
        FeaturizerSpec(
            "finetuned", "ResNet fine-tuned on the catalog's categories", ("hidden",), True, finetuned_featurizer
        ),
        FeaturizerSpec(
            "colour-histogram", "HSV colour histogram (no network)", ("hsv",), False, lambda w: ColourHistogram()
        ),
    ]
}


def spec_for(key: str, layer: str) -> FeaturizerSpec:
    spec = REGISTRY.get(key)
    if spec is None:
        raise FeaturizerError(f"Unknown featurizer {key!r}; known: {', '.join(REGISTRY)}.")
    if layer not in spec.layers:
        raise FeaturizerError(f"{key} has no layer {layer!r}; choose one of {', '.join(spec.layers)}.")
    return spec


def resolve_weights(weights: str) -> str:
    """'none', 'imagenet', or a file path; relative paths are under MEDIA_ROOT."""
    if weights in {"none", "imagenet"}:
        return weights
    from django.conf import settings

    path = Path(weights)
    return str(path if path.is_absolute() else Path(settings.MEDIA_ROOT) / path)


def get(key: str, weights: str) -> Featurizer:
    """The featurizer for a weights source, built once per process (rebuilt if the weights file changes)."""
    weights = resolve_weights(weights)
    path = Path(weights)
    stamp = path.stat().st_mtime_ns if weights not in {"none", "imagenet"} and path.exists() else 0
    return _build(key, weights, stamp)


@functools.lru_cache(maxsize=4)
def _build(key: str, weights: str, stamp: int) -> Featurizer:
    spec = REGISTRY.get(key)
    if spec is None:
        raise FeaturizerError(f"Unknown featurizer {key!r}; known: {', '.join(REGISTRY)}.")
    return spec.build(weights if spec.uses_weights else "none")


__all__ = ["REGISTRY", "Featurizer", "FeaturizerError", "WeightsError", "get", "spec_for"]
