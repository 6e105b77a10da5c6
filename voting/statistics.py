"""Leaderboard statistics on plain numbers: the weighted approval estimate, its interval, posteriors, P(best),
when a contest is decided or practically a tie, and how many more votes would settle it. No database here.

The estimand: a model's approval is the share of its stored match pairs that people call dope, each pair counted
once (uniform over its pairs; rank is not weighed: every stored match is one a user of the model would be shown).
Votes reach a model's cards with unequal probabilities (a card several models made is drawn through each of them;
the serving design favours some models), so each counted vote is weighted by 1 / P(its card was drawn), recorded
when the card was served: the self-normalised inverse-propensity estimate (Hájek), as the Chatbot Arena paper
reweights battles by 1 / P(sampled). Its uncertainty is that of a proportion over the effective sample size
(Kish: (Σw)² / Σw²).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from django.conf import settings


def wilson_interval(rate: float, n: float, confidence: float | None = None) -> tuple[float, float]:
    """Wilson score interval of a proportion `rate` over `n` (possibly an effective, fractional) observations."""
    z = NormalDist().inv_cdf(0.5 + (confidence or settings.VSEARCH_CONFIDENCE) / 2)
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson(approvals: int, votes: int, confidence: float | None = None) -> tuple[float, float] | tuple[None, None]:
    """Wilson score interval for a binomial proportion: honest at small counts, never outside [0, 1]."""
    if votes == 0:
        return None, None
    return wilson_interval(approvals / votes, votes, confidence)


@dataclass(frozen=True)
class Weighted:
    """A self-normalised inverse-propensity estimate: Σ w·y / Σ w, and its effective sample size."""

    rate: float | None
    n_eff: float


def weighted_rate(dope: Sequence[float], weights: Sequence[float]) -> Weighted:
    y, w = np.asarray(dope, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    return weighted_from_sums(float(w.sum()), float((w * y).sum()), float((w * w).sum()))


def weighted_from_sums(weight: float, weighted_dope: float, weight_squared: float) -> Weighted:
    """The same estimate from running sums (what the database aggregates): Σw, Σw·y, Σw²."""
    if weight <= 0 or weight_squared <= 0:
        return Weighted(None, 0.0)
    return Weighted(weighted_dope / weight, weight * weight / weight_squared)


def beta_posterior(rate: float | None, n_eff: float, prior: tuple[float, float] = (1.0, 1.0)) -> tuple[float, float]:
    """Beta(a + successes, b + failures), the counts being the effective ones; the prior Beta(a, b) is uniform by
    default (see `pooled_prior`)."""
    a, b = prior
    if rate is None or n_eff <= 0:
        return a, b
    return a + rate * n_eff, b + (1.0 - rate) * n_eff


def pooled_prior(estimates: Sequence[Weighted], strength: float) -> tuple[float, float]:
    """A prior worth `strength` votes, centred on the models' pooled approval: with few votes a model's posterior
    stays near the others' instead of swinging with its first votes (empirical Bayes shrinkage), so early luck is
    not read as a decision."""
    total = sum(e.n_eff for e in estimates if e.rate is not None)
    if strength <= 0 or total <= 0:
        return 1.0, 1.0
    mean = sum(e.rate * e.n_eff for e in estimates if e.rate is not None) / total
    mean = min(max(mean, 0.01), 0.99)
    return strength * mean, strength * (1.0 - mean)


def p_best(posteriors: Sequence[tuple[float, float]], *, draws: int = 20_000, seed: int = 0) -> np.ndarray:
    """P(each model has the highest approval), by Monte Carlo over independent Beta posteriors."""
    if not posteriors:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    a = np.array([p[0] for p in posteriors])[None, :]
    b = np.array([p[1] for p in posteriors])[None, :]
    samples = rng.beta(a, b, size=(draws, len(posteriors)))
    return np.bincount(samples.argmax(axis=1), minlength=len(posteriors)) / draws


def p_within(first: tuple[float, float], second: tuple[float, float], margin: float, *, draws: int = 20_000,
             seed: int = 1) -> float:  # fmt: skip
    """P(|approval of first - approval of second| < margin) under their posteriors (Monte Carlo)."""
    rng = np.random.default_rng(seed)
    x, y = rng.beta(*first, size=draws), rng.beta(*second, size=draws)
    return float((np.abs(x - y) < margin).mean())


def votes_to_separate(
    leader: Weighted, runner_up: Weighted, *, target: float, votes_per_n_eff: tuple[float, float] = (1.0, 1.0)
) -> int | None:
    """How many more votes (shared evenly by the two) until P(leader better than runner-up) reaches `target`,
    if the estimates stay where they are. Normal approximation of the difference of two proportions:
    z = (p1 - p2) / sqrt(p1(1-p1)/n1 + p2(1-p2)/n2) must reach Φ⁻¹(target); the effective sizes grow with the
    votes (votes_per_n_eff: votes spent per unit of effective sample size, as observed so far). None: the
    estimates are equal, so no number of votes would separate them."""
    if leader.rate is None or runner_up.rate is None:
        return None
    gap = leader.rate - runner_up.rate
    if gap <= 0:
        return None
    z = NormalDist().inv_cdf(target)
    v1, v2 = max(leader.rate * (1 - leader.rate), 1e-4), max(runner_up.rate * (1 - runner_up.rate), 1e-4)

    def reached(extra: float) -> bool:
        n1 = leader.n_eff + extra / 2 / votes_per_n_eff[0]
        n2 = runner_up.n_eff + extra / 2 / votes_per_n_eff[1]
        return gap / math.sqrt(v1 / n1 + v2 / n2) >= z

    if reached(0):
        return 0
    low, high = 0.0, 1.0
    while not reached(high):
        high *= 2
        if high > 1e9:
            return None
    while high - low > 1:
        middle = (low + high) / 2
        low, high = (low, middle) if reached(middle) else (middle, high)
    return int(math.ceil(high))


@dataclass
class LeaderboardRow:
    variant_id: int
    name: str
    description: str
    status: str
    votes: int
    approvals: int
    approval_rate: float | None
    ci_low: float | None
    ci_high: float | None
    provisional: bool
    is_new: bool
    p_at_1: float | None
    rank: int | None = None
    rank_group: str | None = None
    n_eff: float = 0.0
    p_best: float | None = None
    decided: bool = False
    draw_share: float | None = None  # staff's live view only: P(a draw picks the model) under the serving design


def assign_rank_groups(ranked: list[LeaderboardRow]) -> None:
    """Rank = position; group = the range of ranks the row could hold given the intervals.

    Best possible rank: 1 + rows whose lower bound is above this row's upper bound (clearly better).
    Worst possible rank: rows minus those whose upper bound is below this row's lower bound (clearly worse).
    """
    for position, row in enumerate(ranked, start=1):
        better = sum(1 for other in ranked if other.ci_low > row.ci_high)
        worse = sum(1 for other in ranked if other.ci_high < row.ci_low)
        best, worst = better + 1, len(ranked) - worse
        row.rank = position
        row.rank_group = str(best) if best == worst else f"{best}–{worst}"
