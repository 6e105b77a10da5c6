"""Vote counts: per variant (one aggregate, shared by card balancing and the leaderboard) and per voter.

Only counted votes count for a model: never a gold card's, and only those of counted voters (qualified by their
gold answers, not excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Q

from matching.models import MatchPair
from voting.models import Vote, Voter
from vsearch_site.cache import revalidated

TALLIES_CACHE_KEY = "voting:tallies"


@dataclass(frozen=True)
class Tally:
    votes: int
    approvals: int


def vote_totals(group_by: str | tuple[str, ...], *, before: datetime | None = None, **filters) -> dict:
    """Votes and approvals per group (a variant, a category, both...): one aggregate query over match pairs
    joined to counted votes. A vote on a card that several variants produced counts for each of them."""
    groups = (group_by,) if isinstance(group_by, str) else tuple(group_by)
    counted = {"pair__votes__gold__isnull": True, "pair__votes__voter__counted": True}
    if before is not None:
        counted["pair__votes__created_at__lt"] = before
    rows = (
        MatchPair.objects.filter(**counted, **filters)
        .values(*groups)
        .annotate(votes=Count("pair__votes"), approvals=Count("pair__votes", filter=Q(pair__votes__dope=True)))
        .order_by()
    )
    key = (lambda row: row[groups[0]]) if len(groups) == 1 else (lambda row: tuple(row[g] for g in groups))
    return {key(row): Tally(row["votes"], row["approvals"]) for row in rows}


def variant_tallies(*, before: datetime | None = None) -> dict[int, Tally]:
    """Counted votes and approvals per variant, now (or of the votes cast before `before`)."""
    return vote_totals("variant_id", before=before)


def variant_tallies_cached() -> dict[int, Tally]:
    """Votes and approvals per variant, at most VSEARCH_TALLY_SECONDS old, recomputed by one process at a time."""
    return revalidated(TALLIES_CACHE_KEY, settings.VSEARCH_TALLY_SECONDS, variant_tallies)


def votes_cast(voter: Voter) -> int:
    return 0 if voter.pk is None else Vote.objects.filter(voter_id=voter.pk).count()
