"""Voters (anonymous by default) and their votes on (query, match) cards."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Voter(models.Model):
    """An anonymous identity carried by a signed cookie; linked to a user when one logs in."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"voter {str(self.uuid)[:8]}"


class Vote(models.Model):
    voter = models.ForeignKey(Voter, on_delete=models.CASCADE, related_name="votes")
    pair = models.ForeignKey("matching.Pair", on_delete=models.PROTECT, related_name="votes")
    dope = models.BooleanField(help_text="True: a good match (swiped right).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    shown_ms = models.PositiveIntegerField(null=True, blank=True, help_text="How long the card was shown.")
    token_id = models.CharField(
        max_length=32, unique=True, help_text="Nonce of the served token: a retried POST is a replay."
    )
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["voter", "pair"], name="vote_once_per_voter_and_pair")]
        indexes = [models.Index(fields=["pair", "dope"])]

    def __str__(self) -> str:
        return f"{'dope' if self.dope else 'nope'} by {self.voter} on card {self.pair_id}"
