"""Which card a voter sees next, blind: now and then a gold card (mostly among a voter's first cards), otherwise
a model drawn from the rotation by the serving design (voting.allocation) and one of its cards the voter has not
voted on, drawn uniformly. Every card carries the probability it had of being drawn. Fast at 1M rows: a few
indexed reads, no ORDER BY RANDOM() scan.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q

from matching.models import MatchPair, Pair, Variant
from matching.storage import media_url
from voting import allocation, design, ledger
from voting.models import GoldCard, Vote, Voter
from vsearch_site.cache import ProcessMemo

ROTATION_CACHE_KEY = "voting:rotation"
GOLD_CACHE_KEY = "voting:gold-count"
ROTATION_SECONDS = 10  # a variant that becomes ready or is paused joins/leaves within this long at the latest
ATTEMPTS = 6  # random probes before the exhaustive (anti-join) look
PROBE = 16  # random seq numbers read per probe
# Each web process reuses the rotation and the tallies this long before asking Redis (a round trip per card
# cost more than the card's own query under load).
memo = ProcessMemo(seconds=2.0)


@dataclass(frozen=True)
class Rotating:
    variant_id: int
    top: int  # highest seq
    cards: int  # match pairs


@dataclass(frozen=True)
class Card:
    pair_id: int
    query_image: str
    match_image: str
    propensity: float | None = None  # P(drawn) under the design, for a model's card
    gold: bool | None = None  # a gold card's known answer; None for a model's card


@dataclass(frozen=True)
class History:
    votes: int
    gold: int


def rotation() -> list[Rotating]:
    """Every ready, active variant with pairs."""
    rows = memo.get(ROTATION_CACHE_KEY)
    if rows is not None:
        return rows
    rows = cache.get(ROTATION_CACHE_KEY)
    if rows is None:
        rows = [
            Rotating(v["id"], v["top"], v["cards"])
            for v in Variant.objects.filter(status=Variant.Status.READY, rotation=Variant.Rotation.ACTIVE)
            .annotate(top=Max("pairs__seq"), cards=Count("pairs"))
            .filter(top__isnull=False)
            .values("id", "top", "cards")
        ]
        cache.set(ROTATION_CACHE_KEY, rows, ROTATION_SECONDS)
    memo.put(ROTATION_CACHE_KEY, rows)
    return rows


def rotation_forget(*, variant_id: int | None = None, reason: str = "rotation", **signal_kwargs) -> None:
    """The rotation changed (matching.signals.rotation_changed): drop what this process and Redis cached; a model
    that has just been (re)built gets its tallies recounted, its pairs may be new."""
    if reason == "ready" and variant_id is not None:
        ledger.variant_recount(variant_id)
    memo.clear()
    design.forget()
    cache.delete_many([ROTATION_CACHE_KEY, design.DESIGN_CACHE_KEY, GOLD_CACHE_KEY])


def design_shares(variants: list[Rotating]) -> dict[int, float]:
    """P(a draw picks each model) under the serving design, from live internal numbers (never a public one)."""
    return design.current(tuple(v.variant_id for v in variants)).shares


def history(voter: Voter) -> History:
    """How many votes (and gold answers) the voter has cast: one query, none for a voter with no row yet."""
    if voter.pk is None:
        return History(0, 0)
    row = Vote.objects.filter(voter_id=voter.pk).aggregate(
        n=Count("id"), gold=Count("id", filter=Q(gold__isnull=False))
    )
    return History(row["n"], row["gold"])


def gold_due(past: History, rng: random.Random) -> bool:
    """Gold cards are frequent among a voter's first cards (VSEARCH_GOLD_IN_FIRST of the first
    VSEARCH_GOLD_FIRST_CARDS: a short qualification) and rare after (about 1 in VSEARCH_GOLD_EVERY)."""
    first, wanted = settings.VSEARCH_GOLD_FIRST_CARDS, settings.VSEARCH_GOLD_IN_FIRST
    if past.votes < first:
        chance = (wanted - past.gold) / (first - past.votes)
    else:
        chance = 1.0 / settings.VSEARCH_GOLD_EVERY if settings.VSEARCH_GOLD_EVERY else 0.0
    return rng.random() < chance


def pair_next_for(*, voter: Voter, rng: random.Random | None = None, past: History | None = None) -> Card | None:
    """The voter's next card, or None when they have judged every card of every model in the rotation."""
    rng = rng or random.Random()
    variants = rotation()
    if not variants:
        return None
    past = history(voter) if past is None else past
    if gold_due(past, rng):
        card = _gold_card(voter, rng)
        if card is not None:
            return card
    shares = design_shares(variants)
    pool = list(variants)
    while pool:
        index = rng.choices(range(len(pool)), weights=[shares[v.variant_id] for v in pool])[0]
        chosen = pool[index]
        pair_id = _probe(voter, chosen, rng) or _exhaustive(voter, chosen.variant_id, rng)
        if pair_id is not None:
            return _card(pair_id, variants, shares)
        pool.pop(index)  # this voter has judged every card of this variant
    return None


def _unvoted(voter: Voter, queryset):
    if voter.pk is None:
        return queryset
    return queryset.exclude(pair_id__in=Vote.objects.filter(voter_id=voter.pk).values("pair_id"))


def _probe(voter: Voter, variant: Rotating, rng: random.Random) -> int | None:
    """PROBE random seq numbers of the variant in one indexed read; the first, in random order, that the voter
    has not voted on: a uniform draw among the voter's unvoted cards of that variant."""
    for _ in range(ATTEMPTS):
        seqs = [rng.randint(0, variant.top) for _ in range(PROBE)]
        found = dict(
            _unvoted(voter, MatchPair.objects.filter(variant_id=variant.variant_id, seq__in=set(seqs))).values_list(
                "seq", "pair_id"
            )
        )
        for seq in seqs:
            if seq in found:
                return found[seq]
    return None


def _exhaustive(voter: Voter, variant_id: int, rng: random.Random) -> int | None:
    """The voter has seen most of this variant: look for any unvoted card (an index anti-join)."""
    unseen = _unvoted(voter, MatchPair.objects.filter(variant_id=variant_id)).order_by("seq")
    first = list(unseen.values_list("pair_id", flat=True)[:PROBE])
    return rng.choice(first) if first else None


def _card(pair_id: int, variants: list[Rotating], shares: dict[int, float]) -> Card:
    """The card with its images and propensity: the models of the rotation that produced it, one query."""
    cards = {v.variant_id: v.cards for v in variants}
    rows = list(
        MatchPair.objects.filter(pair_id=pair_id, variant_id__in=list(cards)).values_list(
            "variant_id", "pair__query_item__image", "pair__match_item__image"
        )
    )
    makers = [variant_id for variant_id, _, _ in rows]
    _, query, match = rows[0]
    return Card(
        pair_id, media_url(query), media_url(match), propensity=allocation.card_propensity(makers, shares, cards)
    )


def gold_count() -> int:
    count = cache.get(GOLD_CACHE_KEY)
    if count is None:
        count = GoldCard.objects.count()
        cache.set(GOLD_CACHE_KEY, count, 60)
    return count


def _gold_card(voter: Voter, rng: random.Random) -> Card | None:
    """A random gold card the voter has not voted on (drawn like a model's card: random seq numbers, one read)."""
    total = gold_count()
    if not total:
        return None
    for _ in range(3):
        seqs = [rng.randrange(total) for _ in range(PROBE)]
        rows = {
            seq: (pair_id, query, match, kind)
            for seq, pair_id, query, match, kind in _unvoted(
                voter, GoldCard.objects.filter(seq__in=set(seqs))
            ).values_list("seq", "pair_id", "pair__query_item__image", "pair__match_item__image", "kind")
        }
        for seq in seqs:
            if seq in rows:
                pair_id, query, match, kind = rows[seq]
                return Card(pair_id, media_url(query), media_url(match), gold=kind == GoldCard.Kind.COPY)
    return None


def card_of(pair_id: int, *, propensity: float | None = None, gold: bool | None = None) -> Card:
    """The card of a pair (after an undo, the card that comes back, as it was first served)."""
    query, match = Pair.objects.filter(pk=pair_id).values_list("query_item__image", "match_item__image").get()
    return Card(pair_id, media_url(query), media_url(match), propensity=propensity, gold=gold)
