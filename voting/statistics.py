"""Leaderboard statistics on plain numbers: intervals and rank groups. No database here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from django.conf import settings


def wilson(approvals: int, votes: int, confidence: float | None = None) -> tuple[float, float] | tuple[None, None]:
    """Wilson score interval for a binomial proportion: honest at small counts, never outside [0, 1]."""
    if votes == 0:
        return None, None
    z = NormalDist().inv_cdf(0.5 + (confidence or settings.VSEARCH_CONFIDENCE) / 2)
    p = approvals / votes
    denominator = 1 + z * z / votes
    centre = (p + z * z / (2 * votes)) / denominator
    half = z * math.sqrt(p * (1 - p) / votes + z * z / (4 * votes * votes)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


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
