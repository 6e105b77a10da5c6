"""Voters (anonymous by default), their votes on (query, match) cards, gold cards and the public snapshot."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


def counted_from_the_start() -> bool:
    """Without a qualification (VSEARCH_QUALIFY_GOLD = 0) a new voter's votes count at once."""
    return settings.VSEARCH_QUALIFY_GOLD == 0


class Voter(models.Model):
    """An anonymous identity carried by a signed cookie; linked to a user when one logs in. Created at the first
    vote. Its gold answers and anomaly tests decide whether its votes count (voting.quality)."""

    class StaffDecision(models.TextChoices):
        NONE = "", "automatic"
        INCLUDE = "include", "always counted"
        EXCLUDE = "exclude", "never counted"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    counted = models.BooleanField(
        default=counted_from_the_start,
        db_index=True,
        help_text="Its votes count for models: qualified (enough gold answers) and not excluded.",
    )
    excluded = models.BooleanField(default=False, db_index=True, help_text="Its votes leave the leaderboard.")
    excluded_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why it is excluded or flagged, for a person.")
    flags = models.JSONField(default=list, blank=True, help_text="gold, anomalous, fast, streak")
    staff_decision = models.CharField(max_length=10, choices=StaffDecision.choices, default="", blank=True)
    gold_right = models.PositiveIntegerField(default=0)
    gold_wrong = models.PositiveIntegerField(default=0)
    anomaly_p = models.FloatField(null=True, blank=True, help_text="Fisher-combined p of its votes against others'.")
    reviewed_votes = models.PositiveIntegerField(default=0, help_text="Votes seen by the last review.")
    reviewed_at = models.DateTimeField(null=True, blank=True)

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
    gold = models.BooleanField(
        null=True, blank=True, help_text="Served as a gold card: its known answer (never counts for a model)."
    )
    propensity = models.FloatField(null=True, blank=True, help_text="The probability the card had of being drawn.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["voter", "pair"], name="vote_once_per_voter_and_pair")]
        indexes = [models.Index(fields=["pair", "dope"])]

    def __str__(self) -> str:
        return f"{'dope' if self.dope else 'nope'} by {self.voter} on card {self.pair_id}"


class NopeReason(models.Model):
    """Why a voter said nope, if they tapped a reason (optional, one tap after the vote). An undo deletes it."""

    class Reason(models.TextChoices):
        KIND = "kind", "other kind"
        COLOUR = "colour", "other colour"
        PATTERN = "pattern", "other pattern"
        OTHER = "other", "other"

    vote = models.OneToOneField(Vote, on_delete=models.CASCADE, primary_key=True, related_name="nope_reason")
    reason = models.CharField(max_length=10, choices=Reason.choices, db_index=True)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.get_reason_display()} (vote {self.vote_id})"


class GoldCard(models.Model):
    """A card whose answer is known: it measures the voter, never a model.

    Known dope: an item beside an altered copy of itself (flip, crop, slight colour change); known nope: two items
    of different categories, as the random control draws them.
    """

    class Kind(models.TextChoices):
        COPY = "copy", "item and an altered copy (dope)"
        OTHER = "other", "items of different categories (nope)"

    pair = models.OneToOneField("matching.Pair", on_delete=models.PROTECT, related_name="gold")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    seq = models.PositiveIntegerField(unique=True, help_text="0..n-1, for O(1) random draws.")

    def __str__(self) -> str:
        return f"gold {self.kind} #{self.seq}"

    @property
    def expected(self) -> bool:
        return self.kind == self.Kind.COPY


class PublicSnapshot(models.Model):
    """The leaderboard as the public sees it during one window: votes older than the window before it, frozen.

    No public number moves in real time, so nobody can vote, watch which model's count moved, undo and vote again.
    """

    window_start = models.DateTimeField(unique=True)
    cutoff = models.DateTimeField(help_text="Votes cast before this are in the snapshot.")
    taken_at = models.DateTimeField(auto_now_add=True)
    rows = models.JSONField(default=list)
    decision = models.JSONField(default=dict, help_text="What the rows let one decide about the top two.")
    categories = models.JSONField(default=dict, help_text="variant id -> its rows per query category")

    class Meta:
        ordering = ["-window_start"]

    def __str__(self) -> str:
        return f"public leaderboard of votes before {self.cutoff:%Y-%m-%d %H:%M}"


class TallyBucket(models.Model):
    """Counted votes folded into sums, by model, query category and public-snapshot window: the leaderboard reads
    these rows (O(models x categories x recent windows)), never every vote. voting.ledger keeps them exact."""

    variant = models.ForeignKey("matching.Variant", on_delete=models.CASCADE, related_name="+")
    category = models.CharField(max_length=100)
    window = models.DateTimeField(help_text="Start of the votes' window; the epoch for older windows, merged.")
    votes = models.PositiveIntegerField(default=0)
    approvals = models.PositiveIntegerField(default=0)
    weight = models.FloatField(default=0.0)
    weighted_dope = models.FloatField(default=0.0)
    weight_squared = models.FloatField(default=0.0)
    unweighted = models.PositiveIntegerField(default=0)
    unweighted_dope = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["variant", "category", "window"], name="tallybucket_unique_cell")
        ]

    def __str__(self) -> str:
        return f"variant {self.variant_id} · {self.category} · {self.window:%Y-%m-%d %H:%M}"


class CardTally(models.Model):
    """Counted votes on one card, folded (the reference of the anomaly test, the workbench's examples)."""

    pair = models.OneToOneField("matching.Pair", on_delete=models.CASCADE, primary_key=True, related_name="+")
    votes = models.PositiveIntegerField(default=0)
    dope = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"card {self.pair_id}: {self.dope}/{self.votes}"


class TallyCursor(models.Model):
    """One row: every counted vote with an id up to `folded_through` is in the buckets."""

    folded_through = models.BigIntegerField(default=0)
    folded_at = models.DateTimeField(null=True, blank=True)
    window_seconds = models.PositiveIntegerField(default=0, help_text="The bucket width the buckets were made with.")

    def __str__(self) -> str:
        return f"tallies folded through vote {self.folded_through}"
