"""Gold cards: known answers that measure voters, served like any card, never counted for a model."""

from __future__ import annotations

import random

import pytest
from PIL import Image

from matching.models import Item, MatchPair
from matching.storage import media_path
from tests.voting.conftest import next_card, vote
from voting import sampling
from voting.models import GoldCard, Vote, Voter
from voting.services import gold_cards_ensure


@pytest.fixture
def gold(variants):
    assert gold_cards_ensure(count=20, seed=1) == 20
    return list(GoldCard.objects.select_related("pair__query_item", "pair__match_item"))


def test_known_dopes_pair_an_item_with_an_altered_copy_stored_like_a_catalog_image(gold):
    copies = [g for g in gold if g.kind == GoldCard.Kind.COPY]

    assert len(copies) == 10
    for card in copies:
        original, copy = card.pair.query_item, card.pair.match_item
        assert copy.role == Item.Role.GOLD_COPY and original.role == Item.Role.CATALOG
        assert copy.image.startswith("items/") and copy.sha256 != original.sha256
        assert copy.category == original.category and card.expected is True
        with Image.open(media_path(copy.image)) as a, Image.open(media_path(original.image)) as b:
            assert a.size == b.size


def test_known_nopes_pair_items_of_different_categories(gold):
    others = [g for g in gold if g.kind == GoldCard.Kind.OTHER]

    assert len(others) == 10
    assert all(g.pair.query_item.category != g.pair.match_item.category and g.expected is False for g in others)


def test_gold_copies_never_enter_the_catalog_features_or_matches(gold, variants):
    copies = {g.pair.match_item_id for g in gold if g.kind == GoldCard.Kind.COPY}

    assert not copies & set(Item.objects.values_list("id", flat=True))
    assert not copies & set(MatchPair.objects.values_list("pair__match_item_id", flat=True))
    assert Item.everything.filter(pk__in=copies).count() == len(copies)


def test_gold_cards_fill_about_three_of_the_first_ten_cards_and_one_in_fifteen_after(gold, settings):
    rng = random.Random(3)
    # The first card is gold 3 times in 10; once the quota can only just be met, gold is certain; once met, none.
    first = sum(sampling.gold_due(sampling.History(votes=0, gold=0), rng) for _ in range(10_000))
    assert 2800 <= first <= 3200
    assert sampling.gold_due(sampling.History(votes=7, gold=0), rng)  # 3 still wanted in the last 3
    assert not sampling.gold_due(sampling.History(votes=5, gold=3), rng)  # the quota is met
    later = sum(sampling.gold_due(sampling.History(votes=100, gold=5), rng) for _ in range(15_000))
    assert 850 <= later <= 1150  # 1/15 of 15,000 = 1,000


def test_a_simulated_voter_meets_three_gold_cards_in_the_first_ten(gold, alice):
    served_gold = 0
    for _ in range(10):
        card = next_card(alice)
        assert set(card) == {"token", "query", "match", "votes_cast"}  # gold looks like every other card
        assert vote(alice, card["token"], "nope").status_code == 201
        served_gold += Vote.objects.latest("id").gold is not None

    assert served_gold == 3


def test_votes_on_gold_cards_never_count_for_a_model(gold, variants, staff):
    known_nope = next(g for g in gold if g.kind == GoldCard.Kind.OTHER)
    # The same pair is also a card of the random control (it may have drawn it already, by item ids): served as
    # gold, its vote must not count for it.
    MatchPair.objects.get_or_create(
        variant=variants[1],
        pair=known_nope.pair,
        defaults={"query_item": known_nope.pair.query_item, "rank": 99, "distance": 0, "seq": 99_999},
    )
    voter = Voter.objects.create()
    Vote.objects.create(voter=voter, pair=known_nope.pair, dope=True, token_id="g1", gold=False)

    rows = {r["variant_id"]: r for r in staff.get("/api/leaderboard").json()["rows"]}

    assert rows[variants[1].pk]["votes"] == 0


def test_gold_preparation_adds_only_what_is_missing(gold):
    assert gold_cards_ensure(count=20, seed=1) == 0
    assert gold_cards_ensure(count=24, seed=1) == 4
    assert sorted(GoldCard.objects.values_list("seq", flat=True)) == list(range(24))
