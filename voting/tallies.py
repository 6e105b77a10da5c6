"""Vote counts and weighted sums: per variant (one aggregate, behind both the serving design and the leaderboard)
and per voter.

Only counted votes count for a model: never a gold card's, and only those of counted voters (qualified by their
gold answers, not excluded). Each counted vote weighs 1 / P(its card was drawn) (voting.statistics).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Sum

from voting import ledger
from voting.models import TallyBucket, Vote, Voter
from voting.statistics import Weighted, weighted_from_sums


@dataclass(frozen=True)
class Tally:
    votes: int
    approvals: int
    weight: float = 0.0  # Σ 1/p over votes with a recorded propensity p
    weighted_dope: float = 0.0  # Σ dope/p
    weight_squared: float = 0.0  # Σ 1/p²
    unweighted: int = 0  # votes without a recorded propensity (cast before propensities were recorded)
    unweighted_dope: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple:
        return (self.votes, self.approvals, self.weight, self.weighted_dope, self.weight_squared, self.unweighted,
                self.unweighted_dope)  # fmt: skip

    @property
    def estimate(self) -> Weighted:
        """The weighted approval. A vote without a propensity weighs as much as the average weighted vote of the
        same model (with none at all, every vote weighs the same)."""
        weighted = self.votes - self.unweighted
        if self.votes == 0:
            return Weighted(None, 0.0)
        if weighted <= 0 or self.weight <= 0:
            return Weighted(self.approvals / self.votes, float(self.votes))
        mean = self.weight / weighted
        return weighted_from_sums(
            self.weight + mean * self.unweighted,
            self.weighted_dope + mean * self.unweighted_dope,
            self.weight_squared + mean * mean * self.unweighted,
        )


def vote_totals(group_by: str | tuple[str, ...], *, before: datetime | None = None, **filters) -> dict:
    """Counts and weighted sums per group (a variant, a category, both...) straight from the vote rows: one
    aggregate query over match pairs joined to counted votes (what the folded tallies are checked against). A
    vote on a card that several variants produced counts for each of them."""
    groups = (group_by,) if isinstance(group_by, str) else tuple(group_by)
    counted = {"pair__votes__gold__isnull": True, "pair__votes__voter__counted": True}
    if before is not None:
        counted["pair__votes__created_at__lt"] = before
    key = (lambda row: row[groups[0]]) if len(groups) == 1 else (lambda row: tuple(row[g] for g in groups))
    return {
        key(row): Tally(*(row[name] or 0 for name in ledger.FIELDS))
        for row in ledger.sums_by(groups, **counted, **filters)
    }


def variant_tallies(*, before: datetime | None = None) -> dict[int, Tally]:
    """Counted votes, approvals and weighted sums per variant, now (or of the votes cast before `before`, a window
    boundary): the folded buckets plus the votes since the last fold (voting.ledger)."""
    return tallies(("variant_id",), before=before)


def tallies(groups: tuple[str, ...], *, before: datetime | None = None, **filters) -> dict:
    """Folded sums per group (variant_id and/or category) plus what the votes since the last fold add."""
    through = ledger.folded_through()
    buckets = TallyBucket.objects.filter(**filters)
    if before is not None:
        buckets = buckets.filter(window__lt=before)
    folded = buckets.values(*groups).annotate(**{name: Sum(name) for name in ledger.FIELDS}).order_by()
    out: dict = {}
    for row in folded if through else []:
        key = row[groups[0]] if len(groups) == 1 else tuple(row[g] for g in groups)
        out[key] = Tally(*(row[name] or 0 for name in ledger.FIELDS))
    mapping = {"variant_id": "variant_id", "category": "query_item__category"}
    match_filters = {("variant_id" if k == "variant_id" else k): v for k, v in filters.items()}
    fresh = Vote.objects.filter(id__gt=through)
    if before is not None:
        fresh = fresh.filter(created_at__lt=before)
    # One probe walking the primary key from the fold's high-water mark: nothing cast since the last fold. Ordered by
    # id because statements are prepared: after 5 runs PostgreSQL may keep a generic plan, which cannot see that
    # `id > $1` matches nothing and, for a bare EXISTS ... LIMIT 1, scans the whole table (619 ms at 10M votes in
    # bench/leaderboard); with ORDER BY id the generic plan is the pkey's index scan as well.
    if not fresh.order_by("id").values_list("id", flat=True)[:1]:
        return out
    # Only the match pairs of the cards voted on since the fold (SQLite would otherwise walk every match pair).
    recent = vote_totals(
        tuple(mapping[g] for g in groups),
        before=before,
        pair__votes__id__gt=through,
        pair_id__in=fresh.values("pair_id"),
        **match_filters,
    )
    for key, tally in recent.items():
        out[key] = out[key] + tally if key in out else tally
    return out


def tallies_from_rows(rows: Iterable) -> dict[int, Tally]:
    """Per variant, what the leaderboard counts of these votes (rows of a vote export, voting.export): the same sums
    the ledger folds (ledger.Sums), of the votes that count (no gold card, a counted voter), each for every model
    holding its card."""
    sums: dict[int, ledger.Sums] = defaultdict(ledger.Sums)
    for row in rows:
        if row.gold is not None or not row.counted:
            continue
        for maker in row.models:
            sums[maker.variant_id].add(row.dope, row.propensity)
    return {variant: Tally(*(getattr(s, name) for name in ledger.FIELDS)) for variant, s in sums.items()}


def votes_cast(voter: Voter) -> int:
    return 0 if voter.pk is None else Vote.objects.filter(voter_id=voter.pk).count()
