"""What every featurizer is, and the one registry that describes each of them once.

A registry entry says everything the rest of the code needs to know about a featurizer: its layers and
their sizes, which weights sources it takes (the sentinels `none` and `imagenet`, files), its default
weights file, and how to build it. Uploads, the build, training and the bench read it; nothing else
lists layers or dimensions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

# Weights sources that are not files: a fixed random init ("untrained") and torchvision's ImageNet weights.
UNTRAINED = "none"
IMAGENET = "imagenet"
SENTINELS = (UNTRAINED, IMAGENET)


class FeaturizerError(Exception):
    """A featurizer cannot be built or run; the message says what to do about it."""


class WeightsError(FeaturizerError):
    """Weights are missing, unloadable, or do not fit the architecture."""


class Featurizer(Protocol):
    key: str
    layers: tuple[str, ...]
    transform: Callable[[Image.Image], object]

    def dims(self) -> dict[str, int]: ...

    def embed_batch(self, batch) -> dict[str, np.ndarray]: ...

    def embed(self, images: list[Image.Image]) -> dict[str, np.ndarray]:
        """Float32 arrays of shape (len(images), dim), one per layer."""


@dataclass(frozen=True)
class Layer:
    name: str
    node: str = ""  # graph node tapped in a torch network ("" where there is no graph)
    dim: int | None = None  # None: read from the weights file (the fine-tuned network's own width)


@dataclass(frozen=True)
class FeaturizerSpec:
    """A registry entry: a featurizer described once, as torchvision's Weights enums describe a model."""

    key: str
    description: str
    layers: tuple[Layer, ...]
    build: Callable[[FeaturizerSpec, str], Featurizer]  # (this spec, weights source) -> featurizer
    sentinels: tuple[str, ...] = (UNTRAINED,)  # the non-file weights sources it takes
    accepts_files: bool = False  # a weights file: an upload, or what train_featurizer writes
    default_weights: str = UNTRAINED  # a sentinel, or a file under the private storage

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    @property
    def uses_weights(self) -> bool:
        """Whether the weights source changes the features (a histogram ignores it)."""
        return self.accepts_files or IMAGENET in self.sentinels

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise FeaturizerError(f"{self.key} has no layer {name!r}; choose one of {', '.join(self.layer_names)}.")

    def featurizer(self, weights: str) -> Featurizer:
        """Build it for a weights source (no caching: see featurizers.get). A featurizer that uses no weights
        ignores whatever was named; the build refuses a source it cannot take, with a message to act on."""
        return self.build(self, weights if self.uses_weights else UNTRAINED)


REGISTRY: dict[str, FeaturizerSpec] = {}


def register(spec: FeaturizerSpec) -> FeaturizerSpec:
    if spec.key in REGISTRY:
        raise ValueError(f"featurizer {spec.key!r} is registered twice")
    REGISTRY[spec.key] = spec
    return spec


def spec_for(key: str, layer: str | None = None) -> FeaturizerSpec:
    spec = REGISTRY.get(key)
    if spec is None:
        raise FeaturizerError(f"Unknown featurizer {key!r}; known: {', '.join(REGISTRY)}.")
    if layer is not None:
        spec.layer(layer)
    return spec
