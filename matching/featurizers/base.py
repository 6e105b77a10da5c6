"""What every featurizer is: a name, its layers and their sizes, and `embed(images)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image


class FeaturizerError(Exception):
    """A featurizer cannot be built or run; the message says what to do about it."""


class WeightsError(FeaturizerError):
    """Weights are missing, unloadable, or do not fit the architecture."""


class Featurizer(Protocol):
    key: str
    layers: tuple[str, ...]

    def dims(self) -> dict[str, int]: ...

    def embed(self, images: list[Image.Image]) -> dict[str, np.ndarray]:
        """Float32 arrays of shape (len(images), dim), one per layer."""


@dataclass(frozen=True)
class FeaturizerSpec:
    """A registry entry: how to build a featurizer for a weights source."""

    key: str
    description: str
    layers: tuple[str, ...]
    uses_weights: bool
    build: object  # Callable[[str], Featurizer]: weights source -> featurizer
