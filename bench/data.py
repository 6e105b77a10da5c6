"""Inputs the benchmarks share, made once and cached under /tmp: demo-catalog PNGs and their features."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bench.common import CACHE_DIR


def demo_png_dir(n: int, *, seed: int = 0, size: int = 128) -> list[Path]:
    """Paths of n demo-catalog images written as PNG (the demo's own size), reusing earlier runs' files."""
    from matching.demo_catalog import generate

    folder = CACHE_DIR / f"demo-png-s{seed}-{size}px"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:06d}.png" for i in range(n)]
    missing = [i for i, p in enumerate(paths) if not p.exists()]
    if missing:
        # Items are prefixes of one sequence: render up to the last missing one, save only the missing.
        wanted = set(missing)
        for i, item in enumerate(generate(max(missing) + 1, seed, size)):
            if i in wanted:
                tmp = paths[i].with_suffix(f".{os.getpid()}.tmp")
                item.image.save(tmp, format="PNG")
                os.replace(tmp, paths[i])
    return paths


def demo_features(key: str, layer: str, n: int, *, weights: str = "none", batch_size: int = 32) -> np.ndarray:
    """(n, dim) float32 features of the first n demo images, computed once per (key, layer, weights, n)."""
    path = CACHE_DIR / f"features-{key}-{layer}-{weights}-{n}.npy"
    if path.exists():
        return np.load(path)
    from PIL import Image

    from matching import featurizers

    featurizer = featurizers.get(key, weights)
    paths = demo_png_dir(n)
    out = []
    for start in range(0, n, batch_size):
        images = []
        for p in paths[start : start + batch_size]:
            with Image.open(p) as image:
                images.append(image.convert("RGB"))
        out.append(featurizer.embed(images)[layer])
    values = np.concatenate(out).astype(np.float32)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, values)
    os.replace(tmp, path)
    return values
