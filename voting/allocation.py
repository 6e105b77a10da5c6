"""How draws are shared among the models in the rotation: the serving design, as probabilities.

A card is drawn by picking a model with probability share[m], then one of its cards uniformly. Every share is
known when the card is served, so the probability the card had of being drawn (its propensity) is known too:
the sum over the models that produced it of share[m] / cards[m]. The leaderboard can then weight each vote.

Balancing is gentle and driven only by live internal counts, never by a public number: each share stays
within [low, high] times the uniform share (0.5-2 by default), so a model behind on votes catches up over
hours instead of taking every card, and knowing which model is behind says little about the next card.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Pseudo-votes added to every count: with few votes the deficit ratios stay near 1, so early noise does not
# swing the shares.
SMOOTHING = 20.0


def bounded_shares(raw: Sequence[float], *, low: float, high: float) -> np.ndarray:
    """Shares proportional to `raw`, each clipped to [low, high] x the uniform share, summing to 1.

    The projection is share = clip(scale * raw, low/M, high/M) with the scale found by bisection (water-filling),
    so the order of `raw` is kept and the bounds hold exactly.
    """
    raw = np.maximum(np.asarray(raw, dtype=np.float64), 1e-12)
    m = len(raw)
    if m == 0:
        return raw
    lo, hi = low / m, high / m
    if lo * m > 1 or hi * m < 1:
        raise ValueError(f"bounds [{low}, {high}] x uniform cannot sum to one")
    a, b = 0.0, hi / raw.min()
    for _ in range(100):
        scale = (a + b) / 2
        total = np.clip(scale * raw, lo, hi).sum()
        if total < 1:
            a = scale
        else:
            b = scale
    shares = np.clip((a + b) / 2 * raw, lo, hi)
    return shares / shares.sum()


def balanced_shares(credited_votes: Sequence[int], *, low: float, high: float) -> np.ndarray:
    """Favour models behind on votes, in proportion to how far behind they are (mean / own count, smoothed),
    within the bounds. Equal counts give equal shares."""
    counts = np.asarray(credited_votes, dtype=np.float64)
    if len(counts) == 0:
        return counts
    raw = (counts.mean() + SMOOTHING) / (counts + SMOOTHING)
    return bounded_shares(raw, low=low, high=high)


def card_propensity(makers: Sequence[int], shares: dict[int, float], cards: dict[int, int]) -> float:
    """P(a card is drawn) for a fresh voter: over the models in the rotation that produced it, share / cards."""
    return float(sum(shares[m] / cards[m] for m in makers if m in shares and cards.get(m)))


def top_two_shares(p_best: Sequence[float], *, beta: float, floor: float) -> np.ndarray:
    """Top-two Thompson sampling (Russo 2016) as probabilities: with probability `beta` a draw goes to the model
    that is best under one posterior sample (P = q_m, its P(best)); otherwise to the challenger, the best of
    another sample given that it differs, P(m | not l) = q_m / (1 - q_l) for leader l. So
    share_m = beta q_m + (1 - beta) q_m Σ_{l≠m} q_l / (1 - q_l).
    Then `floor` of the draws are spread uniformly: every model keeps at least floor / M, its estimate keeps
    improving, and the inverse-propensity weights stay bounded by M / floor."""
    q = np.clip(np.asarray(p_best, dtype=np.float64), 0.0, 1.0)
    m = len(q)
    if m == 0:
        return q
    if m == 1:
        return np.ones(1)
    if q.sum() <= 0:
        q = np.full(m, 1.0 / m)
    # A leader certain to be best (q = 1) leaves the challenger undefined: kept just below 1, the challengers
    # share the second half of the draws in proportion to their own (tiny) chances, i.e. about evenly.
    q = np.clip(q / q.sum(), 1e-6, 1.0 - 1e-6)
    ratio = q / (1.0 - q)
    shares = beta * q + (1.0 - beta) * q * (ratio.sum() - ratio)
    shares = shares / shares.sum()
    return (1.0 - floor) * shares + floor / m
