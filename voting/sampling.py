"""Which card a voter sees next: a variant drawn from the rotation (favouring those behind on votes), then an
unvoted card of it read by (variant, seq) index from a random offset. Fast at 1M rows, and blind."""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Exists, Max, OuterRef

from matching.models import MatchPair, Pair, Variant
from matching.storage import media_url
from voting.models import Vote, Voter
from voting.tallies import TALLIES_CACHE_KEY, Tally, variant_tallies_cached
from vsearch_site.cache import ProcessMemo

ROTATION_CACHE_KEY = "voting:rotation"
ROTATION_SECONDS = 10  # a variant that becomes ready or is paused joins/leaves within this long at the latest
ATTEMPTS = 6  # random probes before the exhaustive (anti-join) look
PROBE = 16  # consecutive seq rows read per probe
# Each web process reuses the rotation and the tallies this long before asking Redis (a round trip per card
# cost more than the card's own query under load).
memo = ProcessMemo(seconds=2.0)


def rotation() -> list[tuple[int, int]]:
    """(variant id, highest seq) of every ready, active variant with pairs."""
    rows = memo.get(ROTATION_CACHE_KEY)
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
    memo.put(ROTATION_CACHE_KEY, rows)
    return rows


def rotation_forget(**signal_kwargs) -> None:
    """The rotation changed (matching.signals.rotation_changed): drop what this process and Redis cached."""
    memo.clear()
    cache.delete_many([ROTATION_CACHE_KEY, TALLIES_CACHE_KEY])


def _tallies() -> dict[int, Tally]:
    tallies = memo.get(TALLIES_CACHE_KEY)
    if tallies is None:
        tallies = variant_tallies_cached()
        memo.put(TALLIES_CACHE_KEY, tallies)
    return tallies


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
    tallies = _tallies()
    pool = list(variants)
    while pool:
        weights = _weights([tallies.get(v, Tally(0, 0)).votes for v, _ in pool])
        index = rng.choices(range(len(pool)), weights=weights)[0]
        variant_id, top = pool[index]
        card = _probe(voter, variant_id, top, rng)
        if card is not None:
            return card
        pair_id = _exhaustive(voter, variant_id, rng)
        if pair_id is not None:
            return card_of(pair_id)
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
            return Card(pair_id, media_url(query), media_url(match))
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


def card_of(pair_id: int) -> Card:
    """The card of a pair (after an undo, the card that comes back)."""
    query, match = Pair.objects.filter(pk=pair_id).values_list("query_item__image", "match_item__image").get()
    return Card(pair_id, media_url(query), media_url(match))
