"""Builds through real Celery workers on a real Redis, sharing the test's PostgreSQL database: one worker, and two
sharing a featurizing run's chunks while one of them is killed."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command

from matching.dispatch import build_signature
from matching.features import features_read
from matching.models import FeatureChunk, FeatureSet, MatchPair, Variant
from matching.services import variant_create
from tests.workers import shared_redis_url, start_worker, stop, wait_for

BUILD_TIMEOUT = 120  # seconds; the build itself takes a few, the worker's start (torch import) most of the rest


@pytest.fixture
def worker(tmp_path):
    """A Celery worker process on its own queue, stopped after the test."""
    url = shared_redis_url()
    queue = f"vsearch-test-{uuid.uuid4().hex[:12]}"
    log = tmp_path / "worker.log"
    process = start_worker(queue=queue, redis_url=url, log=log)
    try:
        yield queue, process, log
    finally:
        stop(process)
        import redis

        redis.Redis.from_url(url).delete(queue)  # nothing left queued for a worker that is gone


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_variant_built_by_a_real_worker_is_ready_with_every_pair_once(worker, monkeypatch):
    from vsearch_site.celery import app

    queue, process, log = worker
    monkeypatch.setitem(app.conf, "task_always_eager", False)  # conftest makes every test eager
    call_command("make_demo_catalog", n=30, seed=7, size=64, verbosity=0)
    variant = variant_create(featurizer="colour-histogram", metric="l2", k=5, build=False)

    build_signature(variant.pk, queue=queue).apply_async()

    deadline = time.monotonic() + BUILD_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        variant.refresh_from_db()
        if variant.status in (Variant.Status.READY, Variant.Status.FAILED):
            break
        time.sleep(0.5)
    output = log.read_text()
    assert variant.status == Variant.Status.READY, f"{variant.status} {variant.error!r}; worker log:\n{output[-3000:]}"

    rows = list(MatchPair.objects.filter(variant=variant).values_list("query_item_id", "pair__match_item_id", "rank"))
    assert len(rows) == 30 * 5
    assert len({(q, r) for q, _, r in rows}) == len(rows)
    assert len({(q, m) for q, m, _ in rows}) == len(rows)
    assert all(q != m for q, m, _ in rows)
    assert variant.p_at_1 is not None and variant.recall_at_k is not None
    # Done by the worker, not inline here: each step was delivered to it.
    for task in ("matching.featurize", "matching.index", "matching.pairs", "matching.evaluate"):
        assert f"Task {task}[" in output
    assert (Path(settings.VSEARCH_PRIVATE_ROOT) / variant.index_path).exists()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_workers_share_the_chunks_survive_a_sigkill_and_give_the_features_of_one_process(
    tmp_path, monkeypatch, settings
):
    from vsearch_site.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", False)
    url = shared_redis_url()
    queue = f"vsearch-chunks-{uuid.uuid4().hex[:12]}"
    call_command("make_demo_catalog", n=48, seed=3, size=64, verbosity=0)
    # The same chunks and batches in every process (a batch's size may change a network's float rounding).
    shape = {"VSEARCH_FEATURIZE_CHUNK": "6", "VSEARCH_BATCH_SIZE": "2"}
    settings.VSEARCH_FEATURIZE_CHUNK, settings.VSEARCH_BATCH_SIZE = 6, 2
    # The one-process path: ResNet-18 at 224 px, slow enough (about a second a chunk) to be killed mid-chunk.
    reference = variant_create(featurizer="resnet18", layer="penultimate", weights="none", metric="l2", k=3)
    assert reference.status == Variant.Status.READY, reference.error
    one_ids, one_vectors = (np.array(a) for a in features_read(reference.feature_set))
    FeatureSet.objects.filter(pk=reference.feature_set_id).update(status=FeatureSet.Status.QUEUED)  # anew
    variant = variant_create(
        featurizer="resnet18", layer="penultimate", weights="none", metric="cosine", k=3, build=False
    )

    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    # The broker's visibility timeout stays at its 3 hours: the killed worker's chunk is taken over by the step that
    # finishes the run (the dead owner's pid is gone), not redelivered.
    first, second = (start_worker(queue=queue, redis_url=url, log=log, **shape) for log in logs)
    try:
        build_signature(variant.pk, queue=queue).apply_async()

        def first_is_mid_chunk() -> bool:
            return FeatureChunk.objects.filter(
                claimed_by__contains=f":{first.pid}:", status=FeatureChunk.Status.RUNNING, done__gt=0
            ).exists()

        assert wait_for(first_is_mid_chunk, 180, every=0.05), logs[0].read_text()[-3000:]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        killed = FeatureChunk.objects.get(claimed_by__contains=f":{first.pid}:").number

        done = wait_for(lambda: Variant.objects.get(pk=variant.pk).status in ("ready", "failed"), 240, every=0.5)
        variant.refresh_from_db()
        output = "\n".join(log.read_text() for log in logs)
        assert done and variant.status == Variant.Status.READY, f"{variant.status} {variant.error}\n{output[-4000:]}"
    finally:
        stop(first)
        stop(second)
        import redis

        redis.Redis.from_url(url).delete(queue)

    ids, vectors = features_read(FeatureSet.objects.get(pk=variant.feature_set_id))
    assert np.array_equal(ids, one_ids) and np.array_equal(vectors, one_vectors)
    # Every chunk was finished exactly once; only the killed one was started twice, by the other worker.
    finished = [int(n) for n in re.findall(r"chunk (\d+) of run \d+: done", output)]
    started = [int(n) for n in re.findall(r"chunk (\d+) of run \d+: embedding", output)]
    assert sorted(finished) == list(range(8))
    assert sorted(started) == sorted([*range(8), killed])
    assert f"chunk {killed} of run" in logs[1].read_text() and "featurize_finish" in logs[1].read_text()
    assert "embedding" in logs[0].read_text()  # both workers had chunks
    assert MatchPair.objects.filter(variant=variant).count() == 48 * 3
