"""Serving cards: blind, balanced, never the same card twice, fast by construction."""

from __future__ import annotations

import base64
import json
import random
from collections import Counter

from django.db import connection
from django.test.utils import CaptureQueriesContext

from matching.models import MatchPair, Variant
from matching.services import variant_set_rotation
from tests.voting.conftest import add_votes, next_card, vote
from voting import sampling
from voting.models import Voter


def test_next_pair_shows_two_images_and_reveals_nothing_about_the_variant(variants, alice):
    response = alice.get("/api/pairs/next")

    body = response.json()
    assert set(body) == {"token", "query", "match", "votes_cast"}
    assert body["query"]["image"].startswith("/media/items/") and body["match"]["image"].startswith("/media/items/")
    text = response.content.decode()
    for variant in variants:
        assert variant.name not in text
    assert "variant" not in text.lower() and "histogram" not in text and "random" not in text
    # The token is signed, not encrypted: its readable part must not carry the card's database id either.
    payload = json.loads(base64.urlsafe_b64decode(body["token"].split(":")[0] + "=="))
    assert set(payload) == {"v", "p", "n", "t"}
    assert payload["p"] not in set(MatchPair.objects.values_list("pair_id", flat=True))


def test_the_images_behind_a_card_are_served(variants, alice):
    card = next_card(alice)

    response = alice.get(card["query"]["image"])

    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]


def test_a_new_voter_gets_a_signed_cookie_and_keeps_it(variants, alice):
    next_card(alice)
    next_card(alice)

    assert Voter.objects.count() == 1
    assert alice.cookies["vsearch_voter"]["httponly"]


def test_a_voter_never_sees_a_pair_twice_and_is_told_kindly_when_done(variants, alice):
    cards = MatchPair.objects.values("pair_id").distinct().count()
    seen = []
    for _ in range(cards):
        card = next_card(alice)
        assert "done" not in card
        assert vote(alice, card["token"], random.choice(["dope", "nope"])).status_code == 201
        seen.append((card["query"]["image"], card["match"]["image"]))

    final = next_card(alice)

    assert len(set(seen)) == cards
    assert final["done"] is True and "every pair" in final["detail"] and final["votes_cast"] == cards


def test_without_a_ready_variant_the_api_says_so_with_503(demo_catalog, alice):
    response = alice.get("/api/pairs/next")

    assert response.status_code == 503
    assert "No model is ready yet" in response.json()["detail"]


def test_equal_vote_counts_give_every_variant_a_similar_share_of_draws(variants):
    voter = Voter.objects.create()
    by_pair = {}
    for variant_id, pair_id in MatchPair.objects.values_list("variant_id", "pair_id"):
        by_pair.setdefault(pair_id, set()).add(variant_id)
    rng = random.Random(1)

    draws = Counter()
    for _ in range(400):
        card = sampling.pair_next_for(voter=voter, rng=rng)
        for variant_id in by_pair[card.pair_id]:
            draws[variant_id] += 1

    shares = [draws[v.pk] / 400 for v in variants]
    assert all(0.4 <= share <= 0.6 for share in shares), shares


def test_a_variant_that_is_behind_on_votes_is_favoured_until_it_catches_up(variants):
    leader, newcomer = variants
    add_votes(leader, dope=20, nope=20)
    voter = Voter.objects.create()
    newcomer_pairs = set(MatchPair.objects.filter(variant=newcomer).values_list("pair_id", flat=True))
    rng = random.Random(2)

    hits = sum(sampling.pair_next_for(voter=voter, rng=rng).pair_id in newcomer_pairs for _ in range(200))

    assert hits >= 195  # weights 1 : 1/41^2 -> the leader is drawn about once in 1,700


def test_a_paused_variant_leaves_the_rotation(variants):
    active, paused = variants
    variant_set_rotation(variant=paused, rotation=Variant.Rotation.PAUSED)
    voter = Voter.objects.create()
    paused_only = set(MatchPair.objects.filter(variant=paused).values_list("pair_id", flat=True)) - set(
        MatchPair.objects.filter(variant=active).values_list("pair_id", flat=True)
    )

    drawn = {sampling.pair_next_for(voter=voter, rng=random.Random(i)).pair_id for i in range(100)}

    assert not drawn & paused_only


def test_picking_a_card_takes_a_constant_number_of_indexed_queries(variants):
    voter = Voter.objects.create()
    sampling.pair_next_for(voter=voter, rng=random.Random(0))  # warm the rotation cache

    with CaptureQueriesContext(connection) as queries:
        sampling.pair_next_for(voter=voter, rng=random.Random(3))

    sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
    assert len(queries.captured_queries) <= 4
    assert "RANDOM()" not in sql and "OFFSET" not in sql
