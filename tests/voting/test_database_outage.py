"""A database outage: the API answers 503 with Retry-After and a JSON detail (never 500), pages a plain 503 page, and
a vote is acknowledged only once it is stored, exactly once."""

from __future__ import annotations

import re
import socket
import sys

import pytest
from django.db import OperationalError, connection
from django.test import RequestFactory

from tests.voting.conftest import next_card, vote
from voting.models import Vote
from vsearch_site import views

SAVEPOINTS = re.compile(r"\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.IGNORECASE)
REFUSED = "connection to server at 127.0.0.1, port 5432 failed: Connection refused"


class Outage:
    """Every statement fails as it does while PostgreSQL restarts; `after(text)` lets statements through until one
    containing `text` has run (the outage begins right after it). The savepoints of the test's own transaction
    still work, so the test can look at the database afterwards."""

    def __init__(self):
        self.down = True
        self.until: str | None = None

    def after(self, statement: str) -> Outage:
        self.down, self.until = False, statement.upper()
        return self

    def __call__(self, execute, sql, params, many, context):
        if self.down and not SAVEPOINTS.match(sql):
            raise OperationalError(REFUSED)
        result = execute(sql, params, many, context)
        if self.until and self.until in sql.upper():
            self.down = True
        return result


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    assert response["Content-Type"].startswith("application/json")
    assert "database is unavailable" in response.json()["detail"]


def test_with_the_database_down_a_card_request_is_503_with_retry_after_not_500(variants, alice):
    with connection.execute_wrapper(Outage()):
        response = alice.get("/api/pairs/next")

    assert_unavailable(response)


def test_with_the_database_down_a_vote_is_503_and_no_vote_row_is_written(variants, alice):
    card = next_card(alice)

    with connection.execute_wrapper(Outage()):
        response = vote(alice, card["token"], "dope")

    assert_unavailable(response)
    assert Vote.objects.count() == 0
    assert vote(alice, card["token"], "dope").status_code == 201  # once it is back, the same vote goes through
    assert Vote.objects.count() == 1


def test_a_vote_stored_just_before_the_outage_is_stored_once_and_its_retry_is_201(variants, alice):
    card = next_card(alice)

    # The outage begins once the statement storing the vote has run. On PostgreSQL that statement also found the
    # next card, so the vote is acknowledged; elsewhere the next card's statement fails and the answer is 503.
    with connection.execute_wrapper(Outage().after('INSERT INTO "voting_vote"')):
        response = vote(alice, card["token"], "nope")

    if connection.vendor == "postgresql":
        assert response.status_code == 201 and "token" in response.json()["next"]
    else:
        assert_unavailable(response)
    assert Vote.objects.count() == 1
    retry = vote(alice, card["token"], "nope")  # the client did not see (or did not trust) the answer
    assert retry.status_code == 201 and "token" in retry.json()["next"]
    assert Vote.objects.count() == 1


def test_undo_during_an_outage_is_503_and_keeps_the_vote(variants, alice):
    vote(alice, next_card(alice)["token"])

    with connection.execute_wrapper(Outage()):
        response = alice.post("/api/votes/undo", {}, format="json")

    assert_unavailable(response)
    assert Vote.objects.count() == 1


def test_a_page_that_loses_the_database_is_a_plain_503_page(db, client):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("dana", is_staff=True))

    with connection.execute_wrapper(Outage()):
        response = client.get("/staff/")

    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert response["Content-Type"].startswith("text/html")
    assert b"Back in a moment" in response.content


@pytest.mark.parametrize("path", ["/api/votes", "/leaderboard/"])
def test_a_database_error_raised_outside_any_view_is_503_too(db, path):
    request = RequestFactory().get(path)
    try:
        raise OperationalError(REFUSED)
    except OperationalError:
        assert sys.exc_info()[0] is OperationalError
        response = views.server_error(request)  # handler500, called inside the exception as Django calls it

    assert response.status_code == 503 and int(response["Retry-After"]) > 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.django_db(transaction=True)
def test_postgresql_unreachable_on_a_closed_port_gives_503_for_cards_and_votes(variants, alice):
    if connection.vendor != "postgresql":
        pytest.skip("the real connection failure is PostgreSQL's; other engines are covered by the tests above")
    card = next_card(alice)
    real_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(closed_port())
    from voting import design, sampling

    sampling.memo.clear()  # nothing cached in this process stands in for the database
    design.memo.clear()
    try:
        from django.core.cache import cache

        cache.clear()
        answers = [alice.get("/api/pairs/next"), vote(alice, card["token"], "dope")]
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real_port

    for response in answers:
        assert_unavailable(response)
    assert Vote.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_terminated_is_replaced_before_the_next_request_uses_it(variants, alice):
    """What a PostgreSQL restart does to every persistent connection: the next request reconnects instead of failing."""
    if connection.vendor != "postgresql":
        pytest.skip("the health check of persistent connections is PostgreSQL's")
    import psycopg

    next_card(alice)
    old_pid = connection.connection.info.backend_pid
    dsn = {k: v for k, v in connection.get_connection_params().items() if k in {"host", "port", "user", "dbname"}}
    with psycopg.connect(**dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [old_pid])
    connection.health_check_done = False  # a new request, as far as the connection is concerned

    response = alice.get("/api/pairs/next")

    assert response.status_code == 200, response.content
    assert connection.connection.info.backend_pid != old_pid
