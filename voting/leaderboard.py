"""The leaderboard: variants ranked by approval with Wilson intervals, and one variant's rows per category."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from matching.models import Variant
from voting.statistics import LeaderboardRow, assign_rank_groups, wilson
from voting.tallies import Tally, variant_tallies, variant_tallies_cached, vote_totals


def leaderboard_cached() -> list[LeaderboardRow]:
    """The leaderboard as the API serves it: from vote tallies at most a few seconds old (voting.tallies)."""
    return leaderboard_rows(totals=variant_tallies_cached())


def leaderboard_rows(*, totals: dict[int, Tally] | None = None) -> list[LeaderboardRow]:
    """Ranked variants first (by approval rate; overlapping intervals share a rank group), provisional after."""
    totals = variant_tallies() if totals is None else totals
    new_since = timezone.now() - timedelta(days=settings.VSEARCH_NEW_DAYS)
    rows = []
    for variant in Variant.objects.filter(status=Variant.Status.READY):
        tally = totals.get(variant.pk, Tally(0, 0))
        low, high = wilson(tally.approvals, tally.votes)
        rows.append(
            LeaderboardRow(
                variant_id=variant.pk,
                name=variant.name,
                description=variant.description,
                status=variant.rotation,
                votes=tally.votes,
                approvals=tally.approvals,
                approval_rate=tally.approvals / tally.votes if tally.votes else None,
                ci_low=low,
                ci_high=high,
                provisional=tally.votes < settings.VSEARCH_MIN_VOTES,
                is_new=bool(variant.ready_at and variant.ready_at >= new_since),
                p_at_1=variant.p_at_1,
            )
        )
    ranked = sorted((r for r in rows if not r.provisional), key=lambda r: (-r.approval_rate, -r.votes, r.name))
    provisional = sorted((r for r in rows if r.provisional), key=lambda r: (-r.votes, r.name))
    assign_rank_groups(ranked)
    return ranked + provisional


@dataclass
class CategoryRow:
    category: str
    votes: int
    approvals: int
    approval_rate: float
    ci_low: float
    ci_high: float


def category_rows(*, variant: Variant) -> list[CategoryRow]:
    out = []
    for category, tally in vote_totals("query_item__category", variant=variant).items():
        low, high = wilson(tally.approvals, tally.votes)
        out.append(CategoryRow(category, tally.votes, tally.approvals, tally.approvals / tally.votes, low, high))
    return sorted(out, key=lambda r: (-r.approval_rate, r.category))
