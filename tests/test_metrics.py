"""Prometheus metrics at /metrics: only for staff and allow-listed addresses; the application's counters move with
what they count; several processes add up in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import REGISTRY

from tests.voting.conftest import browser, fresh_cache, next_card, variants, vote  # noqa: F401 - fixtures
from vsearch_site.env import env_networks

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = "203.0.113.7"  # TEST-NET-3: an address on the public internet


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_anonymous_request_from_a_public_address_gets_a_404_and_no_metrics(db, client):
    response = client.get("/metrics", REMOTE_ADDR=PUBLIC)

    assert response.status_code == 404
    assert b"vsearch_" not in response.content and b"django_http" not in response.content


def test_a_forged_x_forwarded_for_does_not_open_the_metrics_without_a_trusted_proxy(db, client):
    response = client.get("/metrics", REMOTE_ADDR=PUBLIC, HTTP_X_FORWARDED_FOR="127.0.0.1")

    assert response.status_code == 404


def test_an_allow_listed_network_behind_the_trusted_proxy_reads_the_metrics(db, client, settings):
    settings.VSEARCH_METRICS_ALLOW = ["10.0.0.0/8"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    allowed = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.20.30.40")
    refused = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=PUBLIC)

    assert allowed.status_code == 200 and allowed["Content-Type"].startswith("text/plain")
    assert b"vsearch_votes_recorded_total" in allowed.content
    assert refused.status_code == 404


def test_staff_read_the_metrics_from_anywhere(db, client):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("erin", is_staff=True))
    response = client.get("/metrics", REMOTE_ADDR=PUBLIC)

    assert response.status_code == 200
    body = response.content.decode()
    for name in ("vsearch_cards_served_total", "vsearch_votes_recorded_total", "vsearch_gold_failures_total"):
        assert name in body
    assert "django_http_requests_latency_seconds_by_view_method" in body  # django-prometheus's own


@pytest.mark.usefixtures("variants")
def test_a_vote_increments_votes_recorded_and_a_card_cards_served_but_a_replay_counts_nothing(client):
    alice = browser()
    cards, votes = (
        sample("vsearch_cards_served_total", kind="model"),
        sample("vsearch_votes_recorded_total", kind="model"),
    )
    card = next_card(alice)

    assert vote(alice, card["token"], "dope").status_code == 201
    assert vote(alice, card["token"], "dope").status_code == 201  # a client retry: stored once, counted once

    assert sample("vsearch_votes_recorded_total", kind="model") == votes + 1
    # The first card, the one the vote's answer carries, and the replay's answer: three cards handed out.
    assert sample("vsearch_cards_served_total", kind="model") == cards + 3
    text = client.get("/metrics").content.decode()  # the test client comes from 127.0.0.1, allow-listed by default
    line = next(x for x in text.splitlines() if x.startswith('vsearch_votes_recorded_total{kind="model"}'))
    assert float(line.split()[-1]) == votes + 1


@pytest.mark.usefixtures("variants")
def test_a_gold_card_answered_wrongly_is_a_gold_failure(settings):
    from voting.services import gold_cards_ensure

    gold_cards_ensure(count=10, seed=2)
    settings.VSEARCH_GOLD_IN_FIRST = settings.VSEARCH_GOLD_FIRST_CARDS = 10  # every one of the first cards is gold
    alice = browser()
    failures, gold_votes = sample("vsearch_gold_failures_total"), sample("vsearch_votes_recorded_total", kind="gold")
    from django.core import signing

    from voting.tokens import SALT, token_read

    for _ in range(4):
        token = next_card(alice)["token"]
        known = token_read(token, voter_key=signing.loads(token, salt=SALT)["v"]).gold  # the server's own reading
        assert known is not None
        assert vote(alice, token, "nope" if known else "dope").status_code == 201  # against the known answer

    assert sample("vsearch_votes_recorded_total", kind="gold") == gold_votes + 4
    assert sample("vsearch_gold_failures_total") == failures + 4


def test_each_build_step_records_its_duration(demo_catalog):
    from matching.services import variant_create

    before = {s: sample("vsearch_build_step_seconds_count", step=s, outcome="done") for s in ("indexing", "pairs")}

    variant_create(featurizer="colour-histogram", layer="hsv", metric="l2", k=2)

    for step, count in before.items():
        assert sample("vsearch_build_step_seconds_count", step=step, outcome="done") == count + 1


def test_a_malformed_allow_list_stops_the_start(monkeypatch):
    monkeypatch.setenv("VSEARCH_METRICS_ALLOW", "127.0.0.1,not-a-network")

    with pytest.raises(ImproperlyConfigured, match="VSEARCH_METRICS_ALLOW"):
        env_networks("VSEARCH_METRICS_ALLOW", [])


COUNT_ONE_VOTE = """
import sys
from vsearch_site import metrics
metrics.vote_recorded(gold_answer=True, dope=False)
metrics.card_served(gold=False)
"""

EXPORT = """
import django
django.setup()
from prometheus_client import generate_latest
from vsearch_site import metrics
print(generate_latest(metrics.registry()).decode())
"""


def test_in_multiprocess_mode_metrics_add_up_over_processes_that_have_exited(tmp_path):
    """What gunicorn's workers (and a Celery worker on the same host) do: each writes into PROMETHEUS_MULTIPROC_DIR,
    and /metrics, in whichever process answers, reads every one of them."""
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "vsearch_site.settings",
        "VSEARCH_DATA_DIR": str(tmp_path / "data"),
    }
    for _ in range(3):  # three workers, each counting one vote and one card, then gone
        subprocess.run([sys.executable, "-c", COUNT_ONE_VOTE], cwd=ROOT, env=env, check=True, timeout=120)

    exported = subprocess.run(
        [sys.executable, "-c", EXPORT], cwd=ROOT, env=env, check=True, timeout=120, capture_output=True, text=True
    ).stdout

    lines = dict(line.rsplit(" ", 1) for line in exported.splitlines() if line and not line.startswith("#"))
    assert float(lines['vsearch_votes_recorded_total{kind="gold"}']) == 3.0
    assert float(lines["vsearch_gold_failures_total"]) == 3.0
    assert float(lines['vsearch_cards_served_total{kind="model"}']) == 3.0


def test_gunicorn_sets_the_multiprocess_folder_and_clears_files_of_processes_that_are_gone(tmp_path, monkeypatch):
    import runpy

    folder = tmp_path / "prometheus"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    config = runpy.run_path(str(ROOT / "vsearch_site" / "gunicorn.conf.py"))
    assert folder.is_dir() and config["preload_app"] is True and config["worker_class"] == "gthread"
    stale, live = folder / f"counter_{dead.pid}.db", folder / f"counter_{os.getpid()}.db"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")

    config["on_starting"](None)

    assert not stale.exists() and live.exists()
