"""Faults: a worker killed mid-build, and Redis going away while people vote."""

from __future__ import annotations

import os
import signal
import uuid

import pytest
import redis
from django.core.cache import caches
from django.core.management import call_command

from matching import dispatch
from matching.dispatch import build_signature
from matching.models import FeatureSet, MatchPair, Variant
from matching.services import variant_create
from tests.voting.conftest import browser, next_card, vote
from tests.workers import private_redis, shared_redis_url, start_worker, stop, wait_for
from voting.models import Vote


def pairs_are_complete_and_unique(variant: Variant, items: int) -> None:
    rows = list(MatchPair.objects.filter(variant=variant).values_list("query_item_id", "pair__match_item_id", "rank"))
    assert len(rows) == items * variant.k
    assert len({(q, r) for q, _, r in rows}) == len(rows) == len({(q, m) for q, m, _ in rows})
    assert {q for q, _, _ in rows} == set(
        MatchPair.objects.filter(variant=variant).values_list("query_item_id", flat=True)
    )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_build_is_replaced_and_the_build_finishes_exactly_once(tmp_path, monkeypatch):
    from vsearch_site.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", False)
    url = shared_redis_url()
    queue = f"vsearch-kill-{uuid.uuid4().hex[:12]}"
    log = tmp_path / "workers.log"
    call_command("make_demo_catalog", n=120, seed=3, size=64, verbosity=0)
    # ResNet-18 at 224 px: featurizing 120 images takes seconds, a window to kill the worker in.
    variant = variant_create(featurizer="resnet18", layer="penultimate", weights="none", metric="l2", k=3, build=False)
    # A short visibility timeout lets the second worker take back the killed worker's unacknowledged step.
    first = start_worker(queue=queue, redis_url=url, log=log, VSEARCH_VISIBILITY_TIMEOUT="20")
    second = None
    try:
        build_signature(variant.pk, queue=queue).apply_async()
        assert wait_for(lambda: FeatureSet.objects.get(pk=variant.feature_set_id).progress > 0, 120), log.read_text()
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        variant.refresh_from_db()
        assert variant.status == Variant.Status.RUNNING and variant.stage == "featurizing"

        second = start_worker(queue=queue, redis_url=url, log=log, VSEARCH_VISIBILITY_TIMEOUT="20")
        done = wait_for(lambda: Variant.objects.get(pk=variant.pk).status in ("ready", "failed"), 240, every=1)
        variant.refresh_from_db()
        assert done and variant.status == Variant.Status.READY, (
            f"{variant.status} {variant.error}\\n{log.read_text()[-3000:]}"
        )
        pairs_are_complete_and_unique(variant, items=120)
        assert variant.pairs_search == "exact" and variant.p_at_1 is not None
    finally:
        stop(first)
        if second is not None:
            stop(second)
        redis.Redis.from_url(url).delete(queue)


def staff_client():
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(User.objects.create_user("carol", is_staff=True))
    return client


def forget_connections(app) -> None:
    """Celery caches its connection and producer pools per broker URL; a new URL needs new pools."""
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def redis_that_goes_away(tmp_path, settings):
    """This process's cache and broker on a private Redis that the test can stop and start."""
    from vsearch_site.celery import app

    with private_redis(tmp_path) as (url, start, halt):
        settings.REDIS_URL = url
        settings.VSEARCH_TASKS = "celery"
        settings.CACHES = {
            "default": {
                "BACKEND": "vsearch_site.cache.ResilientRedisCache",
                "LOCATION": url,
                "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
            }
        }
        previous = (app.conf.broker_url, app.conf.task_always_eager)
        app.conf.broker_url, app.conf.task_always_eager = url, False
        forget_connections(app)
        try:
            yield url, start, halt
        finally:
            app.conf.broker_url, app.conf.task_always_eager = previous
            forget_connections(app)
            caches["default"].__class__._down_until = 0.0


@pytest.mark.services
def test_with_redis_down_voting_and_the_leaderboard_work_and_a_new_build_waits_then_resumes(
    demo_catalog, redis_that_goes_away, settings, django_capture_on_commit_callbacks, client
):
    url, start, halt = redis_that_goes_away
    settings.VSEARCH_TASKS = "eager"
    variant_create(featurizer="colour-histogram", layer="hsv", metric="l2", k=2)
    settings.VSEARCH_TASKS = "celery"
    alice = browser()

    halt()
    card = next_card(alice)
    voted = vote(alice, card["token"], "dope")
    leaderboard = staff_client().get("/api/leaderboard")  # live numbers
    with django_capture_on_commit_callbacks(execute=True):
        waiting = variant_create(featurizer="colour-histogram", layer="hsv", metric="cosine", k=2)

    assert voted.status_code == 201 and Vote.objects.count() == 1
    assert leaderboard.status_code == 200 and leaderboard.json()["rows"][0]["votes"] == 1
    waiting.refresh_from_db()
    assert waiting.dispatch_pending and waiting.status == Variant.Status.QUEUED
    assert "Redis is unreachable" in waiting.error

    start()
    assert dispatch.resend_pending() == 1

    waiting.refresh_from_db()
    assert not waiting.dispatch_pending and waiting.error == ""
    assert redis.Redis.from_url(url).llen("celery") == 1  # the build is queued for the workers
