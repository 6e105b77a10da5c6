"""A catalog that changes under ready models: items imported later are reported and added by a refresh that
featurizes only them; a deleted item never breaks a build; votes on the pairs that stay keep counting."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command

from matching import featurizing, pipeline
from matching.features import features_load, features_read, items_read
from matching.models import FeatureSet, Item, MatchPair, Pair, Variant
from matching.selectors import stale_variants, variant_coverage
from matching.services import (
    ItemProtected,
    VariantNotReady,
    item_delete,
    variant_create,
    variant_refresh,
    variants_refresh_stale,
)
from voting import ledger
from voting.models import Vote, Voter

K = 3


def rows_of(variant: Variant) -> dict[int, list[int]]:
    """query -> its matches in rank order."""
    out: dict[int, list[int]] = {}
    rows = MatchPair.objects.filter(variant=variant).order_by("query_item_id", "rank")
    for query, match in rows.values_list("query_item_id", "pair__match_item_id"):
        out.setdefault(query, []).append(match)
    return out


def grow(seed: int = 8, n: int = 12) -> list[int]:
    """Import n more demo items; their ids."""
    before = set(Item.objects.values_list("id", flat=True))
    call_command("make_demo_catalog", n=n, seed=seed, size=64, verbosity=0)
    return sorted(set(Item.objects.values_list("id", flat=True)) - before)


@pytest.fixture
def embedded(monkeypatch) -> list[int]:
    """The ids of every item a featurizer is given, in order."""
    seen: list[int] = []
    real = featurizing.ItemImages

    class Spy(real):
        def __init__(self, rows, transform):
            seen.extend(row[0] for row in rows)
            super().__init__(rows, transform)

    monkeypatch.setattr(featurizing, "ItemImages", Spy)
    return seen


def histogram(metric: str = "l2", **kwargs) -> Variant:
    variant = variant_create(featurizer="colour-histogram", metric=metric, k=K, **kwargs)
    assert variant.status == Variant.Status.READY, variant.error
    return variant


def assert_whole(variant: Variant) -> None:
    """Every catalog item is a query with k distinct other items, all in the catalog."""
    catalog = set(Item.objects.values_list("id", flat=True))
    rows = rows_of(variant)
    assert set(rows) == catalog
    for query, matches in rows.items():
        assert len(matches) == K and len(set(matches)) == K and query not in matches
        assert set(matches) <= catalog


# ---------------------------------------------------------------------------------------- a catalog that grows


def test_items_imported_after_a_build_make_the_model_stale_by_that_many(demo_catalog):
    variant = histogram()
    assert variant_coverage(variant).stale is False
    assert stale_variants() == []

    added = grow(n=12)

    coverage = variant_coverage(variant)
    assert (coverage.added, coverage.removed, coverage.stale) == (12, 0, True)
    assert [(v.pk, c.added) for v, c in stale_variants()] == [(variant.pk, 12)]
    assert not set(added) & set(rows_of(variant))  # nothing reached the model by itself


def test_a_refresh_featurizes_only_the_new_items_and_gives_them_pairs(demo_catalog, embedded):
    variant = histogram()
    old_rows = rows_of(variant)
    kept_ids = dict(MatchPair.objects.filter(variant=variant).values_list("pk", "query_item_id"))
    pair_ids = dict(((q, m), pk) for pk, q, m in Pair.objects.values_list("pk", "query_item_id", "match_item_id"))
    embedded.clear()
    added = grow(n=12)

    refreshed = variant_refresh(variant=variant)

    assert refreshed.status == Variant.Status.READY and refreshed.stage == Variant.Stage.READY, refreshed.error
    assert embedded == added  # the featurizer saw the new items, and only them
    assert_whole(refreshed)
    assert variant_coverage(refreshed).stale is False
    fs = FeatureSet.objects.get(pk=variant.feature_set_id)
    assert (fs.revision, fs.n_items) == (2, len(demo_catalog) + 12)
    # The same pairs as a model built from scratch on the grown catalog.
    scratch = histogram(name="from scratch")
    assert rows_of(refreshed) == rows_of(scratch)
    # Old queries an added item came nearer to were redone; every other query kept its rows (and row ids)...
    new_rows = rows_of(refreshed)
    changed = {q for q in old_rows if new_rows[q] != old_rows[q]}
    assert changed and len(changed) < len(old_rows)
    for pk, query in kept_ids.items():
        if query not in changed:
            assert MatchPair.objects.filter(pk=pk, variant=refreshed).exists()
    # ...and a pair that stayed kept its Pair row, which is what votes are on.
    for (q, m), pk in pair_ids.items():
        assert Pair.objects.get(query_item_id=q, match_item_id=m).pk == pk
    seqs = sorted(MatchPair.objects.filter(variant=refreshed).values_list("seq", flat=True))
    assert seqs == list(range(len(seqs)))  # serving draws seq numbers uniformly: no gaps


def test_a_second_model_on_refreshed_features_featurizes_nothing_and_its_own_refresh_only_redoes_pairs(
    demo_catalog, embedded
):
    l2, cosine = histogram("l2"), histogram("cosine")
    added = grow(n=6)
    embedded.clear()

    variant_refresh(variant=l2)
    assert embedded == added
    assert variant_coverage(Variant.objects.get(pk=cosine.pk)).added == 6  # its pairs still lack them
    embedded.clear()
    cosine = variant_refresh(variant=cosine)

    assert embedded == []  # the features already cover the catalog
    assert_whole(cosine)
    assert [v for v, _ in stale_variants()] == []


def test_a_new_model_built_on_stale_features_tops_them_up_first(demo_catalog, embedded):
    histogram("l2")
    added = grow(n=5)
    embedded.clear()

    cosine = histogram("cosine")

    assert embedded == added
    assert_whole(cosine)


def test_refreshing_every_stale_model_leaves_none_stale_and_the_random_control_keeps_its_pairs(demo_catalog):
    variant = histogram()
    control = variant_create(metric="random", k=K)
    before = rows_of(control)
    grow(n=6)

    refreshed = variants_refresh_stale()

    assert sorted(v.pk for v in refreshed) == [variant.pk, control.pk]
    assert stale_variants() == []
    assert_whole(Variant.objects.get(pk=control.pk))
    after = rows_of(control)
    assert all(after[q] == matches for q, matches in before.items())  # random picks of old queries stay


def test_a_sampled_model_keeps_most_of_its_sample_when_the_catalog_grows(demo_catalog):
    variant = histogram(sample_size=10)
    before = set(rows_of(variant))
    grow(n=6)

    after = set(rows_of(variant_refresh(variant=variant)))

    assert len(after) == 10
    assert len(before & after) >= 4  # a fresh uniform sample would keep about 10 x 30/36 of them


def test_only_a_ready_model_is_refreshed(demo_catalog):
    queued = variant_create(featurizer="colour-histogram", metric="l2", k=K, build=False)

    with pytest.raises(VariantNotReady, match="only a ready model is refreshed"):
        variant_refresh(variant=queued)


def test_a_refresh_that_fails_leaves_the_model_ready_with_its_pairs_and_says_why(demo_catalog, monkeypatch):
    variant = histogram()
    before = rows_of(variant)
    grow(n=4)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "_store_pairs", broken)
    refreshed = variant_refresh(variant=variant)

    assert (refreshed.status, refreshed.stage) == (Variant.Status.READY, Variant.Stage.READY)
    assert refreshed.error.startswith("Refresh failed: Unexpected error while pairs: RuntimeError: disk on fire")
    assert refreshed.in_rotation and rows_of(refreshed) == before
    assert variant_coverage(refreshed).added == 4  # still stale: it can be refreshed again

    monkeypatch.undo()
    again = variant_refresh(variant=refreshed)
    assert again.error == "" and variant_coverage(again).stale is False


# ---------------------------------------------------------------------------------------- deleting an item


def test_deleting_an_unvoted_item_leaves_models_working_and_a_refresh_repairs_them(demo_catalog, settings):
    settings.VSEARCH_EXACT_MAX_ITEMS = 10  # pairs from the Annoy index, whose rows still hold the deleted item
    variant = histogram()
    gone = demo_catalog[4].pk
    hit = [q for q, matches in rows_of(variant).items() if gone in matches]
    assert hit

    item_delete(item=demo_catalog[4])

    variant.refresh_from_db()
    assert variant.status == Variant.Status.READY and variant.in_rotation
    coverage = variant_coverage(variant)
    assert (coverage.added, coverage.removed, coverage.stale) == (0, 1, True)
    ids, _ = features_load(variant.feature_set)
    assert gone not in ids.tolist() and gone in features_read(variant.feature_set)[0].tolist()
    # Builds on these features do not fail (they used to, for good: "items were deleted since featurizing").
    other = histogram("cosine")
    assert_whole(other)

    refreshed = variant_refresh(variant=variant)

    assert refreshed.status == Variant.Status.READY and refreshed.error == ""
    assert_whole(refreshed)
    assert all(len(rows_of(refreshed)[q]) == K for q in hit if q != gone)
    assert variant_coverage(refreshed).stale is False
    assert gone not in features_read(FeatureSet.objects.get(pk=variant.feature_set_id))[0].tolist()
    assert gone not in items_read(refreshed.pk).tolist()


def test_an_item_with_votes_on_its_cards_cannot_be_deleted_and_nothing_changes(demo_catalog):
    variant = histogram()
    card = MatchPair.objects.filter(variant=variant).select_related("pair").first()
    voter = Voter.objects.create()
    Vote.objects.create(voter=voter, pair=card.pair, dope=True, token_id="t-1", propensity=0.5)
    rows = MatchPair.objects.count()

    with pytest.raises(ItemProtected, match=f"Item #{card.query_item_id} cannot be deleted: 1 vote on its cards"):
        item_delete(item=Item.objects.get(pk=card.query_item_id))

    assert Item.objects.filter(pk=card.query_item_id).exists()
    assert MatchPair.objects.count() == rows and Vote.objects.count() == 1


def test_votes_on_pairs_that_survive_a_deletion_and_a_growth_keep_counting(demo_catalog, capsys):
    variant = histogram()
    voter = Voter.objects.create()
    cards = list(MatchPair.objects.filter(variant=variant).order_by("seq")[:12])
    for n, card in enumerate(cards):
        Vote.objects.create(voter=voter, pair_id=card.pair_id, dope=n % 3 != 0, token_id=f"t-{n}", propensity=0.25)
    ledger.fold()
    voted_items = {c.query_item_id for c in cards} | {c.pair.match_item_id for c in cards}
    unvoted = next(i for i in demo_catalog if i.pk not in voted_items)
    item_delete(item=unvoted)
    grow(n=8)
    # Pairs present before the refresh and still produced after it.
    before = set(MatchPair.objects.filter(variant=variant).values_list("pair_id", flat=True))

    refreshed = variant_refresh(variant=variant)

    after = set(MatchPair.objects.filter(variant=refreshed).values_list("pair_id", flat=True))
    voted = {c.pair_id for c in cards}
    assert Vote.objects.count() == 12  # no vote was lost
    assert voted & before & after  # most voted cards are still this model's
    call_command("tallies", "--check")
    assert "match a recount" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------- feature files


def test_feature_files_of_older_revisions_are_removed_but_the_previous_one_stays(demo_catalog, isolated_private):
    variant = histogram()
    for seed in (8, 9):
        grow(seed=seed, n=3)
        variant = variant_refresh(variant=variant)

    folder = isolated_private / "features" / "colour-histogram" / "none"
    revisions = sorted(p.name for p in folder.iterdir() if p.suffix == ".npy")
    assert revisions == ["hsv.r2.npy", "hsv.r3.npy", "ids.r2.npy", "ids.r3.npy"]
    assert (folder / "hsv.layout.npz").exists()  # the map, laid out again from the newest revision
    ids, vectors = features_read(FeatureSet.objects.get(pk=variant.feature_set_id))
    assert len(ids) == len(vectors) == len(demo_catalog) + 6
    assert np.array_equal(np.sort(ids), np.sort(list(Item.objects.values_list("id", flat=True))))


# ---------------------------------------------------------------------------------------- staff: API, page, command


def test_the_staff_api_reports_coverage_and_refreshes_one_model_or_every_stale_one(demo_catalog, staff_api):
    l2, cosine = histogram("l2"), histogram("cosine")
    grow(n=5)

    listed = {v["id"]: v["coverage"] for v in staff_api.get("/api/variants").json()["variants"]}
    assert listed[l2.pk] == {"added": 5, "removed": 0, "unembedded": 0, "features_changed": False, "stale": True}

    one = staff_api.post(f"/api/variants/{l2.pk}/refresh")
    assert one.status_code == 200 and one.json()["coverage"]["stale"] is False
    every = staff_api.post("/api/variants/refresh")
    assert every.status_code == 200 and [v["id"] for v in every.json()["variants"]] == [cosine.pk]
    assert all(v["coverage"]["stale"] is False for v in staff_api.get("/api/variants").json()["variants"])


def test_refreshing_a_model_that_is_not_ready_or_missing_is_a_json_error(demo_catalog, staff_api):
    queued = variant_create(featurizer="colour-histogram", metric="l2", k=K, build=False)

    conflict = staff_api.post(f"/api/variants/{queued.pk}/refresh")
    missing = staff_api.post("/api/variants/999999/refresh")

    assert conflict.status_code == 409 and "only a ready model is refreshed" in conflict.json()["detail"]
    assert missing.status_code == 404 and "detail" in missing.json()
    assert Variant.objects.get(pk=queued.pk).stage == Variant.Stage.QUEUED


def test_voters_and_anonymous_users_cannot_refresh(demo_catalog, client):
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    variant = histogram()
    grow(n=3)
    api = APIClient()
    assert api.post(f"/api/variants/{variant.pk}/refresh").status_code in (401, 403)
    user = User.objects.create_user("val", password="pw-for-tests-only")
    api.force_authenticate(user)
    client.force_login(user)

    assert api.post("/api/variants/refresh").status_code == 403
    assert client.post(f"/staff/variants/{variant.pk}/refresh").status_code == 403
    assert variant_coverage(Variant.objects.get(pk=variant.pk)).added == 3


def test_the_staff_page_marks_a_stale_model_and_one_click_refreshes_it(demo_catalog, client):
    from django.contrib.auth.models import User

    variant = histogram()
    fresh = histogram("cosine")
    grow(n=4)
    variant_refresh(variant=fresh)
    client.force_login(User.objects.create_user("sue", password="pw-for-tests-only", is_staff=True))

    page = client.get("/staff/").content.decode()
    assert page.count('data-testid="stale"') == 1 and "stale:" in page and "4 new items" in page
    assert f'action="/staff/variants/{variant.pk}/refresh"' in page

    done = client.post(f"/staff/variants/{variant.pk}/refresh", follow=True)

    assert done.status_code == 200 and "refreshing" in done.content.decode()
    assert 'data-testid="stale"' not in done.content.decode()
    assert variant_coverage(Variant.objects.get(pk=variant.pk)).stale is False


def test_the_coverage_command_lists_stale_models_and_refreshes_them(demo_catalog, capsys):
    variant = histogram()
    call_command("coverage")
    assert capsys.readouterr().out.strip() == "Every ready model covers the catalog."
    grow(n=2)
    item_delete(item=demo_catalog[0])

    call_command("coverage", "--refresh")

    out = capsys.readouterr().out
    assert f"{variant.name}: stale (2 new, 1 removed)" in out and "1 model(s) refreshing." in out
    call_command("coverage")
    assert capsys.readouterr().out.strip() == "Every ready model covers the catalog."


def test_uploaded_embeddings_report_items_they_lack_and_a_refresh_drops_deleted_rows(demo_catalog, staff_api):
    from tests.matching.test_uploads import embeddings_npz, upload

    response = upload(staff_api, kind="embeddings", metrics=["l2"], file=embeddings_npz(demo_catalog[:25]))
    assert response.status_code == 201, response.json()
    variant = Variant.objects.get(name="my resnet · l2")
    assert variant.status == Variant.Status.READY, variant.error

    coverage = variant_coverage(variant)
    assert (coverage.added, coverage.unembedded, coverage.stale) == (0, 5, False)  # nothing a refresh could add
    item_delete(item=demo_catalog[0])
    coverage = variant_coverage(Variant.objects.get(pk=variant.pk))
    assert (coverage.removed, coverage.unembedded, coverage.stale) == (1, 5, True)

    refreshed = variant_refresh(variant=variant)

    assert refreshed.error == "" and variant_coverage(refreshed).stale is False
    ids, _ = features_read(FeatureSet.objects.get(pk=variant.feature_set_id))
    assert sorted(ids.tolist()) == [item.pk for item in demo_catalog[1:25]]
    assert set(rows_of(refreshed)) == {item.pk for item in demo_catalog[1:25]}
