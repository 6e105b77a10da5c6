"""The staff comparison: every ready model's matches for one query, side by side, with votes and shared cards."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from matching.models import Item, MatchPair, Variant
from matching.services import variant_create, variant_set_rotation
from tests.voting.conftest import next_card, vote
from voting.models import Vote


@pytest.fixture
def models(variants) -> list[Variant]:
    """Colour histograms under L2 and L1 (they share many cards), and the random control."""
    l1 = variant_create(featurizer="colour-histogram", layer="hsv", metric="l1", k=2)
    assert l1.status == Variant.Status.READY, l1.error
    return [*variants, l1]


def compare(client, **params):
    return client.get("/api/compare", params)


def test_staff_see_every_ready_models_stored_matches_for_the_query_with_their_distances(models, staff):
    query = Item.objects.order_by("id")[4]

    answer = compare(staff, item=query.pk)

    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert data["query"] == {"id": query.pk, "category": query.category, "image": query.image_url}
    assert [c["variant_id"] for c in data["columns"]] == [v.pk for v in models]
    for column in data["columns"]:
        stored = list(
            MatchPair.objects.filter(variant_id=column["variant_id"], query_item=query)
            .order_by("rank")
            .values_list("pair_id", "pair__match_item_id", "rank", "distance")
        )
        shown = [(m["pair_id"], m["item"]["id"], m["rank"], m["distance"]) for m in column["matches"]]
        assert shown == stored and len(shown) == 2


def test_a_card_several_models_hold_names_the_others_and_a_card_one_model_holds_names_none(models, staff):
    l2, random_pairs, l1 = models
    shared = 0
    for query in Item.objects.all():
        columns = {c["variant_id"]: c for c in compare(staff, item=query.pk).json()["columns"]}
        makers = {}
        for column in columns.values():
            for match in column["matches"]:
                makers.setdefault(match["pair_id"], set()).add(column["variant_id"])
        for variant_id, column in columns.items():
            for match in column["matches"]:
                assert set(match["shared_with"]) == makers[match["pair_id"]] - {variant_id}
                shared += bool(match["shared_with"])
    assert shared > 0  # L1 and L2 over the same histograms agree on many neighbours


def test_each_card_shows_the_counted_votes_on_it(models, alice, staff):
    card = next_card(alice)
    assert vote(alice, card["token"], "dope").status_code == 201
    pair_id = Vote.objects.get().pair_id
    query = MatchPair.objects.filter(pair_id=pair_id).first().query_item_id

    data = compare(staff, item=query).json()

    cards = [m for c in data["columns"] for m in c["matches"] if m["pair_id"] == pair_id]
    assert cards and all((m["dope"], m["nope"]) == (1, 0) for m in cards)
    others = [m for c in data["columns"] for m in c["matches"] if m["pair_id"] != pair_id]
    assert all((m["dope"], m["nope"]) == (0, 0) for m in others)


def test_previous_and_next_step_through_the_queries_of_the_category(models, staff):
    category = Item.objects.order_by("id")[0].category
    ids = list(Item.objects.filter(category=category).order_by("id").values_list("id", flat=True))

    first = compare(staff, category=category).json()
    second = compare(staff, item=first["next"], category=category).json()

    assert first["query"]["id"] == ids[0] and first["previous"] is None and first["next"] == ids[1]
    assert second["previous"] == ids[0] and second["next"] == ids[2]
    last = compare(staff, item=ids[-1], category=category).json()
    assert last["next"] is None


def test_without_a_category_previous_and_next_cross_categories(models, staff):
    ids = list(Item.objects.order_by("id").values_list("id", flat=True))

    data = compare(staff, item=ids[3]).json()

    assert (data["previous"], data["next"], data["category"]) == (ids[2], ids[4], None)


def test_a_random_query_stays_in_the_chosen_category(models, staff):
    category = Item.objects.order_by("id")[7].category
    seen = {compare(staff, random="1", category=category).json()["query"]["category"] for _ in range(8)}
    assert seen == {category}


def test_retired_and_paused_models_keep_their_column_and_say_so(models, staff):
    variant_set_rotation(variant=models[0], rotation="retired")

    columns = compare(staff, item=Item.objects.first().pk).json()["columns"]

    assert {c["variant_id"]: c["rotation"] for c in columns}[models[0].pk] == "retired"


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"item": "twelve"}, 400, "valid"),
        ({"item": "0"}, 400, "valid"),
        ({"item": "1", "random": "1"}, 400, "not both"),
        ({"item": "999999"}, 404, "no catalog item #999999"),
        ({"category": "spacesuits"}, 404, "spacesuits"),
    ],
)
def test_bad_or_unknown_queries_get_a_clear_json_error(models, staff, params, status, says):
    answer = compare(staff, **params)
    assert answer.status_code == status
    assert says.lower() in str(answer.json()).lower()


def test_an_item_outside_the_chosen_category_is_refused(models, staff):
    item = Item.objects.order_by("id").first()
    other = Item.objects.exclude(category=item.category).first().category

    answer = compare(staff, item=item.pk, category=other)

    assert answer.status_code == 400 and f"is a {item.category}" in answer.json()["detail"]


def test_only_staff_may_compare_models(models, client):
    assert compare(client, item=1).status_code == 403
    voter = APIClient()
    voter.force_authenticate(User.objects.create_user("dave"))
    answer = compare(voter, item=1)
    assert answer.status_code == 403 and answer.json()["detail"]


def test_the_comparison_is_in_the_openapi_schema(db, client):
    schema = client.get("/api/schema", HTTP_ACCEPT="application/json").json()
    parameters = {p["name"] for p in schema["paths"]["/api/compare"]["get"]["parameters"]}
    assert {"item", "category", "random"} <= parameters


def test_the_compare_page_is_for_staff(models, client, admin_client):
    assert client.get("/staff/compare/").status_code == 302  # to the login page
    page = admin_client.get("/staff/compare/")
    assert page.status_code == 200 and b"compare.js" in page.content
