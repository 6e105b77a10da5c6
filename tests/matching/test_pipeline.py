"""Building a variant: the pairs it stores, reruns and resumes, failures that leave nothing behind, evaluation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command
from torchvision import models

from matching import index, pipeline
from matching.catalog import Entry
from matching.features import features_load
from matching.featurizers.finetuned import FineTuneNet, checkpoint
from matching.models import FeatureSet, Item, MatchPair, Pair, Variant
from matching.services import VariantError, item_add, variant_create, variant_rebuild, variant_set_rotation
from matching.storage import media_path

K = 5


def rows_of(variant: Variant) -> list[tuple[int, int, int, float, int]]:
    """(query, match, rank, distance, seq) of every stored pair, in query and rank order."""
    return list(
        MatchPair.objects.filter(variant=variant)
        .order_by("query_item_id", "rank")
        .values_list("query_item_id", "pair__match_item_id", "rank", "distance", "seq")
    )


def triples(variant: Variant) -> set[tuple[int, int, int]]:
    return {(q, m, r) for q, m, r, _, _ in rows_of(variant)}


def written_files(media_root: Path, folder: str) -> list[str]:
    root = media_root / folder
    return sorted(str(p.relative_to(media_root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def add_copy_of(item: Item) -> Item:
    """The same bytes as `item`, cropped to the whole image: a new item whose pixels are identical."""
    data = media_path(item.image).read_bytes()
    entry = Entry(path=Path("copy.png"), category=item.category, bbox=(0, 0, item.width, item.height))
    assert item_add(entry=entry, data=data)
    return Item.objects.latest("id")


def write_finetuned(path: Path, *, seed: int, classes: list[str]) -> None:
    """A small fine-tuned checkpoint (32 px input, 8-d feature layer): fast to build and to run."""
    torch.manual_seed(seed)
    model = FineTuneNet("resnet18", hidden_dim=8, n_classes=len(classes))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint(model, backbone="resnet18", classes=classes, input_size=32, accuracy=0.0), path)


def histogram_variant(metric: str, **kwargs) -> Variant:
    return variant_create(featurizer="colour-histogram", metric=metric, k=K, **kwargs)


# ---------------------------------------------------------------------------------------- pairs


@pytest.mark.parametrize("metric", ["l1", "l2", "hamming", "cosine"])
def test_each_query_gets_exactly_k_other_items_ranked_by_distance(demo_catalog, metric):
    variant = histogram_variant(metric)

    rows = rows_of(variant)

    assert variant.status == Variant.Status.READY, variant.error
    assert len(rows) == len(demo_catalog) * K
    by_query: dict[int, list] = {}
    for q, m, rank, distance, _ in rows:
        by_query.setdefault(q, []).append((rank, m, distance))
    assert set(by_query) == {item.id for item in demo_catalog}
    for q, matches in by_query.items():
        assert [rank for rank, _, _ in matches] == list(range(K))
        assert q not in {m for _, m, _ in matches}
        assert len({m for _, m, _ in matches}) == K
        distances = [d for _, _, d in matches]
        assert distances == sorted(distances)
    assert sorted(seq for *_, seq in rows) == list(range(len(rows)))


@pytest.mark.parametrize("metric", ["l2", "hamming"])
def test_stored_pairs_are_the_exact_nearest_neighbours_on_a_small_catalog(demo_catalog, metric):
    variant = histogram_variant(metric)
    ids, vectors = features_load(variant.feature_set)
    prepared = index.prepare(np.asarray(vectors), metric)
    distances = index.exact_distances(prepared, prepared, metric)
    position = {int(i): p for p, i in enumerate(ids)}

    for q, m, rank, distance, _ in rows_of(variant):
        others = np.delete(distances[position[q]], position[q])
        # Every stored match is as close as the exact neighbour of its rank (ties may swap items).
        assert distance == pytest.approx(distances[position[q], position[m]], abs=1e-4)
        assert distance <= np.sort(others)[rank] + 1e-4
    assert variant.recall_at_k == 1.0  # 50 trees over 30 items search everything


def test_a_byte_identical_copy_is_never_matched_with_its_original(demo_catalog):
    original = demo_catalog[0]
    copy = add_copy_of(original)

    variant = histogram_variant("l2")

    ids, vectors = features_load(variant.feature_set)
    position = {int(i): p for p, i in enumerate(ids)}
    # Identical pixels, identical features: without the rule the copy would be the nearest match at distance 0.
    np.testing.assert_array_equal(vectors[position[original.id]], vectors[position[copy.id]])
    sha = dict(Item.objects.values_list("id", "sha256"))
    rows = rows_of(variant)
    assert all(sha[q] != sha[m] for q, m, *_ in rows)
    assert len(rows) == (len(demo_catalog) + 1) * K
    assert sum(q == copy.id for q, *_ in rows) == K
    assert sum(q == original.id for q, *_ in rows) == K


def test_sample_size_builds_pairs_for_that_many_queries_only(demo_catalog):
    variant = histogram_variant("l2", sample_size=12)

    queries = {q for q, *_ in rows_of(variant)}

    assert variant.status == Variant.Status.READY
    assert len(queries) == 12
    assert MatchPair.objects.filter(variant=variant).count() == 12 * K


def test_variants_sharing_a_featurizer_share_one_feature_file_and_one_map(demo_catalog, isolated_private):
    l1 = histogram_variant("l1")
    cosine = histogram_variant("cosine")

    assert l1.feature_set_id == cosine.feature_set_id
    assert written_files(isolated_private, "features") == [
        "features/colour-histogram/none/hsv.layout.npz",
        "features/colour-histogram/none/hsv.r1.npy",
        "features/colour-histogram/none/ids.r1.npy",
    ]
    assert set(written_files(isolated_private, "indexes")) == {
        f"indexes/variant-{l1.pk}.ann",
        f"indexes/variant-{l1.pk}.json",
        f"indexes/variant-{cosine.pk}.ann",
        f"indexes/variant-{cosine.pk}.json",
        f"indexes/variant-{l1.pk}.items.npy",  # the items each variant's pairs cover
        f"indexes/variant-{cosine.pk}.items.npy",
    }


# ---------------------------------------------------------------------------------------- reruns and resumes


def test_running_a_finished_build_again_changes_nothing(demo_catalog):
    variant = histogram_variant("cosine")
    before = rows_of(variant)

    pipeline.variant_build_inline(variant_id=variant.pk)

    assert rows_of(variant) == before
    assert Pair.objects.count() == len({(q, m) for q, m, *_ in before})


def test_requeueing_a_ready_variant_rebuilds_to_the_same_rows(demo_catalog, isolated_private):
    variant = histogram_variant("l1")
    before = rows_of(variant)
    Variant.objects.filter(pk=variant.pk).update(status=Variant.Status.QUEUED, p_at_1=None)

    variant = pipeline.variant_build_inline(variant_id=variant.pk)

    assert variant.status == Variant.Status.READY
    assert variant.p_at_1 is not None  # evaluated again
    assert rows_of(variant) == before


def test_a_deleted_index_is_rebuilt_and_gives_the_same_pairs(demo_catalog, isolated_private):
    variant = histogram_variant("l2")
    before = triples(variant)
    (isolated_private / variant.index_path).unlink()
    Variant.objects.filter(pk=variant.pk).update(status=Variant.Status.QUEUED)

    variant = pipeline.variant_build_inline(variant_id=variant.pk)

    assert (isolated_private / variant.index_path).exists()
    assert triples(variant) == before
    assert MatchPair.objects.filter(variant=variant).count() == len(before)


def test_a_build_interrupted_while_storing_pairs_resumes_where_it_stopped(demo_catalog, monkeypatch):
    reference = triples(histogram_variant("l2", name="reference"))
    monkeypatch.setattr(pipeline, "PAIR_CHUNK", 4)
    real_store = pipeline._store_pairs
    stored: list[set[int]] = []

    def store_then_crash_once(variant, ids, found, order):
        if len(stored) == 2 and not getattr(store_then_crash_once, "crashed", False):
            store_then_crash_once.crashed = True
            raise RuntimeError("worker killed")
        stored.append({int(ids[p]) for p in found})
        real_store(variant, ids, found, order)

    monkeypatch.setattr(pipeline, "_store_pairs", store_then_crash_once)

    variant = histogram_variant("l2")

    assert variant.status == Variant.Status.FAILED
    assert variant.stage == Variant.Stage.PAIRS
    assert variant.error.startswith("Unexpected error while pairs: RuntimeError: worker killed")
    assert MatchPair.objects.filter(variant=variant).count() == 2 * 4 * K  # two whole chunks, nothing of the third

    variant = variant_rebuild(variant=variant)

    assert variant.status == Variant.Status.READY, variant.error
    assert triples(variant) == reference
    assert MatchPair.objects.filter(variant=variant).count() == len(reference)
    first_run, resumed = set().union(*stored[:2]), set().union(*stored[2:])
    assert not first_run & resumed  # the stored queries were not done again
    assert first_run | resumed == {item.id for item in demo_catalog}


# ---------------------------------------------------------------------------------------- control


@pytest.fixture
def catalog_200(db):
    """200 demo items, 20 per category: enough queries to tell chance from skill."""
    call_command("make_demo_catalog", n=200, seed=3, size=64, verbosity=0)
    return list(Item.objects.order_by("id"))


def test_the_random_control_never_pairs_an_item_with_itself_and_scores_near_chance(catalog_200):
    variant = variant_create(metric="random", k=K)

    rows = rows_of(variant)

    assert variant.status == Variant.Status.READY, variant.error
    assert variant.name == "random pairs (control)"
    assert len(rows) == 200 * K
    assert all(q != m for q, m, *_ in rows)
    assert len({(q, m) for q, m, *_ in rows}) == len(rows)
    # Chance is 19/199 = 0.095. Measured on this catalog with variant seeds 0-5: P@1 0.055-0.135, P@5
    # 0.077-0.107. The picks are seeded by item id, and ids differ between databases, so the bounds are four
    # standard deviations of a binomial over 200 (P@1) and 1000 (P@5) draws.
    chance = 19 / 199
    assert abs(variant.p_at_1 - chance) < 0.085
    assert abs(variant.p_at_k - chance) < 0.04
    assert variant.recall_at_k is None


def test_the_random_control_is_the_same_on_every_build(demo_catalog):
    first = triples(variant_create(metric="random", k=K))
    second = triples(variant_create(metric="random", k=K, name="again"))

    assert first == second


# ---------------------------------------------------------------------------------------- failures


def assert_nothing_written(variant: Variant, media_root: Path) -> None:
    assert MatchPair.objects.filter(variant=variant).count() == 0
    assert written_files(media_root, "indexes") == []
    assert written_files(media_root, "features") == []
    assert variant.index_path == ""
    assert (variant.p_at_1, variant.recall_at_k) == (None, None)


def test_weights_of_the_wrong_shapes_fail_the_variant_clearly_and_write_nothing(demo_catalog, isolated_private):
    state = models.resnet18(weights=None).state_dict()
    state["fc.weight"] = state["fc.weight"].reshape(512, 1000)
    (isolated_private / "weights").mkdir(parents=True)
    torch.save(state, isolated_private / "weights" / "bent.pt")

    variant = variant_create(featurizer="resnet18", weights="weights/bent.pt", metric="l2", k=K)

    assert variant.status == Variant.Status.FAILED
    assert variant.stage == Variant.Stage.FEATURIZING
    assert "bent.pt does not fit ResNet: 1 wrong shapes (e.g. fc.weight: file (512, 1000) vs model (1000, 512))" in (
        variant.error
    )
    assert variant.feature_set.status == FeatureSet.Status.FAILED
    assert variant.feature_set.error == variant.error
    assert_nothing_written(variant, isolated_private)


def test_a_missing_weights_file_fails_the_variant_clearly_and_write_nothing(demo_catalog, isolated_private):
    variant = variant_create(featurizer="finetuned", weights="weights/never-trained.pt", metric="cosine", k=K)

    assert variant.status == Variant.Status.FAILED
    assert variant.error == f"Weights file {isolated_private / 'weights' / 'never-trained.pt'} does not exist."
    assert_nothing_written(variant, isolated_private)


def test_a_variant_that_failed_for_missing_weights_builds_once_the_file_is_there(demo_catalog, isolated_private):
    variant = variant_create(featurizer="finetuned", weights="weights/ft.pt", metric="cosine", k=K)
    assert variant.status == Variant.Status.FAILED
    write_finetuned(isolated_private / "weights" / "ft.pt", seed=0, classes=["a", "b"])

    variant = variant_rebuild(variant=variant)

    assert variant.status == Variant.Status.READY, variant.error
    assert variant.error == ""
    assert variant.feature_set.status == FeatureSet.Status.READY
    assert MatchPair.objects.filter(variant=variant).count() == len(demo_catalog) * K


def test_an_empty_catalog_fails_the_variant_clearly_and_writes_nothing(db, isolated_private):
    variant = histogram_variant("l2")

    assert variant.status == Variant.Status.FAILED
    assert variant.error.startswith("The catalog is empty: import images first")
    assert_nothing_written(variant, isolated_private)


def test_a_random_control_on_an_empty_catalog_fails_clearly(db):
    variant = variant_create(metric="random", k=K)

    assert variant.status == Variant.Status.FAILED
    assert variant.error == "The catalog has 0 item(s); matching needs at least two."
    assert MatchPair.objects.count() == 0


def test_weights_retrained_in_place_are_featurized_again_for_the_next_variant(demo_catalog, isolated_private):
    path = isolated_private / "weights" / "ft.pt"
    write_finetuned(path, seed=0, classes=["a", "b"])
    first = variant_create(featurizer="finetuned", weights="weights/ft.pt", metric="cosine", k=K)
    old = np.load(isolated_private / first.feature_set.path)

    write_finetuned(path, seed=1, classes=["a", "b"])
    later = os.stat(isolated_private / first.feature_set.path).st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))
    second = variant_create(featurizer="finetuned", weights="weights/ft.pt", metric="l2", k=K)

    assert second.status == Variant.Status.READY, second.error
    assert second.feature_set_id == first.feature_set_id
    assert not np.allclose(np.load(isolated_private / second.feature_set.path), old)


# ---------------------------------------------------------------------------------------- services


def test_a_variant_name_spells_out_what_it_is(db):
    assert variant_create(featurizer="vgg16", layer="fc6", metric="hamming", build=False).name == (
        "vgg16/fc6 · untrained · hamming"
    )
    assert variant_create(featurizer="finetuned", weights="weights/ft.pt", metric="cosine", build=False).name == (
        "finetuned/hidden · ft · cosine"
    )
    assert variant_create(featurizer="colour-histogram", metric="l1", build=False).name == "colour histogram · l1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"featurizer": "vgg16", "metric": "chebyshev"}, "Unknown metric 'chebyshev'"),
        ({"metric": "l2"}, "A variant needs a featurizer unless its metric is random"),
        ({"featurizer": "alexnet", "metric": "l2"}, "Unknown featurizer 'alexnet'"),
        ({"featurizer": "vgg16", "layer": "fc8", "metric": "l2"}, "vgg16 has no layer 'fc8'"),
        ({"featurizer": "vgg16", "metric": "l2", "k": 0}, "k and n_trees must be at least 1"),
    ],
)
def test_a_variant_asked_for_wrongly_is_refused_and_nothing_is_created(db, kwargs, message):
    with pytest.raises(VariantError, match=message):
        variant_create(**kwargs, build=False)

    assert Variant.objects.count() == 0


def test_a_second_variant_with_the_same_name_is_refused(db):
    variant_create(metric="random", build=False)

    with pytest.raises(VariantError, match="A variant named 'random pairs \\(control\\)' already exists"):
        variant_create(metric="random", build=False)


def test_pausing_and_retiring_change_rotation_only(demo_catalog):
    variant = histogram_variant("l1")
    before = rows_of(variant)

    paused = variant_set_rotation(variant=variant, rotation="paused")
    assert (paused.rotation, paused.status, paused.in_rotation) == ("paused", "ready", False)
    retired = variant_set_rotation(variant=variant, rotation="retired")
    assert retired.rotation == "retired"
    active = variant_set_rotation(variant=variant, rotation="active")
    assert active.in_rotation

    assert rows_of(active) == before
    with pytest.raises(VariantError, match="Unknown rotation 'deleted'"):
        variant_set_rotation(variant=variant, rotation="deleted")


# ---------------------------------------------------------------------------------------- evaluation


def test_a_ready_variant_stores_metrics_that_match_its_pairs(demo_catalog):
    variant = histogram_variant("l1")

    category = dict(Item.objects.values_list("id", "category"))
    rows = rows_of(variant)
    first = [category[q] == category[m] for q, m, rank, *_ in rows if rank == 0]
    every = [category[q] == category[m] for q, m, *_ in rows]

    assert variant.p_at_1 == pytest.approx(sum(first) / len(first))
    assert variant.p_at_k == pytest.approx(sum(every) / len(every))
    assert 0.0 <= variant.recall_at_k <= 1.0
    assert (variant.stage, variant.progress, variant.error) == (Variant.Stage.READY, 1.0, "")
    assert variant.build_seconds is not None and variant.build_seconds >= 0


def test_evaluate_prints_the_random_control_first_then_the_best_p_at_1(demo_catalog, capsys):
    histogram = histogram_variant("l2")
    control = variant_create(metric="random", k=K)
    better = histogram_variant("cosine")
    # Scores chosen so that ordering by P@1 alone would put the control last.
    Variant.objects.filter(pk=control.pk).update(p_at_1=0.01)
    Variant.objects.filter(pk=histogram.pk).update(p_at_1=0.40)
    Variant.objects.filter(pk=better.pk).update(p_at_1=0.60)

    call_command("evaluate")

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["variant", "status", "items", "P@1"]
    assert [line.split("  ")[0] for line in lines[1:4]] == [
        "random pairs (control)",
        "colour histogram · cosine",
        "colour histogram · l2",
    ]
    assert "  1.0%" in lines[1] and " 60.0%" in lines[2] and " 40.0%" in lines[3]
    assert f"{len(demo_catalog):>6}" in lines[1]  # queries with stored pairs


def test_evaluate_says_what_to_do_without_variants(db, capsys):
    call_command("evaluate")

    assert capsys.readouterr().out.strip() == "No variants yet: run build_variants."


def test_build_stops_at_a_variant_whose_features_are_not_ready(demo_catalog):
    variant = histogram_variant("l2", build=False)

    pipeline.variant_index(variant_id=variant.pk)

    variant.refresh_from_db()
    assert variant.status == Variant.Status.FAILED
    assert variant.error.startswith("Features colour-histogram/hsv · untrained are not ready (queued)")


def stored_neighbours(variant: Variant) -> dict[int, list[int]]:
    rows = MatchPair.objects.filter(variant=variant).order_by("query_item_id", "rank")
    out: dict[int, list[int]] = {}
    for query, match in rows.values_list("query_item_id", "pair__match_item_id"):
        out.setdefault(query, []).append(match)
    return out


def test_small_catalogs_get_exact_pairs_equal_to_brute_force(demo_catalog):
    variant = histogram_variant("l1")

    ids, vectors = features_load(variant.feature_set)
    v = np.asarray(vectors, dtype=np.float64)
    position = {int(i): p for p, i in enumerate(ids)}
    assert variant.pairs_search == "exact"
    for query, matches in stored_neighbours(variant).items():
        # Textbook L1 in float64, not the code under test: the stored matches are the k closest other items.
        textbook = np.abs(v - v[position[query]]).sum(axis=1)
        textbook[position[query]] = np.inf
        np.testing.assert_allclose(textbook[[position[m] for m in matches]], np.sort(textbook)[:K], rtol=1e-5)


def test_above_the_exact_threshold_pairs_come_from_annoy_and_recall_measures_the_index(demo_catalog, settings):
    settings.VSEARCH_EXACT_MAX_ITEMS = 10

    variant = histogram_variant("l2")

    assert variant.pairs_search == "annoy"
    assert variant.status == Variant.Status.READY and 0.5 <= variant.recall_at_k <= 1.0
    assert all(len(row) == K for row in stored_neighbours(variant).values())


def test_l1_switches_to_annoy_at_its_own_smaller_threshold(demo_catalog, settings):
    settings.VSEARCH_EXACT_MAX_ITEMS_L1 = 10

    l1, l2 = histogram_variant("l1"), histogram_variant("l2")

    assert (l1.pairs_search, l2.pairs_search) == ("annoy", "exact")


@pytest.mark.django_db
def test_search_k_minus_one_doubles_annoys_budget_until_the_sample_reaches_the_target_recall(tmp_path):
    vectors = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    index.AnnoySearch("l2", n_trees=1, seed=0).fit(vectors).save(tmp_path / "l2.ann")
    annoy = index.AnnoySearch.load(tmp_path / "l2.ann")
    exact = index.ExactSearch("l2").fit(vectors)
    variant = Variant(metric="l2", n_trees=1, k=5, seed=0, search_k=-1)

    chosen = pipeline.calibrated_search_k(variant, annoy, exact)

    recall_at = pipeline.recall_probe(variant.k, annoy, exact, np.arange(200))  # the same 200 queries
    assert chosen > 6  # Annoy's own default, n_trees * (k + 1), fell short
    assert recall_at(chosen) >= pipeline.TARGET_RECALL > recall_at(chosen // 2)


def test_an_annoy_built_variant_keeps_the_search_k_it_used_and_reports_recall_at_it(demo_catalog, settings):
    settings.VSEARCH_EXACT_MAX_ITEMS = 10

    auto = histogram_variant("l2", n_trees=1)
    fixed = histogram_variant("cosine", n_trees=1, search_k=7)

    assert auto.search_k_used >= 6 and auto.recall_at_k >= pipeline.TARGET_RECALL
    assert fixed.search_k_used == 7


def test_build_variants_creates_the_defaults_and_builds_them_through_the_celery_tasks(
    demo_catalog, monkeypatch, capsys
):
    small = [
        {"metric": "random", "description": "Control"},
        {"featurizer": "colour-histogram", "layer": "hsv", "metric": "l1"},
    ]
    monkeypatch.setattr("matching.management.commands.build_variants.default_variants", lambda: small)

    call_command("build_variants", no_train=True)
    call_command("build_variants", no_train=True)  # a rerun skips what is built

    assert sorted(Variant.objects.values_list("status", flat=True)) == ["ready", "ready"]
    assert capsys.readouterr().out.count("2 of 2 variants ready.") == 2
