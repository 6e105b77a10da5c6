"""Which card a voter sees next, blind: now and then a gold card (mostly among a voter's first cards), otherwise
a model drawn from the rotation by the serving design (voting.allocation) and one of its cards the voter has not
voted on, drawn uniformly. Every card carries the probability it had of being drawn. Fast at 1M rows: a few
indexed reads, no ORDER BY RANDOM() scan.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, Q

from matching.models import Item, MatchPair, Pair, Variant
from matching.storage import media_url
from voting import allocation, design, ledger
from voting.models import GoldCard, Vote, Voter
from vsearch_site.cache import ProcessMemo

ROTATION_CACHE_KEY = "voting:rotation"
GOLD_CACHE_KEY = "voting:gold-count"
ROTATION_SECONDS = 10  # a variant that becomes ready or is paused joins/leaves within this long at the latest
ATTEMPTS = 6  # random probes before the exhaustive (anti-join) look
GOLD_ATTEMPTS = 3  # random probes of the gold cards before a model's card is served instead
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


@dataclass(frozen=True)
class Next:
    card: Card | None  # None: the voter has judged every card of every model in the rotation
    past: History  # the voter's votes so far (the card's votes_cast)


def pair_next_for(*, voter: Voter, rng: random.Random | None = None) -> Card | None:
    """The voter's next card, or None when they have judged every card of every model in the rotation."""
    return card_next(voter=voter, rng=rng).card


def card_next(*, voter: Voter, rng: random.Random | None = None, drawn: Drawn | None = None) -> Next:
    """The voter's next card and their vote counts, in one statement (the look) in the common case: a gold card when
    one is due, else a model drawn by the serving design and one of its cards the voter has not voted on. `drawn`:
    draws made before a vote whose INSERT carried the look (voting.services.vote_record), its rows already read."""
    drawn = drawn if drawn is not None else draw(rng or random.Random())
    if drawn is None:
        return Next(None, history(voter))
    look = drawn.look if drawn.look is not None else first_look(voter, drawn)
    rng, variants, shares, pool, index = drawn.rng, drawn.variants, drawn.shares, list(drawn.variants), drawn.index
    if gold_due(look.past, rng):
        card = look.gold if look.gold is not None else _gold_card(voter, rng, attempts=GOLD_ATTEMPTS - 1)
        if card is not None:
            return Next(card, look.past)
    if look.pair_id is not None:
        return Next(_card_from(look.pair_id, look.images, look.makers, variants, shares), look.past)
    # The first probe found only cards the voter has judged: the rest of the probes, then the exhaustive look.
    chosen = pool[index]
    while pool:
        pair_id = _probe(voter, chosen, rng, attempts=ATTEMPTS - 1) or _exhaustive(voter, chosen.variant_id, rng)
        if pair_id is not None:
            return Next(_card(pair_id, variants, shares), look.past)
        pool.pop(index)  # this voter has judged every card of this variant
        if pool:
            index = _draw(pool, shares, rng)
            chosen = pool[index]
    return Next(None, look.past)


@dataclass
class Drawn:
    """The random draws behind the next card, made before its statement runs: the model (by the serving design) and
    PROBE positions among its cards, PROBE among the gold cards. `look` is filled by whichever statement carried
    the look (a vote's INSERT, voting.services); `skip_pair` is a card that statement must not offer (the one just
    voted on, which its snapshot does not show as voted)."""

    rng: random.Random
    variants: list[Rotating]
    shares: dict[int, float]
    index: int
    seqs: list[int]
    gold_seqs: list[int] | None
    skip_pair: int = 0
    look: Look | None = None


def draw(rng: random.Random | None = None) -> Drawn | None:
    """The draws of the next card; None while no model is in the rotation."""
    rng = rng or random.Random()
    variants = rotation()
    if not variants:
        return None
    shares = design_shares(variants)
    index = _draw(variants, shares, rng)
    total = gold_count()
    return Drawn(
        rng, variants, shares, index, _seqs(variants[index].top + 1, rng), _seqs(total, rng) if total else None
    )


def _draw(pool: list[Rotating], shares: dict[int, float], rng: random.Random) -> int:
    return rng.choices(range(len(pool)), weights=[shares[v.variant_id] for v in pool])[0]


def _seqs(n: int, rng: random.Random) -> list[int]:
    """PROBE random positions in 0..n-1 (with repeats: the statement's text stays the same, so it can be prepared)."""
    return [rng.randrange(n) for _ in range(PROBE)]


@dataclass(frozen=True)
class Look:
    past: History
    pair_id: int | None  # the first of the model's probed cards the voter has not voted on, in probe order
    images: tuple[str, str] | None
    makers: tuple[int, ...]  # every variant that produced that card (the propensity's models)
    gold: Card | None  # likewise among the probed gold cards (asked only when there are gold cards)


def first_look(voter: Voter, drawn: Drawn) -> Look:
    """Run the look on its own (a card request, or after a vote whose statement could not carry it)."""
    sql, params = look_statement(voter.pk, drawn)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return look_read(cursor.fetchall())


def look_statement(voter_id: int | None, drawn: Drawn) -> tuple[str, list]:
    """One statement, three parts (UNION ALL): the voter's vote counts; the first of the drawn positions among the
    model's cards that the voter has not voted on, with its images and every variant that made it; the same among
    the gold cards. Profiling showed the ORM's three to five queries per card cost more CPU in Python than
    PostgreSQL spent running them (docs/BENCHMARKS.md, vote path). Rows: (part, pair, query image, match image,
    count or maker, gold count or answer)."""
    # voter_id is None for a voter with no row yet: no vote matches, the counts are 0.
    seqs = drawn.seqs
    params: list = [voter_id, drawn.variants[drawn.index].variant_id, *seqs, drawn.skip_pair, voter_id, *seqs]
    if drawn.gold_seqs is not None:
        params += [*drawn.gold_seqs, drawn.skip_pair, voter_id, *drawn.gold_seqs]
    return _first_look_sql(drawn.gold_seqs is not None), params


def look_read(rows, *, added: History = History(0, 0)) -> Look:
    """The look's rows as a Look; `added`: votes the statement stored itself, which its counts do not see."""
    past, pair_id, images, makers, gold = added, None, None, [], None
    for part, pair, query, match, n, g in rows:
        if part == 0:
            past = History(int(n) + added.votes, int(g) + added.gold)
        elif part == 1:
            pair_id, images = pair, (query, match)
            makers.append(int(n))
        elif part == 2:
            gold = Card(pair, media_url(query), media_url(match), gold=g == 1)
    return Look(past, pair_id, images, tuple(makers), gold)


@functools.cache
def _first_look_sql(with_gold: bool) -> str:
    """The statement's text, built once per process from the models' tables (the same on PostgreSQL and SQLite)."""
    qn = connection.ops.quote_name
    vote, matchpair = qn(Vote._meta.db_table), qn(MatchPair._meta.db_table)
    pair, item, goldcard = qn(Pair._meta.db_table), qn(Item._meta.db_table), qn(GoldCard._meta.db_table)
    marks = ", ".join(["%s"] * PROBE)
    order = " ".join(f"WHEN %s THEN {i}" for i in range(PROBE))

    # The images as scalar subqueries rather than joins: fewer join orders for the planner to weigh (its planning
    # took longer than running the statement; prepared statements skip it altogether).
    images = (
        f"(SELECT image FROM {item} WHERE id = p.query_item_id), (SELECT image FROM {item} WHERE id = p.match_item_id)"
    )

    unvoted = f"NOT EXISTS (SELECT 1 FROM {vote} v WHERE v.voter_id = %s AND v.pair_id = c0.pair_id)"
    sql = (
        f"SELECT 0, NULL, NULL, NULL, COUNT(*), COUNT(gold) FROM {vote} WHERE voter_id = %s"
        " UNION ALL "
        f"SELECT 1, c.pair_id, {images}, m.variant_id, NULL FROM ("
        f"SELECT c0.pair_id AS pair_id FROM {matchpair} c0 WHERE c0.variant_id = %s AND c0.seq IN ({marks}) "
        f"AND c0.pair_id <> %s AND {unvoted} ORDER BY CASE c0.seq {order} END LIMIT 1) c "
        f"JOIN {pair} p ON p.id = c.pair_id JOIN {matchpair} m ON m.pair_id = c.pair_id"
    )
    if with_gold:
        copy = GoldCard.Kind.COPY.value
        sql += (
            " UNION ALL "
            f"SELECT 2, c.pair_id, {images}, NULL, CASE WHEN c.kind = '{copy}' THEN 1 ELSE 0 END FROM ("
            f"SELECT c0.pair_id AS pair_id, c0.kind AS kind FROM {goldcard} c0 WHERE c0.seq IN ({marks}) "
            f"AND c0.pair_id <> %s AND {unvoted} ORDER BY CASE c0.seq {order} END LIMIT 1) c "
            f"JOIN {pair} p ON p.id = c.pair_id"
        )
    return sql


def _unvoted(voter: Voter, queryset):
    if voter.pk is None:
        return queryset
    return queryset.exclude(pair_id__in=Vote.objects.filter(voter_id=voter.pk).values("pair_id"))


def _probe(voter: Voter, variant: Rotating, rng: random.Random, *, attempts: int = ATTEMPTS) -> int | None:
    """PROBE random seq numbers of the variant in one indexed read; the first, in random order, that the voter
    has not voted on: a uniform draw among the voter's unvoted cards of that variant."""
    for _ in range(attempts):
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
    rows = list(
        MatchPair.objects.filter(pair_id=pair_id).values_list(
            "variant_id", "pair__query_item__image", "pair__match_item__image"
        )
    )
    _, query, match = rows[0]
    return _card_from(pair_id, (query, match), [variant_id for variant_id, _, _ in rows], variants, shares)


def _card_from(pair_id: int, images: tuple[str, str], makers, variants: list[Rotating], shares) -> Card:
    """A model's card with its propensity: over the models of the rotation that produced it."""
    cards = {v.variant_id: v.cards for v in variants}
    makers = [m for m in makers if m in cards]
    query, match = images
    return Card(
        pair_id, media_url(query), media_url(match), propensity=allocation.card_propensity(makers, shares, cards)
    )


def gold_count() -> int:
    """How many gold cards there are (seq runs 0..count-1): this process's memo, then Redis, then the table."""
    count = memo.get(GOLD_CACHE_KEY)
    if count is None:
        count = cache.get(GOLD_CACHE_KEY)
        if count is None:
            count = GoldCard.objects.count()
            cache.set(GOLD_CACHE_KEY, count, 60)
        memo.put(GOLD_CACHE_KEY, count)
    return count


def _gold_card(voter: Voter, rng: random.Random, *, attempts: int = GOLD_ATTEMPTS) -> Card | None:
    """A random gold card the voter has not voted on (drawn like a model's card: random seq numbers, one read)."""
    total = gold_count()
    if not total:
        return None
    for _ in range(attempts):
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
