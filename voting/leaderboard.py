"""The leaderboard: variants ranked by their weighted approval (voting.statistics) with intervals over the effective
sample size, P(best) among the models in the rotation, and the decision it supports; one variant's rows per
category.

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
from voting import design, ledger, sampling
from voting.models import PublicSnapshot
from voting.services import voters_review
from voting.statistics import (
    LeaderboardRow,
    Weighted,
    assign_rank_groups,
    beta_posterior,
    p_best,
    p_within,
    votes_to_separate,
    wilson_interval,
)
from voting.tallies import Tally, tallies, variant_tallies


@dataclass
class Decision:
    """What the leaderboard lets one decide about its top two."""

    leader: int | None = None
    runner_up: int | None = None
    status: str = "undecided"  # decided | practically equivalent | undecided | too few votes
    p_leader_best: float | None = None
    p_within_margin: float | None = None  # P(|leader - runner-up| < margin)
    votes_to_separate: int | None = None
    explanation: str = ""


@dataclass
class Board:
    rows: list[LeaderboardRow]
    decision: Decision


def leaderboard_cached() -> list[LeaderboardRow]:
    """Live rows (what staff see): the serving design's tallies and P(best), at most a few seconds old."""
    return board_live().rows


def board_live() -> Board:
    rotation = tuple(v.variant_id for v in sampling.rotation())
    current = design.current(rotation, use_memo=False)
    return board(totals=current.tallies, active=set(rotation), best=current.p_best, shares=current.shares)


def board_of(totals: dict[int, Tally]) -> Board:
    """The staff board for tallies counted elsewhere (a vote export: voting.tallies.tallies_from_rows), computed as
    board_live computes it: the same rotation, P(best) among it in the same order, the same rows and decision."""
    rotation = tuple(v.variant_id for v in sampling.rotation())
    return board(totals=totals, active=set(rotation), best=design.p_best_among(totals, rotation))


def leaderboard_rows(*, totals: dict[int, Tally] | None = None, before: datetime | None = None) -> list[LeaderboardRow]:
    return board(totals=totals, before=before).rows


def board(
    *,
    totals: dict[int, Tally] | None = None,
    before: datetime | None = None,
    active: set[int] | None = None,
    best: dict[int, float] | None = None,
    shares: dict[int, float] | None = None,
) -> Board:
    """Ranked variants first (by approval; overlapping intervals share a rank group), provisional after.

    P(best) is among the active variants (those in the rotation), from their posteriors unless given. The serving
    design's shares of the draws are given for staff's live view only: no public number may tell who is drawn."""
    totals = variant_tallies(before=before) if totals is None else totals
    new_since = (before or timezone.now()) - timedelta(days=settings.VSEARCH_NEW_DAYS)
    variants = list(Variant.objects.filter(status=Variant.Status.READY))
    if active is None:
        active = {v.pk for v in variants if v.rotation == Variant.Rotation.ACTIVE}
    estimates = {v.pk: totals.get(v.pk, Tally(0, 0)).estimate for v in variants}
    if best is None:
        competing = [v for v in estimates if v in active]
        computed = p_best([beta_posterior(estimates[v].rate, estimates[v].n_eff) for v in competing])
        best = {v: float(p) for v, p in zip(competing, computed, strict=True)}
    rows = []
    for variant in variants:
        tally = totals.get(variant.pk, Tally(0, 0))
        estimate = estimates[variant.pk]
        low, high = wilson_interval(estimate.rate, estimate.n_eff) if estimate.rate is not None else (None, None)
        in_race = variant.pk in best
        rows.append(
            LeaderboardRow(
                variant_id=variant.pk,
                name=variant.name,
                description=variant.description,
                status=variant.rotation,
                votes=tally.votes,
                approvals=tally.approvals,
                approval_rate=estimate.rate,
                ci_low=low,
                ci_high=high,
                provisional=tally.votes < settings.VSEARCH_MIN_VOTES,
                is_new=bool(variant.ready_at and variant.ready_at >= new_since),
                p_at_1=variant.p_at_1,
                n_eff=round(estimate.n_eff, 1),
                p_best=best.get(variant.pk) if in_race else None,
                decided=in_race and best[variant.pk] >= settings.VSEARCH_DECIDED,
                draw_share=(shares or {}).get(variant.pk),
            )
        )
    ranked = sorted((r for r in rows if not r.provisional), key=lambda r: (-r.approval_rate, -r.votes, r.name))
    provisional = sorted((r for r in rows if r.provisional), key=lambda r: (-r.votes, r.name))
    assign_rank_groups(ranked)
    return Board(ranked + provisional, _decision(ranked, totals, estimates, best))


def _decision(ranked: list[LeaderboardRow], totals, estimates: dict[int, Weighted], best) -> Decision:
    racing = sorted((r for r in ranked if r.p_best is not None), key=lambda r: -r.approval_rate)
    if len(racing) < 2:
        return Decision(status="too few votes", explanation="Fewer than two models have enough votes to compare.")
    first, second = racing[0], racing[1]
    a, b = estimates[first.variant_id], estimates[second.variant_id]
    within = p_within(
        beta_posterior(a.rate, a.n_eff), beta_posterior(b.rate, b.n_eff), settings.VSEARCH_EQUIVALENCE_MARGIN
    )
    # Votes spent per unit of effective sample size so far: shared cards and unequal weights make it above 1.
    per_n = tuple(
        max(1.0, totals[r.variant_id].votes / max(estimates[r.variant_id].n_eff, 1e-9)) for r in (first, second)
    )
    more = votes_to_separate(a, b, target=settings.VSEARCH_DECIDED, votes_per_n_eff=per_n)
    decision = Decision(first.variant_id, second.variant_id, p_leader_best=best.get(first.variant_id),
                        p_within_margin=within, votes_to_separate=more)  # fmt: skip
    margin = settings.VSEARCH_EQUIVALENCE_MARGIN
    if first.decided:
        decision.status = "decided"
        decision.explanation = f"{first.name} is best with probability {first.p_best:.2f}."
    elif within >= settings.VSEARCH_DECIDED:
        decision.status = "practically equivalent"
        decision.explanation = (
            f"{first.name} and {second.name} differ by less than {margin:.2f} with probability {within:.2f}."
        )
    else:
        decision.explanation = (
            f"About {more:,} more votes on these two would separate them, if their approvals stay as estimated "
            "(normal approximation of the difference of two proportions, votes shared evenly)."
            if more
            else "Their estimates are equal: more votes will tell whether they are practically equivalent."
        )
    return decision


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
        estimate = tally.estimate
        low, high = wilson_interval(estimate.rate, estimate.n_eff)
        out.append(CategoryRow(category, tally.votes, tally.approvals, estimate.rate, low, high))
    return sorted(out, key=lambda r: (-r.approval_rate, r.category))


def category_rows(*, variant: Variant) -> list[CategoryRow]:
    """One variant's live rows per query category (staff)."""
    return _category_rows(tallies(("category",), variant_id=variant.pk))


# ---------------------------------------------------------------------------------------- the public snapshot


@dataclass(frozen=True)
class Snapshot:
    rows: list[LeaderboardRow]
    decision: Decision
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
        decision=Decision(**stored.decision),
        categories={int(k): [CategoryRow(**r) for r in v] for k, v in stored.categories.items()},
        cutoff=stored.cutoff,
        next_at=start + window,
    )


def _take(start: datetime, *, cutoff: datetime) -> PublicSnapshot:
    voters_review()  # exclusions decided on every vote so far count for this snapshot
    ledger.fold()
    taken = board(before=cutoff)
    per_category: dict[int, dict[str, Tally]] = {}
    for (variant_id, category), tally in tallies(("variant_id", "category"), before=cutoff).items():
        per_category.setdefault(variant_id, {})[category] = tally
    categories = {str(v): [asdict(r) for r in _category_rows(totals)] for v, totals in per_category.items()}
    try:
        with transaction.atomic():
            snapshot = PublicSnapshot.objects.create(
                window_start=start,
                cutoff=cutoff,
                rows=[asdict(r) for r in taken.rows],
                decision=asdict(taken.decision),
                categories=categories,
            )
    except IntegrityError:  # another request took it first: theirs is the one everyone sees
        return PublicSnapshot.objects.get(window_start=start)
    PublicSnapshot.objects.filter(window_start__lt=start - timedelta(days=7)).delete()
    return snapshot
