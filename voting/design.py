"""The serving design right now: every model's tally, posterior, P(best) and share of the draws.

Computed from live internal numbers (never a public one) by one process at a time, at most every
VSEARCH_TALLY_SECONDS, and shared by every process through the cache: card serving reads the shares, the staff
leaderboard the tallies and P(best). One aggregate over the votes behind both.

Designs (VSEARCH_DESIGN):
- balanced: favour models behind on votes, gently (voting.allocation.balanced_shares);
- active: top-two Thompson sampling on the models' posteriors (voting.allocation.top_two_shares), so draws go
  where they separate the leader from its nearest rival, every share above a floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from voting import allocation, ledger, statistics
from voting.tallies import Tally, variant_tallies
from vsearch_site.cache import ProcessMemo, revalidated

DESIGN_CACHE_KEY = "voting:design"
memo = ProcessMemo(seconds=2.0)


@dataclass(frozen=True)
class Design:
    kind: str
    tallies: dict[int, Tally]  # every variant with counted votes
    rotation: tuple[int, ...]  # the active variants the shares are for
    shares: dict[int, float]  # P(a draw picks the model)
    p_best: dict[int, float] = field(default_factory=dict)  # among the rotation


def compute(rotation: tuple[int, ...]) -> Design:
    ledger.fold()  # one process at a time folds the votes since the last fold (voting.ledger)
    tallies = variant_tallies()
    best = p_best_among(tallies, rotation)
    kind = settings.VSEARCH_DESIGN
    if not rotation:
        shares = []
    elif kind == "active":
        shares = allocation.top_two_shares(
            list(best.values()), beta=settings.VSEARCH_TOP_TWO_BETA, floor=settings.VSEARCH_ACTIVE_FLOOR
        )
    else:
        shares = allocation.balanced_shares(
            [tallies.get(v, Tally(0, 0)).votes for v in rotation],
            low=settings.VSEARCH_BALANCE_MIN_SHARE,
            high=settings.VSEARCH_BALANCE_MAX_SHARE,
        )
    return Design(
        kind=kind,
        tallies=tallies,
        rotation=rotation,
        shares={v: float(s) for v, s in zip(rotation, shares, strict=True)},
        p_best=best,
    )


def p_best_among(tallies: dict[int, Tally], rotation: tuple[int, ...]) -> dict[int, float]:
    """P(best) of each model in the rotation (in its order: the Monte Carlo draws are matched to it), from the Beta
    posteriors of their weighted approvals."""
    estimates = [tallies.get(v, Tally(0, 0)).estimate for v in rotation]
    posteriors = [statistics.beta_posterior(e.rate, e.n_eff) for e in estimates]
    best = statistics.p_best(posteriors) if rotation else []
    return {v: float(p) for v, p in zip(rotation, best, strict=True)}


def current(rotation: tuple[int, ...], *, use_memo: bool = True) -> Design:
    """The design for this rotation, at most VSEARCH_TALLY_SECONDS old (card serving: 2 s more in this process's
    memo; staff's live numbers skip it)."""
    design = memo.get(DESIGN_CACHE_KEY) if use_memo else None
    if design is not None and design.rotation == rotation and design.kind == settings.VSEARCH_DESIGN:
        return design
    design = revalidated(
        DESIGN_CACHE_KEY,
        settings.VSEARCH_TALLY_SECONDS,
        lambda: compute(rotation),
        usable=lambda d: d.rotation == rotation and d.kind == settings.VSEARCH_DESIGN,
    )
    memo.put(DESIGN_CACHE_KEY, design)
    return design


def forget() -> None:
    memo.clear()
