"""The leaderboard: variants ranked by approval with Wilson intervals, and one variant's rows per category.

Staff see it live. The public sees a snapshot per window (VSEARCH_PUBLIC_SNAPSHOT_SECONDS) of the votes cast
before the previous window began: it never moves with a vote, so it cannot tell anyone which model made a card.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from matching.models import Variant
from voting.models import PublicSnapshot
from voting.services import voters_review
from voting.statistics import LeaderboardRow, assign_rank_groups, wilson
from voting.tallies import Tally, variant_tallies, variant_tallies_cached, vote_totals


def leaderboard_cached() -> list[LeaderboardRow]:
    """Live rows from vote tallies at most a few seconds old (voting.tallies): what staff see."""
    return leaderboard_rows(totals=variant_tallies_cached())


def leaderboard_rows(*, totals: dict[int, Tally] | None = None, before: datetime | None = None) -> list[LeaderboardRow]:
    """Ranked variants first (by approval rate; overlapping intervals share a rank group), provisional after."""
    totals = variant_tallies(before=before) if totals is None else totals
    new_since = (before or timezone.now()) - timedelta(days=settings.VSEARCH_NEW_DAYS)
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


def _category_rows(totals: dict[str, Tally]) -> list[CategoryRow]:
    out = []
    for category, tally in totals.items():
        low, high = wilson(tally.approvals, tally.votes)
        out.append(CategoryRow(category, tally.votes, tally.approvals, tally.approvals / tally.votes, low, high))
    return sorted(out, key=lambda r: (-r.approval_rate, r.category))


def category_rows(*, variant: Variant) -> list[CategoryRow]:
    """One variant's live rows per query category (staff)."""
    return _category_rows(vote_totals("query_item__category", variant=variant))


# ---------------------------------------------------------------------------------------- the public snapshot


@dataclass(frozen=True)
class Snapshot:
    rows: list[LeaderboardRow]
    categories: dict[int, list[CategoryRow]]
    cutoff: datetime
    next_at: datetime


def window_start(now: datetime | None = None) -> datetime:
    seconds = settings.VSEARCH_PUBLIC_SNAPSHOT_SECONDS
    now = now or timezone.now()
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=now.tzinfo or timezone.get_current_timezone())


def public_snapshot(now: datetime | None = None) -> Snapshot:
    """This window's public leaderboard: taken once (by whichever request comes first), then frozen."""
    start = window_start(now)
    window = timedelta(seconds=settings.VSEARCH_PUBLIC_SNAPSHOT_SECONDS)
    stored = PublicSnapshot.objects.filter(window_start=start).first()
    if stored is None:
        stored = _take(start, cutoff=start - window)
    return Snapshot(
        rows=[LeaderboardRow(**row) for row in stored.rows],
        categories={int(k): [CategoryRow(**r) for r in v] for k, v in stored.categories.items()},
        cutoff=stored.cutoff,
        next_at=start + window,
    )


def _take(start: datetime, *, cutoff: datetime) -> PublicSnapshot:
    voters_review()  # exclusions decided on every vote so far count for this snapshot
    rows = leaderboard_rows(before=cutoff)
    per_category: dict[int, dict[str, Tally]] = {}
    for (variant_id, category), tally in vote_totals(("variant_id", "query_item__category"), before=cutoff).items():
        per_category.setdefault(variant_id, {})[category] = tally
    categories = {str(v): [asdict(r) for r in _category_rows(totals)] for v, totals in per_category.items()}
    try:
        with transaction.atomic():
            snapshot = PublicSnapshot.objects.create(
                window_start=start, cutoff=cutoff, rows=[asdict(r) for r in rows], categories=categories
            )
    except IntegrityError:  # another request took it first: theirs is the one everyone sees
        return PublicSnapshot.objects.get(window_start=start)
    PublicSnapshot.objects.filter(window_start__lt=start - timedelta(days=7)).delete()
    return snapshot
