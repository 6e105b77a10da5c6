"""One build through a real Celery worker on a real Redis, sharing the test's PostgreSQL database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from matching.models import MatchPair, Variant
from matching.services import variant_create
from matching.tasks import build_chain
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 120  # seconds; the build itself takes a few, the worker's start (torch import) most of the rest


def database_url() -> str:
    """The URL of the database this test runs in (pytest-django's test_ copy), for the worker."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    host = (db["HOST"] or "") + (f":{db['PORT']}" if db["PORT"] else "")
    return f"postgres://{credentials}{'@' if credentials else ''}{host}/{quote(db['NAME'])}"


def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("REDIS_URL is not set: the worker test needs a Redis broker")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {url} is unreachable ({exc})")
    return url


@pytest.fixture
def worker(tmp_path):
    """A Celery worker process on its own queue (other runs may share the Redis), stopped after the test."""
    if connection.vendor != "postgresql":
        skip_or_fail(
            f"the worker test needs PostgreSQL (DATABASE_URL): a worker process cannot see this {connection.vendor} "
            "test database"
        )
    url = redis_url()
    queue = f"vsearch-test-{uuid.uuid4().hex[:12]}"
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        REDIS_URL=url,
        VSEARCH_TASKS="celery",
        VSEARCH_MEDIA_ROOT=str(settings.MEDIA_ROOT),
        VSEARCH_DATA_DIR=str(tmp_path / "worker-data"),
        VSEARCH_ALLOW_DOWNLOADS="0",
        DJANGO_SECRET_KEY="worker-test",
    )
    log = tmp_path / "worker.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "vsearch_site",
        "worker",
        "-P",
        "solo",
        "-c",
        "1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "-l",
        "info",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield queue, process, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
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

    steps = build_chain(variant.pk)
    for step in steps.tasks:
        step.set(queue=queue)
    steps.apply_async()

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
    assert (Path(settings.MEDIA_ROOT) / variant.index_path).exists()
