"""The search method is part of a model: staff force exact search or Annoy (n_trees, search_k) whatever the
catalog's size, at creation, at upload, or later (a rebuild, or a new model beside the old one); the display name
says which; voters never see it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from matching import index, pipeline
from matching.features import features_load
from matching.models import MatchPair, Variant
from matching.pipeline import copy_groups
from matching.services import (
    VariantError,
    variant_create,
    variant_display_name,
)
from matching.storage import private_path
from tests.matching.conftest import snapshot
from voting.models import Vote, Voter

K = 3


def histogram(metric: str = "l2", **kwargs) -> Variant:
    variant = variant_create(featurizer="colour-histogram", layer="hsv", metric=metric, k=K, **kwargs)
    assert variant.status == Variant.Status.READY, variant.error
    return variant


def stored(variant: Variant) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for query, match in (
        MatchPair.objects.filter(variant=variant)
        .order_by("query_item_id", "rank")
        .values_list("query_item_id", "pair__match_item_id")
    ):
        out.setdefault(query, []).append(match)
    return out


def expected(variant: Variant, searcher: index.Searcher) -> dict[int, list[int]]:
    ids, _ = features_load(variant.feature_set)
    top, _ = searcher.neighbours(np.arange(len(ids)), K)
    return {int(ids[p]): [int(ids[n]) for n in row if n >= 0] for p, row in enumerate(top)}


def test_a_model_forced_to_annoy_takes_its_pairs_from_its_index_on_a_catalog_small_enough_for_exact(demo_catalog):
    variant = histogram(search="annoy", n_trees=2, search_k=4)

    assert variant.pairs_search == "annoy" and variant.search_k_used == 4
    ids, vectors = features_load(variant.feature_set)
    annoy = index.AnnoySearch.load(private_path(variant.index_path)).with_groups(copy_groups(ids))
    assert stored(variant) == expected(variant, annoy.set_query_arguments(4))
    searcher, name = pipeline.variant_searcher(variant, ids, vectors, copy_groups(ids))
    assert isinstance(searcher, index.AnnoySearch) and name == "annoy" and searcher.search_k == 4


def test_a_model_forced_to_exact_search_stays_exact_above_the_size_limit(demo_catalog, settings):
    settings.VSEARCH_EXACT_MAX_ITEMS = 10  # the 30-item catalog is "large": auto would use Annoy

    auto = histogram("l2", n_trees=1, search_k=2)
    forced = histogram("cosine", search="exact")

    assert auto.pairs_search == "annoy"
    assert forced.pairs_search == "exact" and forced.search_k_used is None
    ids, vectors = features_load(forced.feature_set)
    assert isinstance(pipeline.variant_searcher(forced, ids, vectors, copy_groups(ids))[0], index.ExactSearch)
    assert stored(forced) == expected(
        forced, index.ExactSearch("cosine").fit(np.asarray(vectors), groups=copy_groups(ids))
    )


def test_the_display_name_says_which_search_method_a_model_uses(demo_catalog):
    assert histogram(search="annoy", n_trees=10).name == "colour histogram · l2 · annoy 10 trees"
    assert (
        histogram("l1", search="annoy", n_trees=1, search_k=40).name
        == "colour histogram · l1 · annoy 1 tree · search_k 40"
    )
    assert histogram("cosine", search="exact").name == "colour histogram · cosine · exact"
    assert histogram("hamming").name == "colour histogram · hamming"  # auto: decided by size, shown on staff pages
    fs = Variant.objects.get(name="colour histogram · l2 · annoy 10 trees").feature_set
    assert variant_display_name(fs, "l2", search="annoy", n_trees=10) == "colour histogram · l2 · annoy 10 trees"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"search": "lsh"}, "Unknown search 'lsh'"),
        ({"search": "annoy", "n_trees": 5000}, "n_trees must be between 1 and 1000"),
        ({"search": "annoy", "search_k": 0}, "search_k must be -1"),
        ({"metric": "random", "featurizer": None, "search": "exact"}, "random control draws its pairs"),
    ],
)
def test_an_impossible_search_method_is_refused_and_nothing_is_created(db, kwargs, message):
    kwargs = {"featurizer": "colour-histogram", "metric": "l2", **kwargs}
    with pytest.raises(VariantError, match=message):
        variant_create(**kwargs, build=False)
    assert Variant.objects.count() == 0


# ---------------------------------------------------------------------------------------- the staff action


def test_staff_switch_a_model_without_votes_to_annoy_and_its_pairs_are_built_again(demo_catalog, staff_api):
    variant = histogram()
    assert variant.pairs_search == "exact"

    answer = staff_api.post(f"/api/variants/{variant.pk}/search", {"search": "annoy", "n_trees": 3}, format="json")

    assert answer.status_code == 200, answer.content
    variant.refresh_from_db()
    assert answer.json()["name"] == variant.name == "colour histogram · l2 · annoy 3 trees"
    assert variant.status == Variant.Status.READY and variant.pairs_search == "annoy" and variant.n_trees == 3
    assert answer.json()["search_label"] == "annoy 3 trees"
    ids, _ = features_load(variant.feature_set)
    annoy = index.AnnoySearch.load(private_path(variant.index_path)).with_groups(copy_groups(ids))
    assert annoy.n_trees == 3
    assert stored(variant) == expected(variant, annoy.set_query_arguments(variant.search_k_used))

    back = staff_api.post(f"/api/variants/{variant.pk}/search", {"search": "auto"}, format="json")
    variant.refresh_from_db()
    assert back.status_code == 200 and variant.name == "colour histogram · l2" and variant.pairs_search == "exact"


def test_a_model_with_votes_keeps_its_pairs_and_staff_add_a_new_model_with_the_search_method_instead(
    demo_catalog, staff_api
):
    variant = histogram()
    card = MatchPair.objects.filter(variant=variant).first().pair_id
    Vote.objects.create(voter=Voter.objects.create(), pair_id=card, dope=True, token_id="t1")
    before = stored(variant)

    refused = staff_api.post(f"/api/variants/{variant.pk}/search", {"search": "annoy"}, format="json")

    assert refused.status_code == 409 and "1 vote on its cards" in refused.json()["detail"]
    variant.refresh_from_db()
    assert (variant.search, variant.name, stored(variant)) == ("auto", "colour histogram · l2", before)

    added = staff_api.post(
        f"/api/variants/{variant.pk}/search", {"search": "annoy", "n_trees": 4, "as_new": True}, format="json"
    )

    assert added.status_code == 201, added.content
    twin = Variant.objects.get(pk=added.json()["id"])
    assert twin.name == "colour histogram · l2 · annoy 4 trees" and twin.feature_set_id == variant.feature_set_id
    assert twin.status == Variant.Status.READY and twin.pairs_search == "annoy" and twin.k == variant.k
    assert stored(variant) == before


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"search": "fast"}, "valid"),
        ({"search": "annoy", "n_trees": 0}, "valid"),
        ({"search": "annoy", "search_k": 0}, "search_k must be -1"),
        ({}, "valid"),
    ],
)
def test_a_bad_search_change_is_a_400_and_nothing_changes(demo_catalog, staff_api, settings, body, says):
    variant = histogram()
    before = snapshot(settings.MEDIA_ROOT), Variant.objects.values().get(pk=variant.pk)

    answer = staff_api.post(f"/api/variants/{variant.pk}/search", body, format="json")

    assert answer.status_code == 400 and says in str(answer.json())
    assert (snapshot(settings.MEDIA_ROOT), Variant.objects.values().get(pk=variant.pk)) == before


def test_the_random_control_has_no_search_method_to_change(demo_catalog, staff_api):
    control = variant_create(metric="random", k=K)
    answer = staff_api.post(f"/api/variants/{control.pk}/search", {"search": "exact"}, format="json")
    assert answer.status_code == 400 and "no search method" in answer.json()["detail"]


def test_changing_the_search_method_is_for_staff_and_of_a_model_that_exists(demo_catalog, client, staff_api):
    variant = histogram()
    answer = client.post(f"/api/variants/{variant.pk}/search", {"search": "annoy"}, content_type="application/json")
    assert answer.status_code == 403 and Variant.objects.get(pk=variant.pk).search == "auto"
    assert staff_api.post("/api/variants/987654/search", {"search": "annoy"}, format="json").status_code == 404


def test_an_upload_may_choose_its_search_method(demo_catalog, staff_api):
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, item_ids=np.array([i.pk for i in demo_catalog]), embeddings=rng.normal(size=(30, 8)))
    answer = staff_api.post(
        "/api/variants/upload",
        {
            "kind": "embeddings",
            "name": "clip",
            "metrics": ["l2", "cosine"],
            "file": SimpleUploadedFile("emb.npz", buffer.getvalue()),
            "search": "annoy",
            "n_trees": 7,
        },
        format="multipart",
    )

    assert answer.status_code == 201, answer.content
    assert [v["name"] for v in answer.json()["variants"]] == [
        "clip · l2 · annoy 7 trees",
        "clip · cosine · annoy 7 trees",
    ]
    assert all(v.pairs_search == "annoy" and v.n_trees == 7 for v in Variant.objects.filter(name__startswith="clip"))


def test_voters_never_see_the_search_method(demo_catalog):
    from tests.voting.conftest import browser, next_card

    histogram(search="annoy", n_trees=2)
    card = next_card(browser())
    assert set(card) == {"token", "query", "match", "votes_cast"} and "annoy" not in str(card)


def test_the_staff_page_changes_a_models_search_method(demo_catalog, admin_client):
    variant = histogram()

    page = admin_client.post(
        f"/staff/variants/{variant.pk}/search", {"search": "annoy", "n_trees": "6", "search_k": "-1", "as_new": "on"}
    )

    assert page.status_code == 302
    twin = Variant.objects.get(name="colour histogram · l2 · annoy 6 trees")
    assert twin.pairs_search == "annoy" and Variant.objects.get(pk=variant.pk).search == "auto"
    refused = admin_client.post(
        f"/staff/variants/{variant.pk}/search", {"search": "annoy", "n_trees": "0"}, follow=True
    )
    assert "n_trees" in refused.content.decode() and Variant.objects.get(pk=variant.pk).n_trees == 50
