"""Reads of voting: the small ones other parts ask for (through signals) and the guard they answer with; the
staff workbench's (each model's matches beside the votes on them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.conf import settings
from django.db.models import Count, F, FloatField, ProtectedError
from django.db.models.functions import Cast

from matching.models import MatchPair, Variant
from matching.selectors import ItemRef, compare_columns, compare_query, item_ref
from voting import ledger
from voting.models import CardTally, NopeReason, Vote
from voting.tallies import variant_tallies
from vsearch_site.errors import NotFound


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


def _counted_reasons():
    """Reasons given with counted nopes (what the leaderboard counts: no gold card, a counted voter)."""
    return NopeReason.objects.filter(vote__gold__isnull=True, vote__voter__counted=True)


def card_reasons(pair_ids: set[int]) -> dict[int, dict[str, int]]:
    """Why nope, per card: reason -> counted votes."""
    out: dict[int, dict[str, int]] = {}
    rows = (
        _counted_reasons()
        .filter(vote__pair_id__in=pair_ids)
        .values("vote__pair_id", "reason")
        .annotate(n=Count("vote_id"))
        .order_by()
    )
    for row in rows:
        out.setdefault(row["vote__pair_id"], {})[row["reason"]] = row["n"]
    return out


def variant_reasons(variant: Variant) -> dict[str, int]:
    """Why nope, over every card of a model: reason -> counted votes."""
    rows = (
        _counted_reasons()
        .filter(vote__pair__match_pairs__variant=variant)
        .values("reason")
        .annotate(n=Count("vote_id"))
        .order_by()
    )
    return {row["reason"]: row["n"] for row in rows}


def comparison(*, item_id: int | None = None, category: str | None = None, pick_random: bool = False) -> dict:
    """Every ready model's matches for one query, side by side, with the votes on each card (staff only)."""
    query = compare_query(item_id=item_id, category=category, pick_random=pick_random)
    compared = compare_columns(query=query, category=category)
    pairs = {m.pair_id for column in compared.columns for m in column.matches}
    votes = card_votes(pairs)
    reasons = card_reasons(pairs)
    none = CardVotes(0, 0)
    out = asdict(compared)
    for column, shaped in zip(compared.columns, out["columns"], strict=True):
        for match, row in zip(column.matches, shaped["matches"], strict=True):
            tally = votes.get(match.pair_id, none)
            row.update(dope=tally.dope, nope=tally.nope, reasons=reasons.get(match.pair_id, {}))
    return out


@dataclass(frozen=True)
class Example:
    pair_id: int
    query: ItemRef
    match: ItemRef
    rank: int
    distance: float
    dope: int
    nope: int
    reasons: dict[str, int] | None  # staff only


@dataclass(frozen=True)
class Examples:
    variant_id: int
    name: str
    rotation: str
    min_votes: int
    approved: list[Example]  # most dope first (share, then more votes)
    rejected: list[Example]  # most nope first
    reasons: dict[str, int] | None  # why nope over all its cards (staff only)


class ExamplesHidden(NotFound):
    """The public asked for the examples of a model in the rotation: they would name its cards."""


def variant_examples(*, variant: Variant, public: bool, limit: int | None = None) -> Examples:
    """A model's most approved and most rejected cards (at least VSEARCH_EXAMPLES_MIN_VOTES counted votes each; more
    dope than nope, or more nope than dope), with their counts.

    Staff (public=False) see any model's, counted to the last vote. The public sees only a ready model out of the
    rotation, and only its cards that no model in the rotation also makes: no card a voter may still be served is
    tied to a model, and cards no longer served get no votes, so these counts do not move with a vote. Public reads
    write nothing: they see the per-card counts as of the last fold (serving folds every VSEARCH_TALLY_SECONDS, the
    public snapshot once per window).
    """
    if public and (variant.status != Variant.Status.READY or variant.rotation == Variant.Rotation.ACTIVE):
        raise ExamplesHidden("Examples are shown for models out of the rotation only.")
    if not public:
        ledger.fold()  # the votes since the last fold, into the per-card counts
    limit = limit or settings.VSEARCH_EXAMPLES
    min_votes = settings.VSEARCH_EXAMPLES_MIN_VOTES
    cards = CardTally.objects.filter(votes__gte=min_votes, pair__match_pairs__variant=variant).annotate(
        share=Cast("dope", FloatField()) / Cast("votes", FloatField())
    )
    if public:
        in_rotation = MatchPair.objects.filter(variant__rotation=Variant.Rotation.ACTIVE).values("pair_id")
        cards = cards.exclude(pair_id__in=in_rotation)
    approved = list(
        cards.filter(dope__gt=F("votes") - F("dope"))
        .order_by("-share", "-votes", "pair_id")
        .values_list("pair_id", "dope", "votes")[:limit]
    )
    rejected = list(
        cards.filter(dope__lt=F("votes") - F("dope"))
        .order_by("share", "-votes", "pair_id")
        .values_list("pair_id", "dope", "votes")[:limit]
    )
    details = {
        row.pair_id: row
        for row in MatchPair.objects.filter(
            variant=variant, pair_id__in=[pk for pk, *_ in approved + rejected]
        ).select_related("pair__query_item", "pair__match_item")
    }

    reasons = None if public else card_reasons(set(details))

    def example(pair_id: int, dope: int, votes: int) -> Example:
        row = details[pair_id]
        return Example(pair_id, item_ref(row.pair.query_item), item_ref(row.pair.match_item), row.rank, row.distance,
                       dope, votes - dope, None if reasons is None else reasons.get(pair_id, {}))  # fmt: skip

    return Examples(
        variant_id=variant.pk,
        name=variant.name,
        rotation=variant.rotation,
        min_votes=min_votes,
        approved=[example(*row) for row in approved],
        rejected=[example(*row) for row in rejected],
        reasons=None if public else variant_reasons(variant),
    )


@dataclass(frozen=True)
class ModelRow:
    variant: Variant
    votes: int  # counted votes on its cards (what its leaderboard row counts)
    approvals: int


def model_rows() -> list[ModelRow]:
    """Every variant, newest first, with its counted votes (the staff page's table)."""
    totals = variant_tallies()
    rows = []
    for variant in Variant.objects.select_related("feature_set").order_by("-id"):
        tally = totals.get(variant.pk)
        rows.append(ModelRow(variant, tally.votes if tally else 0, tally.approvals if tally else 0))
    return rows
