"""Vote counts: per variant (one aggregate, shared by card sampling and the leaderboard) and per voter."""

from __future__ import annotations

from dataclasses import dataclass

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


def vote_totals(group_by: str, **filters) -> dict:
    """Votes and approvals per group (a variant, a category...): one aggregate query over match pairs joined
    to votes. A vote on a card that several variants produced counts for each of them."""
    rows = (
        MatchPair.objects.filter(pair__votes__isnull=False, **filters)
        .values(group_by)
        .annotate(votes=Count("pair__votes"), approvals=Count("pair__votes", filter=Q(pair__votes__dope=True)))
        .order_by()
    )
    return {row[group_by]: Tally(row["votes"], row["approvals"]) for row in rows}


def variant_tallies() -> dict[int, Tally]:
    """Votes and approvals per variant, now."""
    return vote_totals("variant_id")


def variant_tallies_cached() -> dict[int, Tally]:
    """Votes and approvals per variant, at most VSEARCH_TALLY_SECONDS old, recomputed by one process at a time."""
    return revalidated(TALLIES_CACHE_KEY, settings.VSEARCH_TALLY_SECONDS, variant_tallies)


def votes_cast(voter: Voter) -> int:
    return Vote.objects.filter(voter=voter).count()
