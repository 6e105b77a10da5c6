"""One build through a real Celery worker on a real Redis, sharing the test's PostgreSQL database."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from matching.dispatch import build_signature
from matching.models import MatchPair, Variant
from matching.services import variant_create
from tests.workers import shared_redis_url, start_worker, stop

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
