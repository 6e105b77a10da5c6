"""Small reads of voting that other parts ask for (through signals), and the guard they answer with."""

from __future__ import annotations

from django.db.models import ProtectedError

from matching.models import MatchPair
from voting.models import Vote


def variant_vote_count(variant) -> int:
    """Votes on the cards of a variant (gold and excluded voters' included: they would be lost just the same)."""
    return Vote.objects.filter(pair__in=MatchPair.objects.filter(variant=variant).values("pair_id")).count()


def variant_votes_block(*, variant, **signal_kwargs) -> str | None:
    n = variant_vote_count(variant)
    return f"{n} vote{'s' if n != 1 else ''} on its cards" if n else None


def variant_delete_guard(*, instance, **signal_kwargs) -> None:
    """pre_delete: no code path (admin, shell, a cascade) deletes a variant that has votes."""
    reason = variant_votes_block(variant=instance)
    if reason:
        raise ProtectedError(f"{instance.name} has {reason}: retire it instead of deleting it.", {instance})
