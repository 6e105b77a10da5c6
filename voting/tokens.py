"""Vote tokens: signed, bound to a voter and a card, with an expiry. What the server needs back with the vote
(the card, whether it was a gold card and its answer, the probability the card had of being drawn) travels
encrypted: a token reveals nothing about which variant, if any, produced the card, nor how it was drawn.

The secret part is XORed with a keystream of HMAC-SHA256(SECRET_KEY, nonce), a fresh nonce per token (a
PRF used as a stream cipher); the signature over the whole token keeps it from being altered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import struct
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SALT = "vsearch.vote-token"
_SECRET = struct.Struct(">qdb")  # pair id, propensity (NaN: none), gold answer (0 none, 1 dope, 2 nope)
_GOLD = {None: 0, True: 1, False: 2}


class TokenError(ValueError):
    """The token is forged, altered, expired or someone else's; the message says which, for a person."""


@dataclass(frozen=True)
class Token:
    voter_key: str
    pair_id: int
    nonce: str
    age_seconds: float
    propensity: float | None = None  # P(this card was drawn) when it was served
    gold: bool | None = None  # served as a gold card: the known answer (True: dope); None: a model's card


def _keystream(nonce: str, size: int) -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), f"vote-token:{nonce}".encode(), hashlib.sha256).digest()[:size]


def _xor(data: bytes, nonce: str) -> bytes:
    return bytes(a ^ b for a, b in zip(data, _keystream(nonce, len(data)), strict=True))


def token_issue(*, voter_key: str, pair_id: int, propensity: float | None = None, gold: bool | None = None) -> str:
    nonce = secrets.token_hex(12)
    secret = _SECRET.pack(pair_id, math.nan if propensity is None else propensity, _GOLD[gold])
    payload = {
        "v": voter_key,
        "n": nonce,
        "t": int(time.time() * 1000),
        "x": base64.urlsafe_b64encode(_xor(secret, nonce)).decode().rstrip("="),
    }
    return signing.dumps(payload, salt=SALT)


def token_read(token: str, *, voter_key: str) -> Token:
    if not isinstance(token, str) or not token or len(token) > 500:
        raise TokenError("The vote token is missing or malformed.")
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.VSEARCH_TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        raise TokenError("This card expired before the vote arrived; here is a fresh one.") from None
    except signing.BadSignature:
        raise TokenError("The vote token is not valid (altered or forged).") from None
    if not isinstance(data, dict) or data.get("v") != voter_key:
        raise TokenError("This card was served to another voter.")
    nonce = str(data.get("n", ""))
    try:
        secret = _xor(base64.urlsafe_b64decode(str(data["x"]) + "=="), nonce)
        pair_id, propensity, gold = _SECRET.unpack(secret)
    except (KeyError, ValueError, struct.error):
        raise TokenError("The vote token is not valid (altered or forged).") from None
    age = max(0.0, time.time() - data.get("t", 0) / 1000)
    return Token(
        voter_key=voter_key,
        pair_id=pair_id,
        nonce=nonce,
        age_seconds=age,
        propensity=None if math.isnan(propensity) else propensity,
        gold={0: None, 1: True, 2: False}.get(gold),
    )
