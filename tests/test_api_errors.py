"""Every error under /api/ is a JSON body with a `detail`, whatever the body, and none is a 500.

The bodies here are what a hostile visitor sends: nested beyond the JSON parser's depth, multipart without a
boundary, more fields or files than Django takes, more bytes than it reads. Django refuses some of those itself,
before DRF sees them, with an HTML page.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from matching.services import variant_create

CSRF = "x" * 32
NESTED = '{"a":' * 100_000 + "1" + "}" * 100_000  # 600 KB: far past the parser's recursion limit


def multipart(parts: list[tuple[str, str | None]], boundary: str = "b0undary") -> bytes:
    """A multipart body of (field, filename or None) parts, each holding one byte."""
    out = []
    for field, filename in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\nx\r\n")
    return ("".join(out) + f"--{boundary}--\r\n").encode()


# (what, content type, body, a part of the detail)
HOSTILE_BODIES = [
    ("json nested 100,000 deep", "application/json", NESTED.encode(), "nested too deeply"),
    ("multipart without a boundary", "multipart/form-data", b"--x\r\n\r\n", "Invalid boundary"),
    (
        "more multipart files than Django takes",
        "multipart/form-data; boundary=b0undary",
        multipart([(f"f{i}", f"f{i}.txt") for i in range(101)]),
        "more than 100 files",
    ),
    (
        "more multipart fields than Django takes",
        "multipart/form-data; boundary=b0undary",
        multipart([(f"f{i}", None) for i in range(1001)]),
        "more than 1,000 fields",
    ),
    (
        "more form fields than Django takes",
        "application/x-www-form-urlencoded",
        "&".join(f"f{i}=1" for i in range(1001)).encode(),
        "more than 1,000 fields",
    ),
    (
        "a form body over the size limit",
        "application/x-www-form-urlencoded",
        b"a=" + b"x" * (2_621_440 + 1),
        "over the limit of 2,621,440 bytes",
    ),
    ("a json body over the size limit", "application/json", b'"' + b"x" * 2_621_440 + b'"', "over the limit"),
]
# (who calls, path, the media types its view parses): others are refused before any body is read.
ENDPOINTS = [
    ("anonymous", "/api/votes", {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}),
    ("anonymous", "/api/votes/undo", set()),
    ("staff", "/api/variants/upload", {"application/x-www-form-urlencoded", "multipart/form-data"}),
    ("staff", "/api/variants/{id}/rotation", {"application/json", "application/x-www-form-urlencoded"}),
]


@pytest.fixture
def clients(db) -> dict[str, Client]:
    staff = User.objects.create_user("sid", password="pw-for-tests-only", is_staff=True)
    anonymous = Client(raise_request_exception=False, HTTP_X_CSRFTOKEN=CSRF)
    anonymous.cookies["csrftoken"] = CSRF
    token = Token.objects.create(user=staff).key
    return {"anonymous": anonymous, "staff": Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {token}")}


def assert_json_error(response, status: int | None = None) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if status is not None:
        assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    body = response.json()
    assert body["detail"], body
    return body


@pytest.mark.parametrize(("who", "path", "parses"), ENDPOINTS, ids=[p for _, p, _ in ENDPOINTS])
@pytest.mark.parametrize(("case", "content_type", "body", "detail"), HOSTILE_BODIES, ids=[c[0] for c in HOSTILE_BODIES])
def test_a_hostile_body_gets_a_json_400_naming_the_problem(
    clients, who, path, parses, case, content_type, body, detail
):
    variant = variant_create(metric="random", build=False)

    response = clients[who].post(path.format(id=variant.pk), body, content_type=content_type)

    if content_type.split(";")[0] in parses:
        assert detail in assert_json_error(response, 400)["detail"]
    else:
        assert_json_error(response)  # refused for what it is (415, 404), still JSON


def test_a_request_for_another_host_gets_a_json_400_under_the_api_and_html_elsewhere(db):
    client = Client(raise_request_exception=False)

    api = client.get("/api/leaderboard", HTTP_HOST="evil.example")
    page = client.get("/leaderboard/", HTTP_HOST="evil.example")

    assert assert_json_error(api, 400)["detail"] == "The request was not valid."  # no echo of the host
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")


def test_in_debug_mode_api_errors_are_json_too(db, settings):
    settings.DEBUG = True
    client = Client(raise_request_exception=False, HTTP_X_CSRFTOKEN=CSRF)
    client.cookies["csrftoken"] = CSRF

    missing = client.get("/api/nothing-here")
    too_many = client.post(
        "/api/votes", "&".join(f"f{i}=1" for i in range(1001)), content_type="application/x-www-form-urlencoded"
    )

    assert assert_json_error(missing, 404)["detail"] == "Not Found."
    assert "more than 1,000 fields" in assert_json_error(too_many, 400)["detail"]
