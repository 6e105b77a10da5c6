"""Vote tallies maintained as votes come: counted votes are folded into per-(model, category, window) sums
(TallyBucket) and per-card counts (CardTally), so reading the leaderboard or the serving design costs
O(models x categories) plus the few votes cast since the last fold, never O(votes).

Every write that changes what counts keeps the buckets exact, under one lock (the TallyCursor row):
- a fold adds the counted votes cast since the last one (any process may fold; each range is folded once);
- an undo subtracts its vote if it was already folded;
- a voter who stops counting (excluded) or starts (qualified, included) has their folded votes subtracted or added;
- a model whose pairs were rebuilt has its buckets recounted from its votes.
`manage.py tallies --check` recounts from the vote rows and reports any difference.

Buckets are as wide as the public snapshot's window, so the snapshot's cutoff (a window boundary) reads exactly the
buckets before it; windows older than two are merged into one bucket per cell (the epoch).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count, ExpressionWrapper, F, FloatField, Q, Sum, Value
from django.utils import timezone

from matching.models import MatchPair
from voting.models import CardTally, TallyBucket, TallyCursor, Vote

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Sums:
    votes: int = 0
    approvals: int = 0
    weight: float = 0.0
    weighted_dope: float = 0.0
    weight_squared: float = 0.0
    unweighted: int = 0
    unweighted_dope: int = 0

    def add_sums(self, row: dict, sign: int = 1) -> None:
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + sign * (row[name] or 0))

    def add(self, dope: bool, propensity: float | None, sign: int = 1) -> None:
        self.votes += sign
        self.approvals += sign * dope
        if propensity and propensity > 0:
            w = 1.0 / propensity
            self.weight += sign * w
            self.weighted_dope += sign * w * dope
            self.weight_squared += sign * w * w
        else:
            self.unweighted += sign
            self.unweighted_dope += sign * dope


FIELDS = ("votes", "approvals", "weight", "weighted_dope", "weight_squared", "unweighted", "unweighted_dope")


def window_seconds() -> int:
    return settings.VSEARCH_PUBLIC_SNAPSHOT_SECONDS


def window_of(moment: datetime) -> datetime:
    seconds = window_seconds()
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


@dataclass
class Delta:
    cells: dict[tuple[int, str, datetime], Sums] = field(default_factory=lambda: defaultdict(Sums))
    cards: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))


def _inverse(power: int):
    p = F("pair__votes__propensity")
    return ExpressionWrapper(Value(1.0) / (p if power == 1 else p * p), output_field=FloatField())


def sums_by(groups: tuple[str, ...], **match_pair_filters) -> list[dict]:
    """Counts and weighted sums of the votes on match pairs, grouped (one aggregate query in the database): the
    filters name the votes (`pair__votes__...`), in one filter() so that they and the sums share one join."""
    has_p = Q(pair__votes__propensity__gt=0)
    return list(
        MatchPair.objects.filter(**match_pair_filters)
        .values(*groups)
        .annotate(
            votes=Count("pair__votes"),
            approvals=Count("pair__votes", filter=Q(pair__votes__dope=True)),
            weight=Sum(_inverse(1), filter=has_p),
            weighted_dope=Sum(_inverse(1), filter=has_p & Q(pair__votes__dope=True)),
            weight_squared=Sum(_inverse(2), filter=has_p),
            unweighted=Count("pair__votes", filter=~has_p),
            unweighted_dope=Count("pair__votes", filter=~has_p & Q(pair__votes__dope=True)),
        )
        .order_by()
    )


def _contributions(votes, *, sign: int = 1, variant_id: int | None = None, merged_before: datetime | None = None):
    """What these votes add to the buckets: each counts for every model that made its card. Votes older than the
    merge horizon go to the merged (epoch) buckets, summed in the database; the recent few are bucketed here."""
    delta = Delta()
    horizon = merged_before or EPOCH
    old, recent = votes.filter(created_at__lt=horizon), votes.filter(created_at__gte=horizon)
    filters = {"pair__votes__id__in": old.values("id")}
    if variant_id is not None:
        filters["variant_id"] = variant_id
    for row in sums_by(("variant_id", "query_item__category"), **filters):
        delta.cells[(row["variant_id"], row["query_item__category"], EPOCH)].add_sums(row, sign)
    if variant_id is None:
        for pair_id, n, d in (
            old.values("pair_id")
            .annotate(n=Count("id"), d=Count("id", filter=Q(dope=True)))
            .values_list("pair_id", "n", "d")
        ):
            delta.cards[pair_id][0] += sign * n
            delta.cards[pair_id][1] += sign * d
    rows = list(recent.values_list("id", "pair_id", "dope", "propensity", "created_at", "pair__query_item__category"))
    makers = defaultdict(list)
    match_pairs = MatchPair.objects.filter(pair_id__in={pair for _, pair, *_ in rows})
    if variant_id is not None:
        match_pairs = match_pairs.filter(variant_id=variant_id)
    for pair_id, variant in match_pairs.values_list("pair_id", "variant_id"):
        makers[pair_id].append(variant)
    for _, pair_id, dope, propensity, created_at, category in rows:
        window = window_of(created_at)
        for variant in makers.get(pair_id, ()):
            delta.cells[(variant, category, window)].add(dope, propensity, sign)
        if variant_id is None:
            delta.cards[pair_id][0] += sign
            delta.cards[pair_id][1] += sign * dope
    return delta


def _apply(delta: Delta) -> None:
    for (variant, category, window), sums in delta.cells.items():
        changes = {name: F(name) + getattr(sums, name) for name in FIELDS}
        if not TallyBucket.objects.filter(variant_id=variant, category=category, window=window).update(**changes):
            TallyBucket.objects.create(
                variant_id=variant, category=category, window=window, **{n: getattr(sums, n) for n in FIELDS}
            )
    fresh = []
    for pair_id, (votes, dope) in delta.cards.items():
        if not CardTally.objects.filter(pair_id=pair_id).update(votes=F("votes") + votes, dope=F("dope") + dope):
            fresh.append(CardTally(pair_id=pair_id, votes=votes, dope=dope))
    CardTally.objects.bulk_create(fresh, batch_size=2000)


def counted(votes):
    return votes.filter(gold__isnull=True, voter__counted=True)


def _locked_cursor() -> TallyCursor:
    """The cursor row, locked for this transaction (PostgreSQL: FOR UPDATE; SQLite: the write takes the database
    lock at once), created on first use."""
    TallyCursor.objects.get_or_create(pk=1)
    TallyCursor.objects.filter(pk=1).update(folded_at=F("folded_at"))  # a write first: the lock, on any database
    return TallyCursor.objects.select_for_update().get(pk=1)


def _merge_horizon() -> datetime:
    """Windows before this are merged: no snapshot will ever cut inside them (cutoffs are at least one window
    behind the present, and only move forward)."""
    return window_of(timezone.now()) - 2 * _window_delta()


def _window_delta():
    from datetime import timedelta

    return timedelta(seconds=window_seconds())


def fold() -> int:
    """Add the counted votes cast since the last fold; returns how many votes were folded."""
    with transaction.atomic():
        cursor = _locked_cursor()
        if cursor.window_seconds != window_seconds():
            return _recount(cursor)
        top = Vote.objects.order_by("-id").values_list("id", flat=True).first() or 0
        if top <= cursor.folded_through:
            return 0
        fresh = Vote.objects.filter(id__gt=cursor.folded_through, id__lte=top)
        n = fresh.count()
        horizon = _compact()
        _apply(_contributions(counted(fresh), merged_before=horizon))
        TallyCursor.objects.filter(pk=1).update(folded_through=top, folded_at=timezone.now())
    return n


def _compact() -> datetime:
    """Merge buckets of windows older than two into the epoch bucket of their cell (under the lock, before any
    change, so a vote's bucket is always where the change looks for it). Returns the merge horizon."""
    horizon = _merge_horizon()
    old = list(TallyBucket.objects.filter(window__lt=horizon, window__gt=EPOCH))
    if old:
        delta = Delta()
        for bucket in old:
            sums = delta.cells[(bucket.variant_id, bucket.category, EPOCH)]
            for name in FIELDS:
                setattr(sums, name, getattr(sums, name) + getattr(bucket, name))
        TallyBucket.objects.filter(pk__in=[b.pk for b in old]).delete()
        _apply(delta)
    return horizon


def vote_removed(vote: Vote) -> None:
    """Call inside the transaction that deletes `vote` (an undo): its folded share comes off."""
    cursor = _locked_cursor()
    if vote.id > cursor.folded_through or vote.gold is not None or not vote.voter.counted:
        return
    horizon = _compact()
    _apply(_contributions(Vote.objects.filter(pk=vote.pk), sign=-1, merged_before=horizon))


def voter_counted_changed(voter_id: int, now_counted: bool) -> None:
    """A voter started or stopped counting: add or subtract their folded, non-gold votes."""
    with transaction.atomic():
        cursor = _locked_cursor()
        votes = Vote.objects.filter(voter_id=voter_id, gold__isnull=True, id__lte=cursor.folded_through)
        horizon = _compact()
        _apply(_contributions(votes, sign=1 if now_counted else -1, merged_before=horizon))


def variant_recount(variant_id: int) -> None:
    """A model's pairs changed (rebuilt): its buckets are counted again from its folded votes."""
    with transaction.atomic():
        cursor = _locked_cursor()
        _compact()
        TallyBucket.objects.filter(variant_id=variant_id).delete()
        pairs = MatchPair.objects.filter(variant_id=variant_id).values("pair_id")
        votes = counted(Vote.objects.filter(pair_id__in=pairs, id__lte=cursor.folded_through))
        delta = _contributions(votes, variant_id=variant_id, merged_before=_merge_horizon())
        _apply(delta)


def recount() -> int:
    """Everything again from the vote rows (the repair `tallies --rebuild` makes)."""
    with transaction.atomic():
        return _recount(_locked_cursor())


def _recount(cursor: TallyCursor) -> int:
    TallyBucket.objects.all().delete()
    CardTally.objects.all().delete()
    top = Vote.objects.order_by("-id").values_list("id", flat=True).first() or 0
    delta = _contributions(counted(Vote.objects.filter(id__lte=top)), merged_before=_merge_horizon())
    cards, delta.cards = delta.cards, {}
    _apply(delta)
    CardTally.objects.bulk_create(  # a fresh table: inserts, no per-card update first
        (CardTally(pair_id=pair, votes=n, dope=d) for pair, (n, d) in cards.items()), batch_size=5000
    )
    TallyCursor.objects.filter(pk=1).update(
        folded_through=top, folded_at=timezone.now(), window_seconds=window_seconds()
    )
    return top


def folded_through() -> int:
    row = TallyCursor.objects.filter(pk=1).values_list("folded_through", "window_seconds").first()
    if row is None or row[1] != window_seconds():
        return 0
    return row[0]


def card_counts(pairs: set[int] | None = None) -> dict[int, tuple[int, int]]:
    """(dope, votes) of counted votes per card: folded counts plus the votes since the last fold; of these cards, or
    of every card (None: no IN list, which PostgreSQL caps at 65,535 parameters)."""
    through = folded_through()
    kept, votes = CardTally.objects.all(), Vote.objects.filter(id__gt=through)
    if pairs is not None:
        kept, votes = kept.filter(pair_id__in=pairs), votes.filter(pair_id__in=pairs)
    out = {pk: (dope, n) for pk, n, dope in kept.values_list("pair_id", "votes", "dope").iterator(chunk_size=20_000)}
    if not through:
        out = {}
    for pair_id, dope in counted(votes).values_list("pair_id", "dope").iterator(chunk_size=20_000):
        d, n = out.get(pair_id, (0, 0))
        out[pair_id] = (d + dope, n + 1)
    return out


__all__ = ["Q", "fold", "recount", "variant_recount", "vote_removed", "voter_counted_changed"]
