"""The classical baseline: a joint HSV colour histogram, no network."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from matching.featurizers.base import FeaturizerSpec, Layer, register

# 8 hues x 4 saturations x 4 values: coarse enough that small shading changes stay in one bin.
BINS = (8, 4, 4)
N_BINS = int(np.prod(BINS))


class ColourHistogram:
    key = "colour-histogram"
    layers = ("hsv",)

    def dims(self) -> dict[str, int]:
        return {"hsv": N_BINS}

    @staticmethod
    def transform(image: Image.Image) -> torch.Tensor:
        """Each pixel's bin number, on a 64x64 thumbnail (the histogram does not need more)."""
        hsv = np.asarray(image.convert("RGB").resize((64, 64)).convert("HSV"), dtype=np.int64)
        h = hsv[..., 0] * BINS[0] // 256
        s = hsv[..., 1] * BINS[1] // 256
        v = hsv[..., 2] * BINS[2] // 256
        return torch.from_numpy(((h * BINS[1] + s) * BINS[2] + v).ravel())

    def embed_batch(self, batch: torch.Tensor) -> dict[str, np.ndarray]:
        counts = torch.zeros((batch.shape[0], N_BINS), dtype=torch.float32)
        counts.scatter_add_(1, batch, torch.ones_like(batch, dtype=torch.float32))
        # Square root of the normalised histogram (Hellinger), so L2 and cosine compare shapes fairly.
        return {"hsv": torch.sqrt(counts / counts.sum(1, keepdim=True)).numpy()}

    def embed(self, images: list[Image.Image]) -> dict[str, np.ndarray]:
        return self.embed_batch(torch.stack([self.transform(image) for image in images]))


SPEC = register(
    FeaturizerSpec(
        key=ColourHistogram.key,
        description="HSV colour histogram (no network)",
        layers=(Layer("hsv", dim=N_BINS),),
        build=lambda spec, weights: ColourHistogram(),
    )
)
