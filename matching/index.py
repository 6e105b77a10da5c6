"""Nearest-neighbour search behind one interface, in the spirit of ann-benchmarks' `BaseANN`.

A `Searcher` is fitted once to a catalog's feature rows, then queried by an arbitrary vector (`query`,
`batch_query`: search by photo) or by catalog position (`neighbours`: the stored pairs, never the item
itself nor a byte-identical copy of it). Two implementations: exact brute force in torch, and Annoy
(an index file, memory-mapped and loaded once per process). Positions are row numbers of the fitted
vectors; -1 and inf pad a row that has fewer than n allowed neighbours.

No database here: vectors in, positions and distances out. Each searcher prepares vectors for its
metric itself (Hamming compares sign bits), so callers pass raw features.
"""

from __future__ import annotations

import abc
import functools
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from annoy import AnnoyIndex
from django.conf import settings

from matching.storage import atomic_file

ANNOY_METRIC = {"l1": "manhattan", "l2": "euclidean", "hamming": "hamming", "cosine": "angular"}
QUERY_CHUNK = 256  # queries per brute-force matrix: 256 x 50k float32 distances is 51 MB


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Hamming compares sign bits: binarize explicitly to 0/1 (Annoy would round anything above 0.5 to 1)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if metric == "hamming":
        return (vectors > 0).astype(np.float32)
    return vectors


def _check_metric(metric: str) -> None:
    if metric not in ANNOY_METRIC:
        raise ValueError(f"unknown metric {metric!r}")


def _padded(rows: list[tuple[list[int], list[float]]], n: int) -> tuple[np.ndarray, np.ndarray]:
    top = np.full((len(rows), n), -1, dtype=np.int64)
    dist = np.full((len(rows), n), np.inf, dtype=np.float32)
    for r, (positions, distances) in enumerate(rows):
        top[r, : len(positions)] = positions[:n]
        dist[r, : len(distances)] = distances[:n]
    return top, dist


class Searcher(abc.ABC):
    """fit(vectors) once; then query(vector, n), batch_query(vectors, n), neighbours(positions, n)."""

    metric: str
    groups: np.ndarray | None = None  # per position: byte-identical images share a group number

    def query(self, vector: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The n nearest fitted rows to one vector: (positions, distances), best first."""
        top, dist = self.batch_query(np.asarray(vector, dtype=np.float32)[None, :], n)
        return top[0], dist[0]

    @abc.abstractmethod
    def fit(self, vectors: np.ndarray, *, groups: np.ndarray | None = None) -> Searcher: ...

    @abc.abstractmethod
    def batch_query(self, vectors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The n nearest fitted rows to each of several vectors."""

    @abc.abstractmethod
    def neighbours(self, positions: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The n nearest rows to fitted rows, never the row itself nor a row of its group."""


class _Distances:
    """Brute-force distances to a fixed set of prepared vectors, in torch. The per-vector terms (squared norms,
    unit vectors, bit counts) are computed once, not per chunk of queries. torch's matrix multiply was
    1.3-2.5x faster than numpy's here, and torch.cdist is the only fast L1 (docs/BENCHMARKS.md, index)."""

    def __init__(self, vectors: np.ndarray, metric: str):
        _check_metric(metric)
        self.metric = metric
        self.v = _tensor(vectors)
        if metric == "l2":
            self.vsq = (self.v * self.v).sum(1)
        elif metric == "cosine":
            self.v = self.v / self.v.norm(dim=1, keepdim=True).clamp(min=1e-12)
        elif metric == "hamming":
            self.bits = self.v.sum(1)

    def to(self, q: torch.Tensor) -> torch.Tensor:
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
    """Distances from each prepared query to each prepared vector by brute force, as Annoy reports them."""
    return _Distances(vectors, metric).to(_tensor(queries)).numpy()


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A read-only view for torch without a copy (features are memory-mapped read-only; nothing here writes)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def nearer_than(
    queries: np.ndarray,
    candidates: np.ndarray,
    metric: str,
    bounds: np.ndarray,
    *,
    query_groups: np.ndarray | None = None,
    candidate_groups: np.ndarray | None = None,
) -> np.ndarray:
    """Per query: whether some candidate is nearer than the query's bound (never a candidate of its own group):
    which stored top-k lists a newly added item enters, the k-th stored distance being the bound. Distances as
    Annoy reports them; a candidate closer by less than 1e-5 (relative: float32 rounding of the same distance
    computed in another batch) is a tie, and a tie does not displace a stored neighbour."""
    if not len(queries) or not len(candidates):
        return np.zeros(len(queries), dtype=bool)
    prepared = prepare(queries, metric)
    distances = _Distances(prepare(candidates, metric), metric)
    bounds = np.asarray(bounds, dtype=np.float64)
    limit = torch.from_numpy(bounds - 1e-5 * np.maximum(1.0, np.abs(bounds)))
    out = np.zeros(len(prepared), dtype=bool)
    for start in range(0, len(prepared), QUERY_CHUNK):
        end = min(len(prepared), start + QUERY_CHUNK)
        with torch.inference_mode():
            d = distances.to(_tensor(prepared[start:end]))
            if query_groups is not None and candidate_groups is not None:
                same = (
                    torch.from_numpy(np.asarray(query_groups[start:end], dtype=np.int64))[:, None]
                    == (torch.from_numpy(np.asarray(candidate_groups, dtype=np.int64))[None, :])
                )
                d.masked_fill_(same, float("inf"))
            out[start:end] = (d.min(dim=1).values.double() < limit[start:end]).numpy()
    return out


class ExactSearch(Searcher):
    """Brute-force top-n over one catalog, prepared once (norms, copy groups) and queried chunk after chunk."""

    def __init__(self, metric: str):
        _check_metric(metric)
        self.metric = metric

    def fit(self, vectors: np.ndarray, *, groups: np.ndarray | None = None) -> ExactSearch:
        self.vectors = prepare(vectors, self.metric)
        self.distances = _Distances(self.vectors, self.metric)
        self.groups = None if groups is None else np.asarray(groups, dtype=np.int64)
        # No byte-identical copies: excluding the query itself is enough.
        has_copies = self.groups is not None and len(np.unique(self.groups)) < len(self.groups)
        self._groups = torch.from_numpy(self.groups) if has_copies else None
        return self

    def batch_query(self, vectors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        queries = prepare(vectors, self.metric)
        return self._top(lambda start, end: (_tensor(queries[start:end]), None), len(queries), n)

    def neighbours(self, positions: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        positions = np.asarray(positions, dtype=np.int64)

        def chunk(start: int, end: int):
            rows = torch.from_numpy(positions[start:end])
            return self.distances.v[rows], rows  # cosine: unit rows, which the distance normalises anyway

        return self._top(chunk, len(positions), n)

    def _top(self, chunk_of, count: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        total = len(self.vectors)
        result = np.full((count, n), -1, dtype=np.int64)
        distances = np.full((count, n), np.inf, dtype=np.float32)
        for start in range(0, count, QUERY_CHUNK):
            end = min(count, start + QUERY_CHUNK)
            queries, rows = chunk_of(start, end)
            kk = max(0, min(n, total - (1 if rows is not None else 0)))
            with torch.inference_mode():
                d = self.distances.to(queries)
                if rows is not None:
                    d[torch.arange(len(rows)), rows] = float("inf")
                    if self._groups is not None:
                        d.masked_fill_(self._groups[rows][:, None] == self._groups[None, :], float("inf"))
                values, top = torch.topk(d, kk, dim=1, largest=False, sorted=True)
            top, values = top.numpy(), values.numpy()
            # Fewer than n allowed neighbours (small catalog, many copies): excluded ones must not fill the gap.
            top[np.isinf(values)] = -1
            result[start:end, :kk] = top
            distances[start:end, :kk] = values
        distances[result < 0] = np.inf
        return result, distances


class AnnoySearch(Searcher):
    """An Annoy forest: `n_trees` is fixed when it is built, `search_k` is a query argument (-1: Annoy's
    default of n_trees * n). Saved as `.ann` plus a `.json` of what it was built with."""

    def __init__(self, metric: str, *, n_trees: int = 50, seed: int = 0, search_k: int = -1):
        _check_metric(metric)
        self.metric = metric
        self.n_trees = n_trees
        self.seed = seed
        self.search_k = search_k
        self.annoy: AnnoyIndex | None = None
        self.rows: np.ndarray | None = None  # a view's positions -> index items (None: the same)
        self.position: np.ndarray | None = None  # index item -> a view's position, -1 outside it

    def fit(self, vectors: np.ndarray, *, groups: np.ndarray | None = None) -> AnnoySearch:
        prepared = prepare(vectors, self.metric)
        n, dim = prepared.shape
        annoy = AnnoyIndex(dim, ANNOY_METRIC[self.metric])
        annoy.set_seed(self.seed)
        for i in range(n):
            annoy.add_item(i, prepared[i])
        annoy.build(self.n_trees, n_jobs=1)
        self.annoy = annoy
        self.groups = None if groups is None else np.asarray(groups, dtype=np.int64)
        return self

    def set_query_arguments(self, search_k: int) -> AnnoySearch:
        self.search_k = search_k
        return self

    def with_groups(self, groups: np.ndarray | None) -> AnnoySearch:
        """A view of the same (shared, memory-mapped) forest that knows the catalog's copy groups."""
        return self.view(groups=groups)

    def view(self, *, groups: np.ndarray | None = None, rows: np.ndarray | None = None) -> AnnoySearch:
        """A view of the same (shared, memory-mapped) forest over some of its items: positions are indices into
        `rows` (None: every item), and only those items are ever returned (the rows of deleted catalog items stay in
        an index until it is built again); `groups` per position, as for `neighbours`."""
        view = AnnoySearch(self.metric, n_trees=self.n_trees, seed=self.seed, search_k=self.search_k)
        view.annoy = self.annoy
        view.groups = None if groups is None else np.asarray(groups, dtype=np.int64)
        if rows is not None:
            view.rows = np.asarray(rows, dtype=np.int64)
            view.position = np.full(self.annoy.get_n_items(), -1, dtype=np.int64)
            view.position[view.rows] = np.arange(len(view.rows))
        return view

    def save(self, path: Path) -> None:
        """Write the index and its metadata via temporary files and renames: never overwrite a file another
        process may have memory-mapped (the rename leaves its inode alone)."""
        meta = {"metric": self.metric, "dim": self.annoy.f, "n": self.annoy.get_n_items(), "n_trees": self.n_trees}
        with atomic_file(meta_path(path)) as tmp:
            tmp.write_text(json.dumps(meta))
        with atomic_file(path) as tmp:
            self.annoy.save(str(tmp))
            self.annoy.unload()
        self.annoy = None

    @classmethod
    def load(cls, path: Path, *, search_k: int = -1) -> AnnoySearch:
        """The index at `path`, memory-mapped once per process per file version (cheap, and shared between
        processes by the page cache)."""
        loaded = _load(str(path), Path(path).stat().st_ino)
        searcher = cls(loaded.metric, n_trees=loaded.n_trees, seed=loaded.seed, search_k=search_k)
        searcher.annoy = loaded.annoy
        return searcher

    def batch_query(self, vectors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        queries = prepare(vectors, self.metric)
        rows = []
        for q in queries:

            def search(want: int, q=q):
                return self.annoy.get_nns_by_vector(q, want, search_k=self.search_k, include_distances=True)

            rows.append(self._nearest(search, n, want=n, allowed=lambda p: True))
        return _padded(rows, n)

    def neighbours(self, positions: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return _padded([self._neighbours_of(int(p), n) for p in positions], n)

    def _neighbours_of(self, position: int, n: int) -> tuple[list[int], list[float]]:
        item = position if self.rows is None else int(self.rows[position])

        def allowed(p: int) -> bool:
            return p != position and (self.groups is None or self.groups[p] != self.groups[position])

        return self._nearest(
            lambda want: self.annoy.get_nns_by_item(item, want, search_k=self.search_k, include_distances=True),
            n,
            want=n + 1,
            allowed=allowed,
        )

    def _nearest(self, search, n: int, *, want: int, allowed) -> tuple[list[int], list[float]]:
        """The first n allowed results of `search(want)`, in positions; asks for more while some were not allowed."""
        while True:
            nns, dists = search(want)
            kept = []
            for item, d in zip(nns, dists, strict=True):
                p = item if self.position is None else int(self.position[item])
                if p >= 0 and allowed(p):
                    kept.append((p, d))
            if len(kept) >= n or len(nns) < want:
                kept = kept[:n]
                return [p for p, _ in kept], [d for _, d in kept]
            want *= 2  # byte-identical copies (or deleted items) took places: ask for more


def meta_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


@functools.lru_cache(maxsize=32)
def _load(path: str, stamp: int) -> AnnoySearch:
    meta = json.loads(meta_path(Path(path)).read_text())
    annoy = AnnoyIndex(meta["dim"], ANNOY_METRIC[meta["metric"]])
    annoy.load(path)
    searcher = AnnoySearch(meta["metric"], n_trees=meta.get("n_trees", 0))
    searcher.annoy = annoy
    return searcher


class RandomPairs(Searcher):
    """The random control: `neighbours` are other catalog items drawn at random (never a copy), the same ones on
    every build for a seed and an item id; a query by vector gets random items too. Distances are the ranks."""

    metric = "random"

    def __init__(self, *, seed: int, ids: np.ndarray):
        self.seed = seed
        self.ids = np.asarray(ids, dtype=np.int64)

    def fit(self, vectors: np.ndarray | None = None, *, groups: np.ndarray | None = None) -> RandomPairs:
        self.groups = np.arange(len(self.ids)) if groups is None else np.asarray(groups, dtype=np.int64)
        return self

    def batch_query(self, vectors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, len(vectors)])
        rows = []
        for _ in range(len(vectors)):
            picks = rng.choice(len(self.ids), size=min(n, len(self.ids)), replace=False)
            rows.append((picks.tolist(), [float(rank) for rank in range(len(picks))]))
        return _padded(rows, n)

    def neighbours(self, positions: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        rows = []
        for position in positions:
            rng = np.random.default_rng([self.seed, int(self.ids[position])])
            candidates = np.flatnonzero(self.groups != self.groups[position])
            picks = rng.choice(candidates, size=min(n, len(candidates)), replace=False)
            rows.append((picks.tolist(), [float(rank) for rank in range(len(picks))]))
        return _padded(rows, n)


def exact_limit(metric: str) -> int:
    """Up to how many items a variant's pairs come from exact search rather than from Annoy.

    Matrix-multiply metrics (l2, cosine, hamming): exact beat Annoy at recall@10 >= 0.95 up to 10k items;
    at 100k (512-d) Annoy won for l2 and lost for cosine and hamming, so the default switches at 50k. L1 has
    no matrix-multiply form (torch.cdist): its cost grows with items² x dimension, 182 s at 10k items of
    4096-d where Annoy was 9x faster, so it switches at 5k (docs/BENCHMARKS.md, index).
    """
    if metric == "l1":
        return settings.VSEARCH_EXACT_MAX_ITEMS_L1
    return settings.VSEARCH_EXACT_MAX_ITEMS
