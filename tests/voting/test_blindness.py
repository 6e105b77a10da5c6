"""Public data never tells which model made a card: frozen public snapshots, cheap-to-check identities, bounded
throttles, and votes that survive admin actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.db import transaction
from django.db.models import ProtectedError
from django.test import RequestFactory
from django.utils import timezone

from matching.models import MatchPair, Variant
from matching.services import VariantProtected, variant_create, variant_delete
from tests.voting.conftest import add_votes, browser, next_card, vote
from voting.models import Vote
from voting.throttles import IPRateThrottle, address_block


def counts(body: dict) -> dict[int, int]:
    return {row["variant_id"]: row["votes"] for row in body["rows"]}


def test_a_vote_and_its_undo_move_no_public_number(variants, alice, client):
    before = client.get("/api/leaderboard").json()
    categories = [client.get(f"/api/leaderboard/{v.pk}/categories").json() for v in variants]

    card = next_card(alice)
    assert vote(alice, card["token"], "dope").status_code == 201
    during = client.get("/api/leaderboard").json()
    assert alice.post("/api/votes/undo", {}, format="json").status_code == 200

    assert counts(during) == counts(before) and during["as_of"] == before["as_of"] and during["live"] is False
    assert [client.get(f"/api/leaderboard/{v.pk}/categories").json() for v in variants] == categories


def test_staff_see_the_vote_at_once(variants, alice, staff):
    card = next_card(alice)
    vote(alice, card["token"], "dope")

    body = staff.get("/api/leaderboard").json()

    assert body["live"] is True and sum(counts(body).values()) >= 1
    assert staff.get("/api/leaderboard?view=public").json()["live"] is False


def test_the_public_snapshot_counts_only_votes_cast_before_the_previous_window(variants, client, settings):
    settings.VSEARCH_PUBLIC_SNAPSHOT_SECONDS = 600
    histogram = variants[0]
    add_votes(histogram, dope=5, nope=5)
    old, recent = list(Vote.objects.order_by("id")[:6]), list(Vote.objects.order_by("id")[6:])
    Vote.objects.filter(pk__in=[v.pk for v in old]).update(created_at=timezone.now() - timedelta(minutes=25))
    Vote.objects.filter(pk__in=[v.pk for v in recent]).update(created_at=timezone.now() - timedelta(minutes=5))

    body = client.get("/api/leaderboard").json()

    assert counts(body)[histogram.pk] == 6  # 25 minutes old: in; 5 minutes old: not yet
    assert body["next_update"] > body["as_of"]


def test_the_public_leaderboard_is_throttled_and_cacheable(variants, client, monkeypatch):
    monkeypatch.setitem(IPRateThrottle.THROTTLE_RATES, "leaderboard", "3/min")

    statuses = [client.get("/api/leaderboard").status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]
    assert client.get("/api/leaderboard").json()["detail"].startswith("Request was throttled")


def test_public_answers_may_be_cached_but_staff_answers_may_not(variants, client, staff):
    public, live = client.get("/api/leaderboard"), staff.get("/api/leaderboard")

    assert "public" in public["Cache-Control"] and "Cookie" in public["Vary"]
    assert "no-store" in live["Cache-Control"]


@pytest.mark.parametrize(
    ("address", "block"),
    [
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_ipv6_clients_are_counted_per_64(address, block):
    assert address_block(address) == block


def test_rotating_addresses_within_one_ipv6_64_does_not_escape_the_limit(variants, monkeypatch):
    monkeypatch.setitem(IPRateThrottle.THROTTLE_RATES, "votes_ip", "5/min")
    statuses = []
    for i in range(8):
        voter = browser()
        card = next_card(voter)
        statuses.append(vote(voter, card["token"], REMOTE_ADDR=f"2001:db8:7:7::{i + 1:x}").status_code)

    assert statuses.count(201) == 5 and statuses.count(429) == 3


def test_with_redis_down_each_process_still_throttles(monkeypatch):
    from voting import throttles

    class DownCache:
        def hit_many(self, windows):
            return None  # what ResilientRedisCache answers while Redis is unreachable

    monkeypatch.setattr(throttles, "cache", DownCache())
    throttle = IPRateThrottle()
    throttle.rate, throttle.num_requests, throttle.duration = "3/min", 3, 60
    request = RequestFactory().post("/api/votes", REMOTE_ADDR="198.51.100.9")

    waits = [throttles.check_all([throttle], request, None) for _ in range(5)]

    assert [bool(w) for w in waits] == [False, False, False, True, True]


# ---------------------------------------------------------------------------------------- votes survive


def test_a_variant_with_votes_cannot_be_deleted_and_its_votes_stay_on_the_leaderboard(variants, staff):
    histogram = variants[0]
    add_votes(histogram, dope=3, nope=1)

    with pytest.raises(VariantProtected, match="4 votes on its cards"):
        variant_delete(variant=histogram)
    with pytest.raises(ProtectedError), transaction.atomic():
        histogram.delete()  # no code path gets around it

    assert Variant.objects.filter(pk=histogram.pk).exists()
    assert counts(staff.get("/api/leaderboard").json())[histogram.pk] == 4


def test_the_admin_refuses_to_delete_a_variant_with_votes_and_says_why(variants, admin_client):
    histogram, random_pairs = variants
    add_votes(histogram, dope=1, nope=0)
    MatchPair.objects.filter(variant=random_pairs, pair__in=Vote.objects.values("pair")).delete()

    page = admin_client.get(f"/admin/matching/variant/{histogram.pk}/delete/")
    refused = admin_client.post(f"/admin/matching/variant/{histogram.pk}/delete/", {"post": "yes"})
    allowed = admin_client.post(f"/admin/matching/variant/{random_pairs.pk}/delete/", {"post": "yes"})

    assert b"retire it instead" in page.content
    assert refused.status_code in (200, 403) and Variant.objects.filter(pk=histogram.pk).exists()
    assert allowed.status_code == 302 and not Variant.objects.filter(pk=random_pairs.pk).exists()
    assert site.is_registered(Variant)


def test_a_variant_without_votes_can_be_deleted(demo_catalog):
    variant = variant_create(metric="random", k=1)

    variant_delete(variant=variant)

    assert not Variant.objects.filter(pk=variant.pk).exists()


def test_staff_see_each_models_share_of_the_draws_and_the_public_never_does(variants, staff, client, settings):
    settings.VSEARCH_DESIGN = "balanced"  # the model behind on votes gets more of the draws
    histogram, random_pairs = variants
    add_votes(histogram, dope=150, nope=150)

    live = {r["variant_id"]: r["draw_share"] for r in staff.get("/api/leaderboard").json()["rows"]}
    public = client.get("/api/leaderboard").json()["rows"]

    assert sum(live.values()) == pytest.approx(1.0) and live[random_pairs.pk] > live[histogram.pk]
    assert public and all(row.get("draw_share") is None for row in public)
