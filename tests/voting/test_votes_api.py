"""Recording votes: exactly once, only with a token served to this voter, CSRF-protected, throttled."""

from __future__ import annotations

import time

import pytest
from django.core import signing
from rest_framework.test import APIClient

from matching.models import MatchPair, Pair
from tests.voting.conftest import browser, items_pair, next_card, vote
from voting.models import Vote, Voter
from voting.throttles import IPRateThrottle, VoterRateThrottle
from voting.tokens import token_issue


def test_a_vote_is_stored_with_verdict_voter_and_display_time(variants, alice):
    card = next_card(alice)

    response = vote(alice, card["token"], "nope", shown_ms=1200)

    assert response.status_code == 201
    body = response.json()
    assert (body["votes_cast"], body["undo_seconds"]) == (1, 30)
    assert set(body["next"]) == {"token", "query", "match", "votes_cast"}  # one round trip: the next card comes along
    stored = Vote.objects.get()
    assert stored.dope is False and stored.voter == Voter.objects.get()
    assert 0 <= stored.shown_ms <= 1200


def test_a_second_vote_on_the_same_pair_is_409_and_nothing_changes(variants, alice):
    card = next_card(alice)
    vote(alice, card["token"], "dope")
    voter = Voter.objects.get()
    pair_id = Vote.objects.get().pair_id
    another_token = token_issue(voter_key=voter.uuid.hex, pair_id=pair_id)

    response = vote(alice, another_token, "nope")

    assert response.status_code == 409
    assert "already voted" in response.json()["detail"]
    assert list(Vote.objects.values_list("dope", flat=True)) == [True]


def test_posting_the_same_token_again_is_a_replay_that_stores_nothing_new(variants, alice):
    card = next_card(alice)

    first = vote(alice, card["token"], "dope")
    retry = vote(alice, card["token"], "dope")

    assert first.status_code == retry.status_code == 201
    assert Vote.objects.count() == 1


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),  # altered signature
        lambda t: signing.dumps({"v": 1, "p": 1, "n": "x", "t": 0}, salt="something-else"),  # forged
        lambda t: "not-a-token",
    ],
)
def test_a_forged_or_altered_token_is_400_and_nothing_is_stored(variants, alice, mangle):
    card = next_card(alice)

    response = vote(alice, mangle(card["token"]))

    assert response.status_code == 400
    assert "not valid" in response.json()["detail"]
    assert Vote.objects.count() == 0


def test_an_expired_token_is_400(variants, alice, settings, monkeypatch):
    settings.VSEARCH_TOKEN_MAX_AGE = 60
    card = next_card(alice)
    later = time.time() + 120
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)

    response = vote(alice, card["token"])

    assert response.status_code == 400
    assert "expired" in response.json()["detail"]
    assert Vote.objects.count() == 0


def test_a_token_served_to_someone_else_is_400(variants, alice, bob):
    card = next_card(alice)
    next_card(bob)

    response = vote(bob, card["token"])

    assert response.status_code == 400
    assert "another voter" in response.json()["detail"]
    assert Vote.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [{"verdict": "dope"}, {"token": "x", "verdict": "maybe"}, {"token": "x", "verdict": "dope", "shown_ms": -5}],
)
def test_malformed_vote_bodies_are_400_with_a_message(variants, alice, body):
    next_card(alice)

    response = alice.post("/api/votes", body, format="json")

    assert response.status_code == 400
    assert response.json()["detail"]
    assert Vote.objects.count() == 0


def test_a_vote_without_the_csrf_token_is_refused_even_for_anonymous_voters(variants, alice):
    card = next_card(alice)
    forger = APIClient(enforce_csrf_checks=True)
    forger.cookies = alice.cookies  # a third-party page rides on the visitor's cookies, without the header

    response = forger.post("/api/votes", {"token": card["token"], "verdict": "dope"}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert Vote.objects.count() == 0


def test_voting_too_fast_is_429_and_the_extra_votes_are_not_stored(variants, alice, monkeypatch):
    monkeypatch.setitem(VoterRateThrottle.THROTTLE_RATES, "votes", "3/min")
    statuses = []
    for _ in range(5):
        statuses.append(vote(alice, next_card(alice)["token"]).status_code)

    assert statuses == [201, 201, 201, 429, 429]
    assert Vote.objects.count() == 3


def test_clearing_the_cookie_does_not_escape_the_per_ip_limit(variants, monkeypatch):
    monkeypatch.setitem(IPRateThrottle.THROTTLE_RATES, "votes_ip", "4/min")
    statuses = []
    for _ in range(6):
        fresh = browser()  # a new anonymous voter each time, same IP
        statuses.append(vote(fresh, next_card(fresh)["token"]).status_code)

    assert statuses.count(201) == 4 and statuses[-1] == 429


def test_rotating_x_forwarded_for_does_not_escape_the_per_ip_limit(variants, monkeypatch):
    monkeypatch.setitem(IPRateThrottle.THROTTLE_RATES, "votes_ip", "2/min")
    statuses = []
    for i in range(4):
        fresh = browser()
        token = next_card(fresh)["token"]
        statuses.append(
            fresh.post(
                "/api/votes", {"token": token, "verdict": "dope"}, format="json", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}"
            ).status_code
        )

    assert statuses == [201, 201, 429, 429]


def test_undo_removes_the_last_vote_and_brings_its_card_back(variants, alice):
    card = next_card(alice)
    vote(alice, card["token"])

    response = alice.post("/api/votes/undo", {}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["votes_cast"] == 0 and Vote.objects.count() == 0
    assert (body["query"], body["match"]) == (card["query"], card["match"])
    assert vote(alice, body["token"], "nope").status_code == 201


def test_undo_after_the_window_is_409_and_keeps_the_vote(variants, alice, settings):
    settings.VSEARCH_UNDO_SECONDS = 0
    vote(alice, next_card(alice)["token"])
    time.sleep(0.01)

    response = alice.post("/api/votes/undo", {}, format="json")

    assert response.status_code == 409
    assert Vote.objects.count() == 1


def test_undo_with_nothing_to_undo_is_404(variants, alice):
    next_card(alice)

    response = alice.post("/api/votes/undo", {}, format="json")

    assert response.status_code == 404
    assert response.json()["detail"] == "There is no vote to undo."


def test_a_card_made_by_two_variants_is_one_card_and_its_vote_counts_for_both(variants, demo_catalog, alice, staff):
    first, second = variants
    shared = items_pair(demo_catalog[0], demo_catalog[1])
    for variant in (first, second):
        MatchPair.objects.filter(variant=variant).delete()
        MatchPair.objects.create(variant=variant, pair=shared, query_item=demo_catalog[0], rank=0, distance=0.1, seq=0)

    card = next_card(alice)
    assert vote(alice, card["token"], "dope").status_code == 201
    assert next_card(alice)["done"] is True  # one card, not two

    rows = {row["variant_id"]: row for row in staff.get("/api/leaderboard").json()["rows"]}
    assert rows[first.pk]["votes"] == rows[second.pk]["votes"] == 1
    assert rows[first.pk]["approvals"] == rows[second.pk]["approvals"] == 1
    assert Pair.objects.filter(pk=shared.pk).count() == 1


def test_a_vote_answers_with_the_next_card_which_can_be_voted_on_without_another_request(variants, alice):
    card = next_card(alice)
    cards = MatchPair.objects.values("pair_id").distinct().count()
    seen = 1
    answer = vote(alice, card["token"], "dope").json()
    while "token" in answer["next"]:
        assert answer["next"]["votes_cast"] == seen
        answer = vote(alice, answer["next"]["token"], "nope").json()
        seen += 1

    assert seen == cards and answer["next"]["done"] is True
    assert Vote.objects.count() == cards
