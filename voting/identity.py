"""Who is voting: a signed cookie carries an anonymous voter's id; a logged-in user has their own voter."""

from __future__ import annotations

import uuid

from voting.models import Voter

COOKIE = "vsearch_voter"
SALT = "vsearch.voter"
MAX_AGE = 365 * 24 * 3600


def voter_from_request(request, *, create: bool) -> Voter | None:
    """The request's voter; with create=True a new anonymous one is made (and marked for the cookie)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        voter, _ = Voter.objects.get_or_create(user=user)
        return voter
    raw = request.get_signed_cookie(COOKIE, default=None, salt=SALT, max_age=MAX_AGE)
    if raw:
        pk, _, rest = raw.partition(".")
        try:
            if rest:  # "pk.uuid", signed by us: the voter needs no query
                return Voter(pk=int(pk), uuid=uuid.UUID(rest))
            voter = Voter.objects.filter(uuid=uuid.UUID(raw)).first()
        except ValueError:
            voter = None
        if voter is not None:
            request._new_voter = voter  # an older cookie (uuid only): reissued with the id
            return voter
    if not create:
        return None
    voter = Voter.objects.create()
    request._new_voter = voter
    return voter


def remember_voter(request, response) -> None:
    voter = getattr(request, "_new_voter", None)
    if voter is not None:
        response.set_signed_cookie(
            COOKIE,
            f"{voter.pk}.{voter.uuid}",
            salt=SALT,
            max_age=MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure(),
        )


def voter_key(request) -> str | None:
    """The voter's id from the cookie without touching the database (for throttling)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user-{user.pk}"
    raw = request.get_signed_cookie(COOKIE, default=None, salt=SALT, max_age=MAX_AGE)
    return f"voter-{raw}" if raw else None
