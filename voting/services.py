"""Every write of voting: recording a vote (exactly once) and undoing the last one."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from matching.models import Pair
from voting.models import Vote, Voter
from voting.tokens import TokenError, token_read
from vsearch_site.errors import Conflict, InvalidInput, NotFound


class VoteRefused(InvalidInput):
    """The vote cannot be taken as sent (verdict, token, a card or voter that is gone)."""


class AlreadyVoted(Conflict):
    """This voter has a vote on this card already (from another token)."""


class NothingToUndo(NotFound):
    """The voter has no vote to take back."""


class UndoTooLate(Conflict):
    """The last vote is older than the undo window."""


VERDICTS = {"dope": True, "nope": False}


def vote_record(*, voter: Voter, token: str, verdict: str, shown_ms: int | None = None, ip: str | None = None) -> Vote:
    """Store one verdict on a served card. Retrying the same token is a replay: the stored vote, nothing new."""
    if verdict not in VERDICTS:
        raise VoteRefused("verdict must be 'dope' or 'nope'.")
    try:
        served = token_read(token, voter_id=voter.pk)
    except TokenError as exc:
        raise VoteRefused(str(exc)) from None
    # The client measures how long the card was on screen; it cannot exceed the time since it was served.
    server_ms = int(served.age_seconds * 1000)
    shown = shown_ms if isinstance(shown_ms, int) and 0 <= shown_ms <= server_ms + 1000 else server_ms
    # One statement in autocommit: it has committed when it returns (no BEGIN/COMMIT round trips). A card
    # deleted since it was served fails the foreign key, a second vote the unique constraints: told apart below.
    # Inside an outer transaction (tests, a caller's atomic block) a savepoint keeps a conflict from breaking it.
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            return Vote.objects.create(
                voter=voter,
                pair_id=served.pair_id,
                dope=VERDICTS[verdict],
                shown_ms=min(shown, 2**31 - 1),
                token_id=served.nonce,
                ip=ip,
            )
    except IntegrityError:
        existing = Vote.objects.filter(voter=voter, pair_id=served.pair_id).first()
        if existing is not None and existing.token_id == served.nonce:
            return existing  # the same token again: a client retry
        if existing is None and not Pair.objects.filter(pk=served.pair_id).exists():
            raise VoteRefused("This card no longer exists.") from None
        if existing is None and not Voter.objects.filter(pk=voter.pk).exists():
            raise VoteRefused("Your voter identity is no longer known: reload the page.") from None
        raise AlreadyVoted("You have already voted on this pair.") from None


def vote_undo(*, voter: Voter) -> int:
    """Delete the voter's latest vote if it is recent enough; returns its card's pair id."""
    last = Vote.objects.filter(voter=voter).order_by("-created_at", "-id").first()
    if last is None:
        raise NothingToUndo("There is no vote to undo.")
    if last.created_at < timezone.now() - timedelta(seconds=settings.VSEARCH_UNDO_SECONDS):
        raise UndoTooLate(f"Votes can be undone within {settings.VSEARCH_UNDO_SECONDS} seconds; that one is older.")
    pair_id = last.pair_id
    last.delete()
    return pair_id
