"""The map of a feature space: feature vectors in, one 2-D point per item out. No database here.

Rows are scaled to unit length (the direction of a feature vector, as cosine compares them: a CNN's magnitudes
follow image contrast more than content), reduced to at most 50 dimensions by PCA (scikit-learn), then laid out
by openTSNE (FFT-accelerated t-SNE): nearby points are items the features find alike. Coordinates come back
scaled into [0, 1] on both axes, aspect kept, so a page can draw them without knowing t-SNE's units.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PCA_DIMENSIONS = 50  # t-SNE's usual input size: denoises, and its neighbour search is fast below ~100 dims
PERPLEXITY = 30.0  # openTSNE's default; smaller catalogs get (n - 1) / 3, the most a perplexity can be
SMALL = 5  # below this many items t-SNE has no neighbourhoods to keep: PCA's first two axes are the map


def layout_2d(
    vectors: np.ndarray,
    *,
    seed: int = 0,
    n_jobs: int = 1,
    heartbeat: Callable[[float], None] | None = None,
) -> np.ndarray:
    """(n, 2) float32 coordinates in [0, 1] for n feature rows; the same for the same rows and seed.

    `heartbeat(fraction)` is called now and then during the optimisation (a build step's sign of life).
    """
    from sklearn.decomposition import PCA

    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"expected a non-empty 2-D array of feature rows, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("feature rows contain NaN or Inf")
    n = len(x)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    components = min(PCA_DIMENSIONS, n, x.shape[1])
    if np.ptp(x, axis=0).max() == 0:
        return np.full((n, 2), 0.5, dtype=np.float32)  # one point, or copies of one: nothing to spread
    if n < SMALL:
        xy = _pca_axes(x, seed)
    else:
        # Randomized SVD: 10k x 4096 in about a second where the full one took a minute.
        reduced = PCA(n_components=components, svd_solver="randomized", random_state=seed).fit_transform(x)
        xy = _tsne(reduced.astype(np.float64), seed=seed, n_jobs=n_jobs, heartbeat=heartbeat)
    return _unit_square(xy)


def _pca_axes(x: np.ndarray, seed: int) -> np.ndarray:
    """The first two principal axes (zeros where the data have fewer)."""
    from sklearn.decomposition import PCA

    out = np.zeros((len(x), 2))
    components = min(2, len(x) - 1, x.shape[1])
    if components > 0 and np.ptp(x, axis=0).max() > 0:
        out[:, :components] = PCA(n_components=components, svd_solver="full", random_state=seed).fit_transform(x)
    return out


def _tsne(x: np.ndarray, *, seed: int, n_jobs: int, heartbeat) -> np.ndarray:
    from openTSNE import TSNE

    callbacks = None
    every = 50
    if heartbeat is not None:
        total = 250 + 500  # openTSNE's early exaggeration and main phases
        done = [0]

        def callback(iteration, error, embedding):
            done[0] += every
            heartbeat(min(1.0, done[0] / total))
            return False  # never stop early

        callbacks = [callback]
    perplexity = min(PERPLEXITY, (len(x) - 1) / 3)
    embedding = TSNE(
        n_components=2,
        perplexity=perplexity,
        random_state=seed,
        n_jobs=n_jobs,
        callbacks=callbacks,
        callbacks_every_iters=every,
        verbose=False,
    ).fit(x)
    return np.asarray(embedding, dtype=np.float64)


def _unit_square(xy: np.ndarray) -> np.ndarray:
    """Shift and scale (one factor for both axes) into [0, 1]; a single point or all-equal points sit at 0.5."""
    low = xy.min(axis=0)
    span = float((xy.max(axis=0) - low).max())
    if span <= 0:
        return np.full(xy.shape, 0.5, dtype=np.float32)
    out = (xy - low) / span
    out += (1.0 - out.max(axis=0)) / 2  # centre the shorter axis
    return out.astype(np.float32)
