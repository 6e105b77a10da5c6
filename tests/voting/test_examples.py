"""Each model's examples: its most approved and most rejected cards with their counts. Staff see every model's; the
public only those of models out of the rotation, and never a card a model in the rotation also makes."""

from __future__ import annotations

import itertools

import pytest

from matching.models import MatchPair, Variant
from matching.services import variant_create, variant_set_rotation
from voting import ledger
from voting.models import Vote, Voter

_tokens = itertools.count()


@pytest.fixture
def world(variants):
    """Histograms under L2 and L1 (they share cards) and the random control; votes on five of L2's cards."""
    l2, random_pairs = variants
    l1 = variant_create(featurizer="colour-histogram", layer="hsv", metric="l1", k=2)
    assert l1.status == Variant.Status.READY, l1.error
    l1_cards = set(MatchPair.objects.filter(variant=l1).values_list("pair_id", flat=True))
    control = set(MatchPair.objects.filter(variant=random_pairs).values_list("pair_id", flat=True))
    l2_cards = list(MatchPair.objects.filter(variant=l2).order_by("seq").values_list("pair_id", flat=True))
    shared = [p for p in l2_cards if p in l1_cards and p not in control]
    alone = [p for p in l2_cards if p not in l1_cards and p not in control]
    assert len(shared) >= 1 and len(alone) >= 5
    cards = {
        "loved": alone[0],  # 4 dope
        "liked": alone[1],  # 3 dope, 1 nope
        "hated": alone[2],  # 3 nope
        "split": alone[3],  # 2 and 2: neither approved nor rejected
        "few": alone[4],  # 2 dope: under the minimum of 3 votes
        "loved_shared": shared[0],  # 5 dope, and L1 (in the rotation) makes it too
    }
    for name, (dope, nope) in {
        "loved": (4, 0),
        "liked": (3, 1),
        "hated": (0, 3),
        "split": (2, 2),
        "few": (2, 0),
        "loved_shared": (5, 0),
    }.items():
        Vote.objects.bulk_create(
            Vote(voter=Voter.objects.create(), pair_id=cards[name], dope=verdict, token_id=f"e{next(_tokens)}")
            for verdict in [True] * dope + [False] * nope
        )
    ledger.fold()  # as card serving does every few seconds: public reads see folded counts
    return l2, l1, cards


def examples(client, variant, **params):
    return client.get(f"/api/leaderboard/{variant.pk}/examples", params)


def test_staff_see_a_models_most_approved_and_most_rejected_cards_with_their_counts(world, staff):
    l2, _, cards = world

    data = examples(staff, l2).json()

    approved = [(e["pair_id"], e["dope"], e["nope"]) for e in data["approved"]]
    rejected = [(e["pair_id"], e["dope"], e["nope"]) for e in data["rejected"]]
    assert approved == [(cards["loved_shared"], 5, 0), (cards["loved"], 4, 0), (cards["liked"], 3, 1)]
    assert rejected == [(cards["hated"], 0, 3)]
    assert data["min_votes"] == 3
    first = data["approved"][0]
    stored = MatchPair.objects.select_related("pair__query_item", "pair__match_item").get(
        variant=l2, pair_id=first["pair_id"]
    )
    assert first["query"]["id"] == stored.query_item_id and first["match"]["id"] == stored.pair.match_item_id
    assert (first["rank"], first["distance"]) == (stored.rank, stored.distance)


def test_the_minimum_of_votes_is_a_setting(world, staff, settings):
    l2, _, cards = world
    settings.VSEARCH_EXAMPLES_MIN_VOTES = 5

    data = examples(staff, l2).json()

    assert [e["pair_id"] for e in data["approved"]] == [cards["loved_shared"]] and data["rejected"] == []


def test_an_active_models_examples_are_not_public(world, client):
    l2, l1, _ = world

    for variant in (l2, l1):
        answer = examples(client, variant)
        assert answer.status_code == 404
        assert "out of the rotation" in answer.json()["detail"]
    board = client.get("/api/leaderboard").json()
    assert all("approved" not in row and "examples" not in row for row in board["rows"])


def test_staff_asking_for_the_public_view_are_refused_an_active_models_examples_too(world, staff):
    assert examples(staff, world[0], view="public").status_code == 404


@pytest.mark.parametrize("rotation", ["retired", "paused"])
def test_a_model_out_of_the_rotation_shows_its_examples_to_everyone_but_not_cards_an_active_model_makes(
    world, client, rotation
):
    l2, _, cards = world
    variant_set_rotation(variant=l2, rotation=rotation)

    answer = examples(client, l2)

    assert answer.status_code == 200
    data = answer.json()
    assert [e["pair_id"] for e in data["approved"]] == [cards["loved"], cards["liked"]]  # not loved_shared (L1's too)
    assert [e["pair_id"] for e in data["rejected"]] == [cards["hated"]]
    assert answer["Cache-Control"] == "public, max-age=60"


def test_once_every_model_that_made_a_card_is_out_of_the_rotation_the_card_may_be_shown(world, client):
    l2, l1, cards = world
    variant_set_rotation(variant=l2, rotation="retired")
    variant_set_rotation(variant=l1, rotation="retired")

    data = examples(client, l2).json()

    assert data["approved"][0]["pair_id"] == cards["loved_shared"]


def test_staff_see_votes_not_folded_yet(world, staff):
    l2, _, cards = world
    pair = cards["split"]
    Vote.objects.bulk_create(Vote(voter=Voter.objects.create(), pair_id=pair, dope=True, token_id=f"e{next(_tokens)}")
                             for _ in range(3))  # fmt: skip

    data = examples(staff, l2).json()

    assert (pair, 5, 2) in [(e["pair_id"], e["dope"], e["nope"]) for e in data["approved"]]


def test_examples_of_an_unknown_model_are_a_404(db, client, staff):
    assert examples(client, Variant(pk=987654)).status_code == 404
    assert examples(staff, Variant(pk=987654)).status_code == 404
