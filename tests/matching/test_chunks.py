"""Featurizing in chunks: the same features as one pass, each chunk claimed once and written atomically, progress
summed over the chunks, a failure that ends the whole run, and the Celery tasks that spread the chunks."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest
from django.utils import timezone

from matching import featurizing, pipeline
from matching.claims import HOST
from matching.dispatch import build_signature, featurize_chunks_send, featurize_finish_signature
from matching.features import features_read
from matching.featurizers import FeaturizerError
from matching.models import FeatureChunk, FeatureRun, FeatureSet, MatchPair, Variant
from matching.services import variant_create
from matching.storage import private_path


def queued(metric: str = "l2") -> Variant:
    return variant_create(featurizer="colour-histogram", metric=metric, k=3, build=False)


def dead_owner() -> str:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{HOST}:{process.pid}:deadbeef"


@pytest.fixture
def embedded(monkeypatch) -> list[list[int]]:
    """The items of each chunk a featurizer embeds."""
    seen: list[list[int]] = []
    real = featurizing.ItemImages

    class Spy(real):
        def __init__(self, rows, transform):
            seen.append([row[0] for row in rows])
            super().__init__(rows, transform)

    monkeypatch.setattr(featurizing, "ItemImages", Spy)
    return seen


def test_chunked_features_are_identical_to_one_pass_over_the_catalog(demo_catalog, settings, embedded):
    settings.VSEARCH_FEATURIZE_CHUNK = 1000
    whole = variant_create(featurizer="colour-histogram", metric="l2", k=3)
    one_ids, one_vectors = (np.array(a) for a in features_read(whole.feature_set))
    FeatureSet.objects.filter(pk=whole.feature_set_id).update(status=FeatureSet.Status.QUEUED)  # featurize anew
    settings.VSEARCH_FEATURIZE_CHUNK = 7
    embedded.clear()

    chunked = variant_create(featurizer="colour-histogram", metric="cosine", k=3)

    assert [len(chunk) for chunk in embedded] == [7, 7, 7, 7, 2]
    ids, vectors = features_read(chunked.feature_set)
    assert np.array_equal(ids, one_ids) and np.array_equal(vectors, one_vectors)
    assert chunked.feature_set.revision == 2 and chunked.feature_set.generation == 2  # computed anew
    assert FeatureRun.objects.count() == 0 and FeatureChunk.objects.count() == 0  # merged and cleared
    assert not list(private_path("features/colour-histogram/none").glob("run-*"))


def test_progress_is_the_sum_over_the_chunks(demo_catalog, settings):
    settings.VSEARCH_FEATURIZE_CHUNK = 8  # chunks of 8, 8, 8, 6
    variant = queued()
    run = featurizing.run_plan(feature_set=variant.feature_set)
    Variant.objects.filter(pk=variant.pk).update(status=Variant.Status.RUNNING, stage=Variant.Stage.FEATURIZING)
    chunks = list(run.chunks.order_by("number"))

    pipeline.chunk_featurize(chunk_id=chunks[1].pk)
    pipeline.chunk_featurize(chunk_id=chunks[3].pk)

    assert featurizing.run_progress(run) == pytest.approx(14 / 30)
    assert FeatureSet.objects.get(pk=variant.feature_set_id).progress == pytest.approx(14 / 30)
    low, high = pipeline.STAGE_SPAN["featurizing"]
    assert Variant.objects.get(pk=variant.pk).progress == pytest.approx(low + (high - low) * 14 / 30)


def test_a_second_planner_joins_the_run_under_way(demo_catalog, settings):
    settings.VSEARCH_FEATURIZE_CHUNK = 10
    variant = queued()

    first = featurizing.run_plan(feature_set=variant.feature_set)
    second = featurizing.run_plan(feature_set=variant.feature_set)
    other_layer_of_nothing = featurizing.run_plan(feature_set=queued("cosine").feature_set)

    assert first.pk == second.pk == other_layer_of_nothing.pk
    assert list(first.chunks.values_list("size", flat=True)) == [10, 10, 10]


def test_a_chunk_held_by_a_live_process_is_not_embedded_again(demo_catalog, settings, embedded):
    settings.VSEARCH_FEATURIZE_CHUNK = 10
    run = featurizing.run_plan(feature_set=queued().feature_set)
    chunk = run.chunks.order_by("number").first()
    FeatureChunk.objects.filter(pk=chunk.pk).update(
        status=FeatureChunk.Status.RUNNING, claimed_by=f"{HOST}:1:alive", heartbeat_at=timezone.now()
    )  # pid 1 exists: a live owner

    assert featurizing.chunk_featurize(chunk_id=chunk.pk) is False
    assert embedded == []
    # The merge waits for it rather than merging without it.
    assert featurizing.run_merge(run_id=run.pk) == featurizing.Outcome.WAITING


def test_a_chunk_whose_owner_died_is_taken_over_and_a_done_chunk_is_not_embedded_twice(
    demo_catalog, settings, embedded
):
    settings.VSEARCH_FEATURIZE_CHUNK = 10
    run = featurizing.run_plan(feature_set=queued().feature_set)
    chunk = run.chunks.order_by("number").first()
    FeatureChunk.objects.filter(pk=chunk.pk).update(
        status=FeatureChunk.Status.RUNNING, claimed_by=dead_owner(), heartbeat_at=timezone.now(), done=4
    )

    assert featurizing.chunk_featurize(chunk_id=chunk.pk) is True
    assert featurizing.chunk_featurize(chunk_id=chunk.pk) is False  # redelivered after it finished

    assert embedded == [chunk.item_ids]
    chunk.refresh_from_db()
    assert (chunk.status, chunk.done, chunk.claimed_by) == (FeatureChunk.Status.DONE, 10, "")


def test_a_chunk_whose_file_was_written_before_its_owner_died_is_done_without_embedding(
    demo_catalog, settings, embedded
):
    settings.VSEARCH_FEATURIZE_CHUNK = 10
    run = featurizing.run_plan(feature_set=queued().feature_set)
    chunk = run.chunks.order_by("number").first()
    featurizing.chunk_featurize(chunk_id=chunk.pk)
    written = private_path(featurizing.chunk_path(run, chunk.number)).read_bytes()
    # Killed between writing the file and marking the row done:
    FeatureChunk.objects.filter(pk=chunk.pk).update(
        status=FeatureChunk.Status.RUNNING, claimed_by=dead_owner(), heartbeat_at=timezone.now(), done=3
    )
    embedded.clear()

    assert featurizing.chunk_featurize(chunk_id=chunk.pk) is False

    assert embedded == []
    assert FeatureChunk.objects.get(pk=chunk.pk).status == FeatureChunk.Status.DONE
    assert private_path(featurizing.chunk_path(run, chunk.number)).read_bytes() == written


def test_a_truncated_chunk_file_is_embedded_again(demo_catalog, settings, embedded):
    settings.VSEARCH_FEATURIZE_CHUNK = 10
    run = featurizing.run_plan(feature_set=queued().feature_set)
    chunk = run.chunks.order_by("number").first()
    path = private_path(featurizing.chunk_path(run, chunk.number))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not a whole archive")

    assert featurizing.chunk_featurize(chunk_id=chunk.pk) is True
    assert embedded == [chunk.item_ids]


def test_a_chunk_that_fails_ends_the_run_and_the_build_with_its_message(demo_catalog, settings, monkeypatch):
    settings.VSEARCH_FEATURIZE_CHUNK = 10
    calls = []
    real = featurizing._embed_chunk

    def fail_on_second(chunk, *args):
        calls.append(chunk.number)
        if chunk.number == 1:
            raise FeaturizerError("Weights file x.pt does not fit: it is a cat picture.")
        return real(chunk, *args)

    monkeypatch.setattr(featurizing, "_embed_chunk", fail_on_second)

    variant = variant_create(featurizer="colour-histogram", metric="l2", k=3)

    assert calls == [0, 1]  # nothing embedded after the failure
    assert (variant.status, variant.stage) == (Variant.Status.FAILED, Variant.Stage.FEATURIZING)
    assert variant.error == "Weights file x.pt does not fit: it is a cat picture."
    assert variant.feature_set.status == FeatureSet.Status.FAILED
    assert variant.feature_set.error == variant.error
    assert FeatureRun.objects.count() == 0 and not list(private_path("features").rglob("*.npz"))


def test_the_celery_tasks_build_the_variant_through_chunk_tasks_and_a_finishing_step(demo_catalog, settings, embedded):
    """Through the tasks a worker runs (eagerly here): featurize plans and sends a task per chunk, the finishing step
    that replaces it merges, and the rest of the build follows."""
    settings.VSEARCH_FEATURIZE_CHUNK = 9
    variant = queued()

    build_signature(variant.pk).apply()

    variant.refresh_from_db()
    assert variant.status == Variant.Status.READY, variant.error
    assert [len(chunk) for chunk in embedded] == [9, 9, 9, 3]
    assert MatchPair.objects.filter(variant=variant).count() == len(demo_catalog) * 3


def test_only_chunks_not_done_are_sent_and_the_finishing_step_embeds_what_no_task_took(
    demo_catalog, settings, embedded, monkeypatch
):
    settings.VSEARCH_FEATURIZE_CHUNK = 10
    variant = queued()
    run = featurizing.run_plan(feature_set=variant.feature_set)
    first, *others = run.chunks.order_by("number")
    featurizing.chunk_featurize(chunk_id=first.pk)
    sent = []
    monkeypatch.setattr(
        "matching.dispatch.group", lambda tasks: types.SimpleNamespace(apply_async=lambda: sent.extend(tasks))
    )

    assert featurize_chunks_send(run.pk, queue="q") == 2

    assert [task.args[0] for task in sent] == [chunk.pk for chunk in others]
    assert {task.options["queue"] for task in sent} == {"q"}
    finish = featurize_finish_signature(variant.pk, run.pk, queue="q")
    assert (finish.task, finish.args) == ("matching.featurize_finish", (variant.pk, run.pk))
    # The tasks were lost (say): the finishing step embeds their chunks itself, then merges.
    Variant.objects.filter(pk=variant.pk).update(status=Variant.Status.RUNNING, stage=Variant.Stage.FEATURIZING)
    finish.apply()
    assert embedded[1:] == [chunk.item_ids for chunk in others]
    assert FeatureSet.objects.get(pk=variant.feature_set_id).status == FeatureSet.Status.READY
    assert FeatureRun.objects.count() == 0
