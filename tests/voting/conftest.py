"""A small voting world: a 30-item demo catalog, two built variants, and voters alice and bob."""

from __future__ import annotations

import itertools
import time
import types

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from matching.models import Item, MatchPair, Pair, Variant
from matching.services import variant_create
from voting.models import Vote, Voter

_tokens = itertools.count()


@pytest.fixture(autouse=True)
def fixed_throttle_window(monkeypatch):
    """Throttles count in fixed windows; a test must not straddle a window's end by chance."""
    monkeypatch.setattr(
        "voting.throttles.time", types.SimpleNamespace(time=lambda: 1_800_000_000.0, monotonic=time.monotonic)
    )


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()  # rotation, exposure counts and throttle history must not leak between tests
    yield
    cache.clear()


@pytest.fixture
def variants(demo_catalog) -> list[Variant]:
    built = [
        variant_create(featurizer="colour-histogram", layer="hsv", metric="l2", k=2),
        variant_create(metric="random", k=2),
    ]
    assert all(v.status == Variant.Status.READY for v in built), [v.error for v in built]
    return built


def browser() -> APIClient:
    """A client that behaves like the swipe page: CSRF enforced, token sent from the cookie."""
    client = APIClient(enforce_csrf_checks=True)
    client.get("/")  # the page sets the csrftoken cookie
    client.credentials(HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    return client


@pytest.fixture
def alice(db) -> APIClient:
    return browser()


@pytest.fixture
def bob(db) -> APIClient:
    return browser()


@pytest.fixture
def staff(db) -> APIClient:
    """A staff member's client: the leaderboard live, not the public snapshot."""
    from django.contrib.auth.models import User

    client = APIClient()
    client.force_authenticate(User.objects.create_user("carol", is_staff=True))
    return client


def next_card(client: APIClient) -> dict:
    response = client.get("/api/pairs/next")
    assert response.status_code == 200, response.content
    return response.json()


def vote(client: APIClient, token: str, verdict: str = "dope", **extra):
    return client.post("/api/votes", {"token": token, "verdict": verdict, **extra}, format="json")


def add_votes(variant: Variant, dope: int, nope: int) -> None:
    """Votes by fresh voters on the variant's first pair(s), straight into the database."""
    pairs = list(MatchPair.objects.filter(variant=variant).values_list("pair_id", flat=True))
    rows = []
    for i, verdict in enumerate([True] * dope + [False] * nope):
        rows.append(
            Vote(
                voter=Voter.objects.create(), pair_id=pairs[i % len(pairs)], dope=verdict, token_id=f"t{next(_tokens)}"
            )
        )
    Vote.objects.bulk_create(rows)


def items_pair(a: Item, b: Item) -> Pair:
    return Pair.objects.get_or_create(query_item=a, match_item=b)[0]
