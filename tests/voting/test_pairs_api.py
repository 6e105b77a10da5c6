"""Serving cards: blind, balanced, never the same card twice, fast by construction."""

from __future__ import annotations

import base64
import json
import random
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from matching.models import MatchPair, Variant
from matching.services import variant_set_rotation
from tests.voting.conftest import add_votes, next_card, vote
from voting import sampling
from voting.models import Voter
from voting.tokens import token_issue


def test_next_pair_shows_two_images_and_reveals_nothing_about_the_variant(variants, alice):
    response = alice.get("/api/pairs/next")

    body = response.json()
    assert set(body) == {"token", "query", "match", "votes_cast"}
    assert body["query"]["image"].startswith("/media/items/") and body["match"]["image"].startswith("/media/items/")
    text = response.content.decode()
    for variant in variants:
        assert variant.name not in text
    assert "variant" not in text.lower() and "histogram" not in text and "random" not in text
    # The token is signed; its readable part carries no card id, no gold flag, no propensity: those are encrypted.
    payload = json.loads(base64.urlsafe_b64decode(body["token"].split(":")[0] + "=="))
    assert set(payload) == {"v", "n", "t", "x"}
    pair_ids = set(MatchPair.objects.values_list("pair_id", flat=True))
    assert not {v for v in payload.values() if isinstance(v, int)} & pair_ids
    secret = base64.urlsafe_b64decode(payload["x"] + "==")
    assert int.from_bytes(secret[:8], "big", signed=True) not in pair_ids
    # The same card served twice looks different each time (a fresh nonce, a fresh keystream).
    card = sampling.Card(next(iter(pair_ids)), "", "")
    first, second = (token_issue(voter_key="v", pair_id=card.pair_id) for _ in range(2))
    assert (
        json.loads(base64.urlsafe_b64decode(first.split(":")[0] + "=="))["x"]
        != json.loads(base64.urlsafe_b64decode(second.split(":")[0] + "=="))["x"]
    )


def test_the_images_behind_a_card_are_served(variants, alice):
    card = next_card(alice)

    response = alice.get(card["query"]["image"])

    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]


def test_a_new_voter_gets_a_signed_cookie_and_keeps_it_but_no_row_until_the_first_vote(variants, alice):
    next_card(alice)
    cookie = alice.cookies["vsearch_voter"].value
    card = next_card(alice)

    assert Voter.objects.count() == 0  # fetching cards makes no identity
    assert alice.cookies["vsearch_voter"].value == cookie and alice.cookies["vsearch_voter"]["httponly"]

    assert vote(alice, card["token"], "dope").status_code == 201
    assert Voter.objects.count() == 1
    assert next_card(alice)["votes_cast"] == 1  # the cookie now names the row


def test_thirty_cookieless_card_requests_make_no_voter_rows(variants, client):
    for _ in range(30):
        client.cookies.clear()
        assert client.get("/api/pairs/next").status_code == 200

    assert Voter.objects.count() == 0


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


def test_equal_vote_counts_give_every_variant_a_similar_share_of_draws(variants, settings):
    settings.VSEARCH_DESIGN = "balanced"
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


def test_a_variant_that_is_behind_on_votes_is_favoured_but_never_takes_every_card(variants, settings):
    settings.VSEARCH_DESIGN = "balanced"
    leader, newcomer = variants
    add_votes(leader, dope=200, nope=200)
    voter = Voter.objects.create()
    leader_cards = set(MatchPair.objects.filter(variant=leader).values_list("pair_id", flat=True))
    newcomer_cards = set(MatchPair.objects.filter(variant=newcomer).values_list("pair_id", flat=True))
    newcomer_only, leader_only = newcomer_cards - leader_cards, leader_cards - newcomer_cards
    rng = random.Random(2)

    drawn = Counter()
    for _ in range(draws := 400):
        pair_id = sampling.pair_next_for(voter=voter, rng=rng).pair_id
        drawn["newcomer" if pair_id in newcomer_only else "leader" if pair_id in leader_only else "shared"] += 1

    # Far behind: the newcomer gets the most balancing allows (2x the uniform share, capped by the leader's
    # floor of 0.5x: 75% of draws), not every card. Its draws land on its own cards uniformly, so the share of
    # cards only it made is 0.75 x the fraction of its cards the leader did not also make (which depends on the
    # random control's draws, seeded by item ids); likewise 0.25 x for the leader.
    shares = sampling.design_shares(sampling.rotation())
    assert shares[newcomer.pk] == pytest.approx(0.75)
    for who, variant, only in (("newcomer", newcomer, newcomer_only), ("leader", leader, leader_only)):
        expected = shares[variant.pk] * len(only) / MatchPair.objects.filter(variant=variant).count()
        tolerance = 4 * (expected * (1 - expected) / draws) ** 0.5  # four binomial standard deviations
        assert abs(drawn[who] / draws - expected) <= tolerance, (who, drawn, expected)
    assert drawn["leader"] > 0


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
