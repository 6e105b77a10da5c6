"""Offline metrics of a variant's pairs: category precision and Annoy's recall against exact search."""

from __future__ import annotations

import numpy as np


def precision_at(query_categories: np.ndarray, match_categories: np.ndarray) -> tuple[float, float]:
    """(P@1, P@k) for a (queries,) array and a (queries, k) array of categories; -1 marks no match."""
    if len(query_categories) == 0:
        return 0.0, 0.0
    hits = match_categories == query_categories[:, None]
    valid = match_categories != -1
    p1 = float(hits[:, 0].mean())
    pk = float(hits.sum() / max(1, valid.sum()))
    return p1, pk


def recall_with_ties(found_distances: np.ndarray, kth_exact_distance: np.ndarray, k: int) -> float:
    """Share of found neighbours at least as close as the exact k-th neighbour (ann-benchmarks' rule).

    Counting by distance, not identity, is fair where many items tie (Hamming distances do).
    """
    if len(found_distances) == 0:
        return 0.0
    # Relative slack for float noise between Annoy's float32 arithmetic and numpy's.
    ok = found_distances <= kth_exact_distance[:, None] * (1 + 1e-3) + 1e-4
    return float(ok.sum() / (len(found_distances) * k))
