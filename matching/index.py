"""Nearest-neighbour search: Annoy indexes on disk (memory-mapped, cached per process) and exact search in torch.

No database here: vectors in, neighbour positions out.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from annoy import AnnoyIndex
from django.conf import settings

ANNOY_METRIC = {"l1": "manhattan", "l2": "euclidean", "hamming": "hamming", "cosine": "angular"}


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Hamming compares sign bits: binarize explicitly to 0/1 (Annoy would round anything above 0.5 to 1)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if metric == "hamming":
        return (vectors > 0).astype(np.float32)
    return vectors


def build(vectors: np.ndarray, metric: str, *, n_trees: int, seed: int, path: Path) -> None:
    """Build an Annoy index of prepared vectors into `path` via a temporary file and a rename.

    Never overwrite a file another process may have memory-mapped: the rename leaves its inode alone.
    """
    n, dim = vectors.shape
    index = AnnoyIndex(dim, ANNOY_METRIC[metric])
    index.set_seed(seed)
    for i in range(n):
        index.add_item(i, vectors[i])
    index.build(n_trees, n_jobs=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    index.save(str(tmp))
    index.unload()
    meta_tmp = tmp.with_suffix(".json.tmp")
    meta_tmp.write_text(json.dumps({"metric": metric, "dim": dim, "n": n, "n_trees": n_trees}))
    os.replace(meta_tmp, meta_path(path))
    os.replace(tmp, path)


def meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


@functools.lru_cache(maxsize=32)
def _load(path: str, stamp: int) -> AnnoyIndex:
    meta = json.loads(meta_path(Path(path)).read_text())
    index = AnnoyIndex(meta["dim"], ANNOY_METRIC[meta["metric"]])
    index.load(path)  # mmap: cheap, and shared between processes by the page cache
    return index


def load(path: Path) -> AnnoyIndex:
    """The index at `path`, loaded once per process per file version."""
    return _load(str(path), path.stat().st_ino)


def annoy_neighbours(index: AnnoyIndex, position: int, count: int, search_k: int) -> tuple[list[int], list[float]]:
    return index.get_nns_by_item(position, count, search_k=search_k, include_distances=True)


class _Exact:
    """Brute force against a fixed set of vectors, in torch. The per-vector terms (squared norms, unit
    vectors, bit counts) are computed once, not per chunk of queries. torch's matrix multiply was 1.3-2.5x
    faster than numpy's here, and torch.cdist is the only fast L1 (docs/BENCHMARKS.md, index)."""

    def __init__(self, vectors: np.ndarray, metric: str):
        if metric not in ANNOY_METRIC:
            raise ValueError(f"unknown metric {metric!r}")
        self.metric = metric
        self.v = _tensor(vectors)
        if metric == "l2":
            self.vsq = (self.v * self.v).sum(1)
        elif metric == "cosine":
            self.v = self.v / self.v.norm(dim=1, keepdim=True).clamp(min=1e-12)
        elif metric == "hamming":
            self.bits = self.v.sum(1)

    def distances(self, q: torch.Tensor) -> torch.Tensor:
        """The same distances Annoy reports (cosine as Annoy's sqrt(2 - 2 cos))."""
        with torch.inference_mode():
            if self.metric == "l2":
                d2 = (q * q).sum(1)[:, None] + self.vsq[None, :] - 2.0 * (q @ self.v.T)
                return d2.clamp_(min=0.0).sqrt_()
            if self.metric == "cosine":
                qn = q / q.norm(dim=1, keepdim=True).clamp(min=1e-12)
                return (2.0 - 2.0 * (qn @ self.v.T)).clamp_(min=0.0).sqrt_()
            if self.metric == "hamming":
                # On 0/1 vectors: differing bits = |q| + |v| - 2 q·v.
                return q.sum(1)[:, None] + self.bits[None, :] - 2.0 * (q @ self.v.T)
            return torch.cdist(q, self.v, p=1)


def exact_distances(queries: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    """Distances from each query to each vector by brute force, as Annoy reports them."""
    return _Exact(vectors, metric).distances(_tensor(queries)).numpy()


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A read-only view for torch without a copy (features are memory-mapped read-only; nothing here writes)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def exact_limit(metric: str) -> int:
    """Up to how many items a variant's pairs come from exact search rather than from Annoy.

    Matrix-multiply metrics (l2, cosine, hamming): exact beat Annoy at recall@10 >= 0.95 up to 10k items;
    at 100k (512-d) Annoy won for l2 and lost for cosine and hamming, so the default switches at 50k. L1 has
    no matrix-multiply form: exact costs a few seconds at 5k items and grows with the square
    (docs/BENCHMARKS.md, index).
    """
    if metric == "l1":
        return settings.VSEARCH_EXACT_MAX_ITEMS_L1
    return settings.VSEARCH_EXACT_MAX_ITEMS


def exact_neighbours(
    vectors: np.ndarray, metric: str, positions: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Top-k positions for each query position, never itself nor a position in the same `exclude` group.

    Rows with fewer than k allowed neighbours end in -1.
    """
    return exact_search(vectors, metric, positions, k, exclude)[0]


def exact_search(
    vectors: np.ndarray, metric: str, positions: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(top-k positions, their distances) by brute force; -1 and inf where fewer than k are allowed."""
    return ExactSearch(vectors, metric, exclude).search(positions, k)


class ExactSearch:
    """Brute-force top-k over one catalog, prepared once (norms, copy groups) and queried chunk after chunk:
    never the query itself nor a position in its `exclude` group."""

    def __init__(self, vectors: np.ndarray, metric: str, exclude: np.ndarray | None = None):
        self.exact = _Exact(vectors, metric)
        groups = torch.from_numpy(np.asarray(exclude, dtype=np.int64)) if exclude is not None else None
        # No byte-identical copies: excluding the query itself is enough.
        self.groups = groups if groups is not None and len(torch.unique(groups)) < len(groups) else None

    def search(self, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        positions = np.asarray(positions, dtype=np.int64)
        kk = max(0, min(k, len(self.exact.v) - 1))
        result = np.full((len(positions), k), -1, dtype=np.int64)
        distances = np.full((len(positions), k), np.inf, dtype=np.float32)
        for start in range(0, len(positions), 256):
            chunk = torch.from_numpy(positions[start : start + 256])
            with torch.inference_mode():
                d = self.exact.distances(self.exact.v[chunk])
                d[torch.arange(len(chunk)), chunk] = float("inf")
                if self.groups is not None:
                    d.masked_fill_(self.groups[chunk][:, None] == self.groups[None, :], float("inf"))
                values, top = torch.topk(d, kk, dim=1, largest=False, sorted=True)
            top, values = top.numpy(), values.numpy()
            # Fewer than k allowed neighbours (small catalog, many copies): excluded ones must not fill the gap.
            top[np.isinf(values)] = -1
            result[start : start + len(chunk), :kk] = top
            distances[start : start + len(chunk), :kk] = values
        distances[result < 0] = np.inf
        return result, distances
