"""Prometheus metrics of the application itself (django-prometheus adds the request, cache and migration ones), and
who may read them.

Every metric is created once, here, with its label values bound in advance: on the vote path a count is one
`inc()` on a ready child (a lock and an addition, or a write into a memory-mapped file in multiprocess mode), never a
label lookup. Under gunicorn each worker counts on its own; with PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py does
it) every process writes its values into that folder and /metrics adds them up (prometheus_client's multiprocess
mode), Celery workers on the same host included, so build durations show up beside the web's counters.
"""

from __future__ import annotations

import ipaddress
import os
import time
from contextlib import contextmanager
from functools import cache

from django.conf import settings
from django.http import Http404, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from vsearch_site.clients import client_address

CARDS_SERVED = Counter(
    "vsearch_cards_served", "Cards handed to voters, by kind (a model's card or a gold card).", ["kind"]
)
CARDS_MODEL, CARDS_GOLD = CARDS_SERVED.labels(kind="model"), CARDS_SERVED.labels(kind="gold")
VOTES_RECORDED = Counter("vsearch_votes_recorded", "Votes stored (a replayed token is not counted again).", ["kind"])
VOTES_MODEL, VOTES_GOLD = VOTES_RECORDED.labels(kind="model"), VOTES_RECORDED.labels(kind="gold")
GOLD_FAILURES = Counter("vsearch_gold_failures", "Gold cards answered against their known answer.")
# A build step takes from under a second (pairs of a small catalog) to hours (featurizing a large one).
BUILD_SECONDS = Histogram(
    "vsearch_build_step_seconds",
    "Duration of each build step (featurizing, indexing, pairs, evaluating), by how it ended.",
    ["step", "outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, float("inf")),
)


def card_served(*, gold: bool) -> None:
    (CARDS_GOLD if gold else CARDS_MODEL).inc()


def vote_recorded(*, gold_answer: bool | None, dope: bool) -> None:
    """A stored vote; on a gold card, whether it contradicts the card's known answer (a gold failure)."""
    if gold_answer is None:
        VOTES_MODEL.inc()
        return
    VOTES_GOLD.inc()
    if dope != gold_answer:
        GOLD_FAILURES.inc()


@contextmanager
def build_step_timed(step: str):
    """Observe how long the block (one build step) took, labelled by step and by whether it raised."""
    started = time.perf_counter()
    outcome = "failed"
    try:
        yield
        outcome = "done"
    finally:
        BUILD_SECONDS.labels(step=step, outcome=outcome).observe(time.perf_counter() - started)


# ---------------------------------------------------------------------------------------- who may read them


@cache
def _allowed_networks(spec: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(part, strict=False) for part in spec)


def address_allowed(address: str | None) -> bool:
    """Whether a client address is in VSEARCH_METRICS_ALLOW (addresses or networks; IPv4-mapped IPv6 as IPv4)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _allowed_networks(tuple(settings.VSEARCH_METRICS_ALLOW)))


def registry():
    """The registry to export: every process's values in multiprocess mode, this process's otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


def metrics_view(request):
    """GET /metrics: staff, or a client whose address (resolved as the throttles resolve it, VSEARCH_NUM_PROXIES
    deep into X-Forwarded-For) is allow-listed. Anyone else gets the site's 404, as if there were nothing here."""
    user = getattr(request, "user", None)
    if not (user is not None and user.is_staff) and not address_allowed(client_address(request)):
        raise Http404("No such page.")
    response = HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
