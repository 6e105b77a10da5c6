"""Reads of voting: the small ones other parts ask for (through signals) and the guard they answer with; the
staff workbench's (each model's matches beside the votes on them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.db.models import ProtectedError

from matching.models import MatchPair
from matching.selectors import compare_columns, compare_query
from voting import ledger
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


# ---------------------------------------------------------------------------------------- the workbench (staff)


@dataclass(frozen=True)
class CardVotes:
    dope: int
    nope: int


def card_votes(pair_ids: set[int]) -> dict[int, CardVotes]:
    """Counted votes per card (what the leaderboard counts: no gold answers, no excluded or unqualified voter)."""
    return {pk: CardVotes(dope, votes - dope) for pk, (dope, votes) in ledger.card_counts(pair_ids).items()}


def comparison(*, item_id: int | None = None, category: str | None = None, pick_random: bool = False) -> dict:
    """Every ready model's matches for one query, side by side, with the votes on each card (staff only)."""
    query = compare_query(item_id=item_id, category=category, pick_random=pick_random)
    compared = compare_columns(query=query, category=category)
    pairs = {m.pair_id for column in compared.columns for m in column.matches}
    votes = card_votes(pairs)
    none = CardVotes(0, 0)
    out = asdict(compared)
    for column, shaped in zip(compared.columns, out["columns"], strict=True):
        for match, row in zip(column.matches, shaped["matches"], strict=True):
            tally = votes.get(match.pair_id, none)
            row.update(dope=tally.dope, nope=tally.nope)
    return out
