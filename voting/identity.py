"""Who is voting: a signed cookie carries an anonymous voter's id; a logged-in user has their own voter.

Identities are cheap to check and not cheap to make: a visitor gets a signed cookie with a fresh id, but no
database row until their first vote (`voter_saved`); a cookieless script that only fetches cards leaves nothing.
"""

from __future__ import annotations

import uuid

from voting.models import Voter

COOKIE = "vsearch_voter"
SALT = "vsearch.voter"
MAX_AGE = 365 * 24 * 3600
UNSAVED = "new"  # cookie "new.<uuid>": an id that has not voted yet (no row); "<pk>.<uuid>": a saved voter


def voter_from_request(request, *, create: bool) -> Voter | None:
    """The request's voter, saved (pk set) or not yet (pk None). With create=True a visitor without a cookie
    gets a new unsaved voter (and the cookie that carries it); with create=False, None."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Voter.objects.filter(user=user).first() or Voter(user=user)
    raw = request.get_signed_cookie(COOKIE, default=None, salt=SALT, max_age=MAX_AGE)
    if raw:
        voter = _from_cookie(raw)
        if voter is not None:
            if voter.pk is not None and "." not in raw:
                request._new_voter = voter  # an older cookie (uuid only): reissued with the id
            return voter
    if not create:
        return None
    voter = Voter(uuid=uuid.uuid4())
    request._new_voter = voter
    return voter


def _from_cookie(raw: str) -> Voter | None:
    head, _, rest = raw.partition(".")
    try:
        if rest and head == UNSAVED:
            return Voter(uuid=uuid.UUID(rest))
        if rest:  # "pk.uuid", signed by us: the voter needs no query
            return Voter(pk=int(head), uuid=uuid.UUID(rest))
        key = uuid.UUID(raw)  # the first cookie format: a saved voter's uuid alone
    except ValueError:
        return None
    return Voter.objects.filter(uuid=key).first() or Voter(uuid=key)


def voter_saved(voter: Voter) -> Voter:
    """The voter's row, created now if this is their first vote (two first votes at once make one row)."""
    if voter.pk is not None:
        return voter
    if voter.user_id is not None:
        return Voter.objects.get_or_create(user_id=voter.user_id)[0]
    return Voter.objects.get_or_create(uuid=voter.uuid)[0]


def voter_key(voter: Voter) -> str:
    """What a vote token is bound to: the voter's uuid (known before the row exists)."""
    return voter.uuid.hex


def remember_voter(request, response) -> None:
    voter = getattr(request, "_new_voter", None)
    if voter is not None:
        value = f"{voter.pk}.{voter.uuid}" if voter.pk is not None else f"{UNSAVED}.{voter.uuid}"
        response.set_signed_cookie(
            COOKIE, value, salt=SALT, max_age=MAX_AGE, httponly=True, samesite="Lax", secure=request.is_secure()
        )


def throttle_key(request) -> str | None:
    """The voter's id from the cookie without touching the database (for throttling)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user-{user.pk}"
    raw = request.get_signed_cookie(COOKIE, default=None, salt=SALT, max_age=MAX_AGE)
    return f"voter-{raw.rpartition('.')[2]}" if raw else None
