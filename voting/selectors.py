"""Reads for voting: which card a voter sees next, and the leaderboard. Both stay fast at 1M rows."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from statistics import NormalDist

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from matching.models import MatchPair, Pair, Variant
from voting.models import Vote, Voter

ROTATION_CACHE_KEY = "voting:rotation"
LEADERBOARD_CACHE_KEY = "voting:leaderboard"
# The aggregate over every vote took 1.1 s at 1M votes and 4.9 s at 10M on PostgreSQL (docs/BENCHMARKS.md,
# leaderboard): it runs in one process at a time, at most once per 5 s, while the others serve the last one.
LEADERBOARD_SECONDS = 5
COUNTS_CACHE_KEY = "voting:exposure"
ROTATION_SECONDS = 10  # a variant that becomes ready or is paused joins/leaves within this long
COUNTS_SECONDS = 15  # exposure counts may lag by this long; the weights stay smooth, so balance holds
ATTEMPTS = 6  # random probes before the exhaustive (anti-join) look
PROBE = 16  # consecutive seq rows read per probe


LOCAL_SECONDS = 2.0  # each web process reuses the rotation and exposure counts this long before asking Redis
_local: dict[str, tuple[float, object]] = {}


def _local_get(key: str):
    hit = _local.get(key)
    return hit[1] if hit is not None and time.monotonic() - hit[0] < LOCAL_SECONDS else None


def rotation() -> list[tuple[int, int]]:
    """(variant id, highest seq) of every ready, active variant with pairs."""
    rows = _local_get(ROTATION_CACHE_KEY)
    if rows is not None:
        return rows
    rows = cache.get(ROTATION_CACHE_KEY)
    if rows is None:
        rows = [
            (v["id"], v["top"])
            for v in Variant.objects.filter(status=Variant.Status.READY, rotation=Variant.Rotation.ACTIVE)
            .annotate(top=Max("pairs__seq"))
            .filter(top__isnull=False)
            .values("id", "top")
        ]
        cache.set(ROTATION_CACHE_KEY, rows, ROTATION_SECONDS)
    _local[ROTATION_CACHE_KEY] = (time.monotonic(), rows)
    return rows


def rotation_changed() -> None:
    _local.clear()
    cache.delete_many([ROTATION_CACHE_KEY, COUNTS_CACHE_KEY, LEADERBOARD_CACHE_KEY])


def _revalidated(key: str, max_age: float, compute, *, usable=lambda value: True):
    """Stale-while-revalidate through the shared cache: the last value serves every request; once it is
    older than `max_age` one process (holding a short cache lock) recomputes while the others keep getting
    the previous value at once. An aggregate over every vote never runs in every web worker at once."""
    cached = cache.get(key)
    if cached is not None and usable(cached[1]):
        computed_at, value = cached
        if time.time() - computed_at < max_age or not cache.add(f"{key}:lock", 1, 60):
            return value
    try:
        value = compute()
        cache.set(key, (time.time(), value), 3600)
    finally:
        cache.delete(f"{key}:lock")
    return value


def exposure_counts(variant_ids: list[int]) -> dict[int, int]:
    """Votes each variant has collected so far (a shared card counts for every variant that made it),
    at most COUNTS_SECONDS old."""
    local = _local_get(COUNTS_CACHE_KEY)
    if local is not None and set(variant_ids) <= set(local):
        return local

    def count() -> dict[int, int]:
        counts = dict.fromkeys(variant_ids, 0)
        counts.update(
            MatchPair.objects.filter(variant_id__in=variant_ids, pair__votes__isnull=False)
            .values_list("variant_id")
            .annotate(n=Count("pair__votes"))
            .values_list("variant_id", "n")
        )
        return counts

    counts = _revalidated(COUNTS_CACHE_KEY, COUNTS_SECONDS, count, usable=lambda c: set(variant_ids) <= set(c))
    _local[COUNTS_CACHE_KEY] = (time.monotonic(), counts)
    return counts


def _weights(counts: list[int]) -> list[float]:
    """Favour the variants with fewest votes: weight 1 / (1 + votes behind the leader-of-the-rear)^2.

    A new variant (0 votes among variants with hundreds) is drawn almost every time until it catches up;
    equal counts give equal chances.
    """
    low = min(counts)
    return [1.0 / (1 + c - low) ** 2 for c in counts]


@dataclass(frozen=True)
class Card:
    pair_id: int
    query_image: str
    match_image: str


def pair_next_for(*, voter: Voter, rng: random.Random | None = None) -> Card | None:
    """A card from an active variant that this voter has not voted on, or None if none is left.

    Sampling reads a few rows by (variant, seq) index from a random offset: no ORDER BY RANDOM() scan.
    """
    rng = rng or random.Random()
    variants = rotation()
    if not variants:
        return None
    counts = exposure_counts([v for v, _ in variants])
    pool = list(variants)
    while pool:
        weights = _weights([counts.get(v, 0) for v, _ in pool])
        index = rng.choices(range(len(pool)), weights=weights)[0]
        variant_id, top = pool[index]
        card = _probe(voter, variant_id, top, rng)
        if card is not None:
            return card
        pair_id = _exhaustive(voter, variant_id, rng)
        if pair_id is not None:
            return _card(pair_id)
        pool.pop(index)  # this voter has judged every card of this variant
    return None


def _probe(voter: Voter, variant_id: int, top: int, rng: random.Random) -> Card | None:
    """Up to PROBE consecutive cards from a random seq, without the voter's votes, images joined: one query."""
    for _ in range(ATTEMPTS):
        start = rng.randint(0, top)
        fresh = list(
            MatchPair.objects.filter(variant_id=variant_id, seq__gte=start)
            .exclude(Exists(Vote.objects.filter(voter=voter, pair_id=OuterRef("pair_id"))))
            .order_by("seq")
            .values_list("pair_id", "pair__query_item__image", "pair__match_item__image")[:PROBE]
        )
        if fresh:
            pair_id, query, match = rng.choice(fresh)
            return Card(pair_id, _image_url(query), _image_url(match))
    return None


def _exhaustive(voter: Voter, variant_id: int, rng: random.Random) -> int | None:
    """The voter has seen most of this variant: look for any unvoted card (an index anti-join)."""
    unseen = (
        MatchPair.objects.filter(variant_id=variant_id)
        .exclude(pair_id__in=Vote.objects.filter(voter=voter).values("pair_id"))
        .order_by("seq")
        .values_list("pair_id", flat=True)
    )
    first = list(unseen[:PROBE])
    return rng.choice(first) if first else None


def _card(pair_id: int) -> Card:
    pair = (
        Pair.objects.select_related("query_item", "match_item")
        .only("query_item__image", "match_item__image")
        .get(pk=pair_id)
    )
    return Card(pair_id, pair.query_item.image_url, pair.match_item.image_url)


def _image_url(name: str) -> str:
    return f"{settings.MEDIA_URL}{name}"  # as Item.image_url


def card_for(pair_id: int) -> Card:
    return _card(pair_id)


def votes_cast(voter: Voter) -> int:
    return Vote.objects.filter(voter=voter).count()


# ---------------------------------------------------------------------------------------- leaderboard


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


def _vote_totals(group_by: str, **filters) -> list[dict]:
    """Votes and approvals per group, one aggregate query over match pairs joined to votes."""
    return list(
        MatchPair.objects.filter(pair__votes__isnull=False, **filters)
        .values(group_by)
        .annotate(votes=Count("pair__votes"), approvals=Count("pair__votes", filter=Q(pair__votes__dope=True)))
        .order_by()
    )


def leaderboard_cached() -> list[LeaderboardRow]:
    """The leaderboard as the API serves it: at most LEADERBOARD_SECONDS old, recomputed by one process."""
    return _revalidated(LEADERBOARD_CACHE_KEY, LEADERBOARD_SECONDS, leaderboard_rows)


def leaderboard_rows() -> list[LeaderboardRow]:
    """Ranked variants first (by approval rate; overlapping intervals share a rank group), provisional after."""
    totals = {row["variant_id"]: row for row in _vote_totals("variant_id")}
    new_since = timezone.now() - timedelta(days=settings.VSEARCH_NEW_DAYS)
    rows = []
    for variant in Variant.objects.filter(status=Variant.Status.READY):
        votes = totals.get(variant.pk, {}).get("votes", 0)
        approvals = totals.get(variant.pk, {}).get("approvals", 0)
        low, high = wilson(approvals, votes)
        rows.append(
            LeaderboardRow(
                variant_id=variant.pk,
                name=variant.name,
                description=variant.description,
                status=variant.rotation,
                votes=votes,
                approvals=approvals,
                approval_rate=approvals / votes if votes else None,
                ci_low=low,
                ci_high=high,
                provisional=votes < settings.VSEARCH_MIN_VOTES,
                is_new=bool(variant.ready_at and variant.ready_at >= new_since),
                p_at_1=variant.p_at_1,
            )
        )
    ranked = sorted((r for r in rows if not r.provisional), key=lambda r: (-r.approval_rate, -r.votes, r.name))
    provisional = sorted((r for r in rows if r.provisional), key=lambda r: (-r.votes, r.name))
    assign_rank_groups(ranked)
    return ranked + provisional


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
    for row in _vote_totals("query_item__category", variant=variant):
        low, high = wilson(row["approvals"], row["votes"])
        out.append(
            CategoryRow(
                row["query_item__category"], row["votes"], row["approvals"], row["approvals"] / row["votes"], low, high
            )
        )
    return sorted(out, key=lambda r: (-r.approval_rate, r.category))
