"""Why nope: one optional tap after a nope, sent with the vote's token; staff see the reasons per card and model."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from matching.models import MatchPair
from matching.services import variant_set_rotation
from tests.voting.conftest import next_card, vote
from voting import ledger
from voting.models import NopeReason, Vote


def reason(client, token, why="colour"):
    return client.post("/api/votes/reason", {"token": token, "reason": why}, format="json")


def noped(client) -> str:
    card = next_card(client)
    assert vote(client, card["token"], "nope").status_code == 201
    return card["token"]


def test_a_nope_gets_its_reason_and_a_second_tap_replaces_it(variants, alice):
    token = noped(alice)

    first = reason(alice, token, "colour")
    second = reason(alice, token, "pattern")

    assert first.status_code == 201 and first.json() == {"reason": "colour"}
    assert second.status_code == 201
    stored = NopeReason.objects.get()
    assert stored.reason == "pattern" and stored.vote == Vote.objects.get()


@pytest.mark.parametrize("why", ["ugly", "", "KIND", "colour; drop table"])
def test_an_unknown_reason_is_a_400_and_nothing_is_stored(variants, alice, why):
    token = noped(alice)
    answer = reason(alice, token, why)
    assert answer.status_code == 400 and answer.json()["detail"]
    assert not NopeReason.objects.exists()


@pytest.mark.parametrize("token", ["not-a-token", "x" * 501, "eyJ2IjoiYSJ9:forged:signature"])
def test_an_unknown_or_forged_token_is_a_400_and_nothing_is_stored(variants, alice, token):
    noped(alice)
    answer = reason(alice, token)
    assert answer.status_code == 400 and answer.json()["detail"]
    assert not NopeReason.objects.exists()


def test_a_card_that_was_served_but_not_voted_on_has_no_reason(variants, alice):
    noped(alice)
    unvoted = next_card(alice)["token"]

    answer = reason(alice, unvoted)

    assert answer.status_code == 404 and "no vote with this token" in answer.json()["detail"]
    assert not NopeReason.objects.exists()


def test_a_dope_has_no_reason(variants, alice):
    card = next_card(alice)
    vote(alice, card["token"], "dope")

    answer = reason(alice, card["token"])

    assert answer.status_code == 400 and "Only a nope" in answer.json()["detail"]
    assert not NopeReason.objects.exists()


def test_someone_elses_vote_gets_no_reason_from_me(variants, alice, bob):
    token = noped(alice)
    next_card(bob)
    answer = reason(bob, token)
    assert answer.status_code == 400 and "another voter" in answer.json()["detail"]
    assert not NopeReason.objects.exists()


def test_a_reason_after_the_window_is_a_409(variants, alice, settings):
    token = noped(alice)
    Vote.objects.update(created_at=timezone.now() - timedelta(seconds=settings.VSEARCH_NOPE_REASON_SECONDS + 1))

    answer = reason(alice, token)

    assert answer.status_code == 409 and not NopeReason.objects.exists()


def test_undoing_the_nope_takes_its_reason_with_it(variants, alice):
    token = noped(alice)
    reason(alice, token)
    assert alice.post("/api/votes/undo", format="json").status_code == 200
    assert not NopeReason.objects.exists()
    assert reason(alice, token).status_code == 404


def test_a_reason_needs_the_csrf_header_like_a_vote(variants, alice):
    token = noped(alice)
    stranger = APIClient(enforce_csrf_checks=True)
    stranger.cookies = alice.cookies  # the voter's cookies, but a third-party page cannot read the CSRF token
    answer = stranger.post("/api/votes/reason", {"token": token, "reason": "kind"}, format="json")
    assert answer.status_code == 403 and not NopeReason.objects.exists()


def test_staff_see_the_reasons_per_card_on_compare_and_per_model_on_examples(variants, alice, bob, staff, client):
    histogram = variants[0]
    for voter_client, why in ((alice, "colour"), (bob, "kind")):
        for _ in range(4):
            token = noped(voter_client)
            reason(voter_client, token, why)
    votes = list(Vote.objects.filter(nope_reason__isnull=False).select_related("nope_reason"))
    card = votes[0].pair_id
    query = MatchPair.objects.filter(pair_id=card).first().query_item_id

    compared = staff.get("/api/compare", {"item": query}).json()

    expected = {}
    for v in votes:
        if v.pair_id == card:
            expected[v.nope_reason.reason] = expected.get(v.nope_reason.reason, 0) + 1
    shown = [m for c in compared["columns"] for m in c["matches"] if m["pair_id"] == card]
    assert shown and all(m["reasons"] == expected for m in shown)

    made = set(MatchPair.objects.filter(variant=histogram).values_list("pair_id", flat=True))
    per_model = {}
    for v in votes:
        if v.pair_id in made:
            per_model[v.nope_reason.reason] = per_model.get(v.nope_reason.reason, 0) + 1
    assert staff.get(f"/api/leaderboard/{histogram.pk}/examples").json()["reasons"] == per_model

    variant_set_rotation(variant=histogram, rotation="retired")
    ledger.fold()
    public = client.get(f"/api/leaderboard/{histogram.pk}/examples").json()
    assert public["reasons"] is None and all(e["reasons"] is None for e in public["approved"] + public["rejected"])
