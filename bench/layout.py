"""The map's layout step (matching.layout.layout_2d: unit rows, PCA to 50 dimensions, openTSNE) on synthetic catalogs:
wall time per catalog size and thread count, PCA's share of it, and how many of each item's 10 nearest neighbours
(in the 50-dimensional PCA space t-SNE starts from) are still among its 10 nearest on the 2-D map.

Vectors are a Gaussian mixture with clusters of about 20 (bench.index.synthetic), 512-d like ResNet-18's
penultimate layer. Target: 10k items in at most 60 s on this machine.

    nice -n 10 .venv/bin/python -m bench.layout [--quick] [--sizes 1000,10000] [--dim 512] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import emit, heading, load_average, table
from bench.index import synthetic

KNN = 10
KNN_SAMPLE = 1000  # items whose neighbourhoods are compared


def kept_neighbours(high: np.ndarray, low: np.ndarray, *, seed: int = 0) -> float:
    """Mean share of each sampled item's KNN nearest neighbours in `high` that are among its KNN nearest in `low`."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    sample = rng.choice(len(high), size=min(KNN_SAMPLE, len(high)), replace=False)
    near_high = NearestNeighbors(n_neighbors=KNN + 1).fit(high).kneighbors(high[sample], return_distance=False)
    near_low = NearestNeighbors(n_neighbors=KNN + 1).fit(low).kneighbors(low[sample], return_distance=False)
    kept = [len(set(a[1:]) & set(b[1:])) / KNN for a, b in zip(near_high, near_low, strict=True)]
    return float(np.mean(kept))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 3k items, one thread")
    parser.add_argument("--sizes", help="catalog sizes (default 1000,10000; quick 1000,3000)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threads", help="t-SNE threads to compare (default 1,2; quick 1)")
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or ("1000,3000" if args.quick else "1000,10000")).split(",")]
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]

    from sklearn.decomposition import PCA

    from matching.layout import PCA_DIMENSIONS, layout_2d

    heading(f"Layout: unit rows, PCA to {PCA_DIMENSIONS}, openTSNE ({args.dim}-d synthetic features)")
    rows = []
    for n in sizes:
        vectors = synthetic(n, args.dim, like=None, seed=n)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        t0 = time.perf_counter()
        reduced = PCA(n_components=PCA_DIMENSIONS, svd_solver="randomized", random_state=0).fit_transform(unit)
        pca = time.perf_counter() - t0
        for jobs in threads:
            emit(f"<!-- {n:,} items, {jobs} thread(s), load {load_average()} -->")
            t0 = time.perf_counter()
            xy = layout_2d(vectors, seed=0, n_jobs=jobs)
            total = time.perf_counter() - t0
            rows.append(
                (
                    f"{n:,}",
                    jobs,
                    f"{total:.1f} s",
                    f"{pca:.2f} s",
                    f"{kept_neighbours(reduced, xy):.2f}",
                    "yes" if n < 10_000 or total <= 60 else "**no**",
                )
            )
    emit(
        table(
            ["items", "t-SNE threads", "layout (PCA + t-SNE)", "of which PCA", f"{KNN}-NN kept on the map", "≤ 60 s"],
            rows,
        )
    )
    emit(
        "\nThe build's t-SNE runs on VSEARCH_LAYOUT_THREADS threads (default 1, from this table on a shared "
        "2-core machine). "
        f"{KNN}-NN kept: the share of each item's {KNN} nearest neighbours in the 50-d PCA space that are among "
        f"its {KNN} nearest on the map (mean over {KNN_SAMPLE} items; clusters of 20, so most are cluster-mates)."
    )


if __name__ == "__main__":
    main()
