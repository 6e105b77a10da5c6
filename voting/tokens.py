"""Vote tokens: signed, bound to a voter and a card, with an expiry; the card id inside is masked,
so decoding a token reveals nothing about which variant (or build order) produced the card."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SALT = "vsearch.vote-token"


class TokenError(ValueError):
    """The token is forged, altered, expired or someone else's; the message says which, for a person."""


@dataclass(frozen=True)
class Token:
    voter_id: int
    pair_id: int
    nonce: str
    age_seconds: float


def _mask(nonce: str) -> int:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"pair-mask:{nonce}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def token_issue(*, voter_id: int, pair_id: int) -> str:
    nonce = secrets.token_hex(12)
    payload = {"v": voter_id, "p": pair_id ^ _mask(nonce), "n": nonce, "t": int(time.time() * 1000)}
    return signing.dumps(payload, salt=SALT)


def token_read(token: str, *, voter_id: int) -> Token:
    if not isinstance(token, str) or not token or len(token) > 500:
        raise TokenError("The vote token is missing or malformed.")
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.VSEARCH_TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        raise TokenError("This card expired before the vote arrived; here is a fresh one.") from None
    except signing.BadSignature:
        raise TokenError("The vote token is not valid (altered or forged).") from None
    if data.get("v") != voter_id:
        raise TokenError("This card was served to another voter.")
    nonce = str(data.get("n", ""))
    age = max(0.0, time.time() - data.get("t", 0) / 1000)
    return Token(voter_id=voter_id, pair_id=int(data["p"]) ^ _mask(nonce), nonce=nonce, age_seconds=age)
