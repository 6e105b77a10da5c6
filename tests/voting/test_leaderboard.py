"""The leaderboard: Wilson intervals, rank groups where intervals overlap, provisional variants last."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from matching.models import MatchPair
from matching.services import variant_create
from tests.voting.conftest import add_votes
from voting.leaderboard import leaderboard_rows
from voting.statistics import LeaderboardRow, assign_rank_groups, wilson


@pytest.mark.parametrize(
    ("approvals", "votes", "low", "high"),
    [  # hand-computed with z = 1.96: centre and half-width of the Wilson score interval
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (50, 100, 0.4038, 0.5962),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_bounds_match_hand_computed_values(approvals, votes, low, high):
    lower, upper = wilson(approvals, votes, 0.95)

    assert lower == pytest.approx(low, abs=1e-4) and upper == pytest.approx(high, abs=1e-4)


def test_no_votes_means_no_interval():
    assert wilson(0, 0) == (None, None)


def row(name: str, low: float, high: float, rate: float) -> LeaderboardRow:
    return LeaderboardRow(0, name, "", "active", 100, int(rate * 100), rate, low, high, False, False, None)


def test_variants_whose_intervals_overlap_share_a_rank_group():
    rows = [row("a", 0.70, 0.80, 0.75), row("b", 0.66, 0.76, 0.71), row("c", 0.40, 0.50, 0.45)]

    assign_rank_groups(rows)

    assert [(r.rank, r.rank_group) for r in rows] == [(1, "1–2"), (2, "1–2"), (3, "3")]


def test_leaderboard_ranks_by_approval_and_puts_provisional_variants_last(variants, settings, staff):
    settings.VSEARCH_MIN_VOTES = 20
    histogram, random_pairs = variants
    # Random pairs of another seed: few cards in common with the others, so its count stays its own.
    lonely = variant_create(metric="random", name="another random control", k=2, seed=99)
    add_votes(histogram, dope=30, nope=10)
    add_votes(random_pairs, dope=5, nope=35)
    add_votes(lonely, dope=3, nope=0)

    body = staff.get("/api/leaderboard").json()

    provisional = [r["provisional"] for r in body["rows"]]
    assert provisional == sorted(provisional)  # every ranked row before every provisional one
    by_name = {r["name"]: r for r in body["rows"]}
    top = by_name[histogram.name]
    assert top["rank"] == 1 and top["rank_group"] == "1" and top["provisional"] is False
    assert top["votes"] >= 40 and top["approval_rate"] == pytest.approx(top["approvals"] / top["votes"])
    assert top["ci_low"] < top["approval_rate"] < top["ci_high"]
    assert by_name[lonely.name]["provisional"] is True and by_name[lonely.name]["rank"] is None
    assert top["p_at_1"] == pytest.approx(histogram.p_at_1)
    assert by_name[random_pairs.name]["rank"] == 2
    assert body["confidence"] == 0.95 and body["min_votes"] == 20


def test_the_leaderboard_reads_a_constant_number_of_queries_however_many_votes(variants):
    from voting import ledger

    add_votes(variants[0], dope=50, nope=50)
    ledger.fold()

    with CaptureQueriesContext(connection) as few:
        leaderboard_rows()
    add_votes(variants[0], dope=500, nope=500)
    ledger.fold()
    with CaptureQueriesContext(connection) as many:
        rows = leaderboard_rows()

    # The fold cursor, the folded buckets, the votes since the last fold, the variants.
    assert len(few.captured_queries) == len(many.captured_queries) == 4
    assert {r.variant_id: r.votes for r in rows}[variants[0].pk] == 1100


def test_per_category_approval_for_a_variant(variants, staff):
    histogram = variants[0]
    add_votes(histogram, dope=6, nope=2)

    body = staff.get(f"/api/leaderboard/{histogram.pk}/categories").json()

    assert body["variant"] == histogram.name
    assert sum(r["votes"] for r in body["rows"]) >= 8
    assert all(0 <= r["ci_low"] <= r["approval_rate"] <= r["ci_high"] <= 1 for r in body["rows"])


def test_categories_of_an_unknown_variant_is_404_with_a_message(db, client):
    response = client.get("/api/leaderboard/999/categories")

    assert response.status_code == 404
    assert response.json()["detail"]


def test_leaderboard_and_swipe_pages_render(variants, client):
    assert b"leaderboard" in client.get("/leaderboard/").content.lower()
    page = client.get("/").content.decode()
    assert 'data-testid="card"' in page
    for variant in variants:
        assert variant.name not in page


def test_a_stale_leaderboard_is_served_at_once_while_another_process_recomputes_it(variants, settings):
    from django.core.cache import cache

    from voting import design, leaderboard, sampling, tallies

    settings.VSEARCH_TALLY_SECONDS = 5
    add_votes(variants[0], dope=3, nope=1)
    fresh = leaderboard.leaderboard_cached()
    rotation = tuple(v.variant_id for v in sampling.rotation())
    stale = design.Design(settings.VSEARCH_DESIGN, {variants[0].pk: tallies.Tally(votes=99, approvals=9)}, rotation, {})
    cache.set(design.DESIGN_CACHE_KEY, (0.0, stale), 3600)  # computed long ago
    cache.add(f"{design.DESIGN_CACHE_KEY}:lock", 1, 60)  # another process is on it

    assert {r.variant_id: r.votes for r in leaderboard.leaderboard_cached()}[variants[0].pk] == 99

    cache.delete(f"{design.DESIGN_CACHE_KEY}:lock")  # it died without a result: the next request recomputes
    assert [(r.name, r.votes) for r in leaderboard.leaderboard_cached()] == [(r.name, r.votes) for r in fresh]


def test_p_best_is_shown_for_the_models_in_play_and_a_clear_leader_is_decided(variants, staff):
    histogram, random_pairs = variants
    add_votes(histogram, dope=90, nope=10)
    add_votes(random_pairs, dope=20, nope=80)

    body = staff.get("/api/leaderboard").json()

    rows = {r["variant_id"]: r for r in body["rows"]}
    assert rows[histogram.pk]["p_best"] > 0.99 and rows[histogram.pk]["decided"] is True
    assert rows[random_pairs.pk]["decided"] is False
    assert sum(r["p_best"] for r in rows.values()) == pytest.approx(1.0, abs=1e-6)
    assert body["decision"]["status"] == "decided" and body["decision"]["leader"] == histogram.pk


def test_two_models_credibly_within_the_margin_are_practically_equivalent(variants, staff, settings):
    settings.VSEARCH_EQUIVALENCE_MARGIN = 0.1
    histogram, random_pairs = variants
    # Disjoint cards, so each model's votes are its own: equal approvals, many votes.
    MatchPair.objects.filter(
        variant=random_pairs, pair__in=MatchPair.objects.filter(variant=histogram).values("pair")
    ).delete()
    add_votes(histogram, dope=500, nope=500)
    add_votes(random_pairs, dope=500, nope=500)

    decision = staff.get("/api/leaderboard").json()["decision"]

    assert decision["status"] == "practically equivalent" and decision["p_within_margin"] >= 0.95


def test_an_undecided_race_says_how_many_more_votes_would_settle_it(variants, staff):
    histogram, random_pairs = variants
    MatchPair.objects.filter(
        variant=random_pairs, pair__in=MatchPair.objects.filter(variant=histogram).values("pair")
    ).delete()
    add_votes(histogram, dope=33, nope=27)
    add_votes(random_pairs, dope=27, nope=33)

    decision = staff.get("/api/leaderboard").json()["decision"]

    assert decision["status"] == "undecided" and decision["votes_to_separate"] > 100
    assert f"{decision['votes_to_separate']:,} more votes" in decision["explanation"]


def test_the_active_design_gives_the_leading_pair_most_draws_and_every_model_its_floor(demo_catalog, settings):
    from voting import design

    settings.VSEARCH_DESIGN = "active"
    built = [variant_create(metric="random", name=f"r{i}", k=2, seed=i) for i in range(4)]
    for variant, (dope, nope) in zip(built, [(80, 20), (75, 25), (40, 60), (30, 70)], strict=True):
        add_votes(variant, dope=dope, nope=nope)

    shares = design.compute(tuple(v.pk for v in built)).shares

    assert shares[built[0].pk] + shares[built[1].pk] > 0.7
    assert min(shares.values()) >= settings.VSEARCH_ACTIVE_FLOOR / 4 - 1e-9
    assert sum(shares.values()) == pytest.approx(1.0)
