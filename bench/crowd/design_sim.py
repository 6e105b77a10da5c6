"""The serving design and the estimator at scale: the production allocation and statistics code (voting.allocation,
voting.statistics) driven in memory over the demo world's real cards, thousands of votes per millisecond, so
figures can be medians over many seeds. The API crowd (bench.crowd.run) checks the same figures through the real
site on fewer seeds.

What is simulated: every `window` votes the design's shares are recomputed from the estimates so far (as the site
recomputes them once per tally window); each vote picks a model by those shares, one of its cards uniformly, and
a voter from the crowd; the card's propensity is the sum over its makers of share / cards; the vote counts for
every maker. The leaderboard's estimate, P(best) and decision are the site's own functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.crowd import crowd


@dataclass
class Cards:
    """The world's cards as arrays: which models made each card, and what each card shows."""

    names: list[str]
    makers: np.ndarray  # (cards, models) bool
    looks: list[crowd.Look]

    @classmethod
    def from_world(cls, looks_by_pair: dict[int, crowd.Look], makers_by_pair: dict[int, set[str]]) -> Cards:
        names = sorted({m for ms in makers_by_pair.values() for m in ms})
        pairs = sorted(makers_by_pair)
        makers = np.zeros((len(pairs), len(names)), dtype=bool)
        for row, pair in enumerate(pairs):
            for name in makers_by_pair[pair]:
                makers[row, names.index(name)] = True
        return cls(names, makers, [looks_by_pair[p] for p in pairs])

    def only(self, names: list[str]) -> Cards:
        keep = [self.names.index(n) for n in names]
        makers = self.makers[:, keep]
        rows = makers.any(axis=1)
        return Cards(list(names), makers[rows], [look for look, r in zip(self.looks, rows, strict=True) if r])


@dataclass
class Crowd:
    """The crowd's P(dope) per card: each voter's taste, and the population mean (the truth)."""

    p: np.ndarray  # (voters, cards)
    truth_by_card: np.ndarray  # (cards,): this crowd's mean P(dope), what its votes estimate
    population_by_card: np.ndarray  # (cards,): the population's mean P(dope), which a finite crowd misses by chance

    @classmethod
    def draw(cls, cards: Cards, population: crowd.TastePopulation, voters: int, rng) -> Crowd:
        import random

        r = random.Random(int(rng.integers(1 << 30)))
        distinct = sorted(set(cards.looks), key=lambda look: (look.category, look.colour, look.pattern))
        index = {look: i for i, look in enumerate(distinct)}
        codes = np.array([index[look] for look in cards.looks])
        tastes = [population.draw(r) for _ in range(voters)]
        per_look = np.array([[t.p_dope(look) for look in distinct] for t in tastes])
        population_truth = np.array([population.mean_p_dope(look) for look in distinct])
        # Each vote comes from a voter of this crowd drawn uniformly, so the votes estimate this crowd's mean taste;
        # measured against the population's, every seed would carry its crowd's sampling error (about 0.01 with
        # 200 voters) into the bias figure.
        return cls(per_look[:, codes], per_look.mean(axis=0)[codes], population_truth[codes])


@dataclass
class Attack:
    """A share of the votes from attackers (never excluded here, unlike on the site):
    - random: a coin toss per card; always-dope: dope on every card;
    - signature: dope on cards that look like the colour histogram's work (same colour, other category), nope on
      the rest;
    - blind-push: the oracles once blindness holds: a guess of the card's model drawn uniformly, dope if it is the
      target, honest otherwise;
    - push: dope on every card the target made, honest otherwise: attackers who can tell the target's cards, the
      worst case blindness exists to prevent."""

    kind: str = "none"
    share: float = 0.0


@dataclass
class Outcome:
    votes: int
    first_decided: int | None  # votes until the true best reached P(best) >= decided (None: not within budget)
    settled: int | None  # votes from which the true best stayed at P(best) >= decided to the end of the budget
    wrong_decided: int | None  # votes until any other model reached it (None: never)
    estimate: np.ndarray
    truth: np.ndarray
    naive: np.ndarray  # the old estimate: dope / votes over every vote credited to the model
    shares: list[np.ndarray] = field(default_factory=list)


def truth_of(cards: Cards, crowd_: Crowd) -> np.ndarray:
    return np.array([crowd_.truth_by_card[cards.makers[:, m]].mean() for m in range(len(cards.names))])


def simulate(
    cards: Cards,
    crowd_: Crowd,
    *,
    design: str,
    budget: int,
    rng: np.random.Generator,
    window: int = 100,
    decided: float = 0.95,
    floor: float = 0.3,
    beta: float = 0.5,
    low: float = 0.5,
    high: float = 2.0,
    attack: Attack | None = None,
    target: int | None = None,
    prior_strength: float = 0.0,
    min_votes: int = 0,
    min_n_eff: float = 0.0,
) -> Outcome:
    from voting import allocation, statistics

    n_models = cards.makers.shape[1]
    truth = truth_of(cards, crowd_)
    best_model = int(np.argmax(truth))
    card_lists = [np.flatnonzero(cards.makers[:, m]) for m in range(n_models)]
    counts = np.array([len(c) for c in card_lists], dtype=np.float64)
    signature = np.array([look.colour and not look.category for look in cards.looks])
    w_sum = np.zeros(n_models)
    wy_sum = np.zeros(n_models)
    w2_sum = np.zeros(n_models)
    votes = np.zeros(n_models)
    dope_votes = np.zeros(n_models)
    first = wrong = settled = None
    attack = attack or Attack()
    history = []
    cast = 0
    while cast < budget:
        estimates = [statistics.weighted_from_sums(w_sum[m], wy_sum[m], w2_sum[m]) for m in range(n_models)]
        prior = statistics.pooled_prior(estimates, prior_strength)
        posteriors = [statistics.beta_posterior(e.rate, e.n_eff, prior) for e in estimates]
        best = statistics.p_best(posteriors, draws=4000, seed=int(rng.integers(1 << 30)))
        if cast and votes.min() >= min_votes:
            # Decided: P(best) at the threshold, and the leader and its runner-up each measured enough.
            order = np.argsort(-best)
            enough = min(estimates[order[0]].n_eff, estimates[order[1]].n_eff) >= min_n_eff
            if enough and first is None and best[best_model] >= decided:
                first = cast
            if enough and best[best_model] >= decided:
                settled = cast if settled is None else settled
            else:
                settled = None
            if enough and wrong is None and any(best[m] >= decided for m in range(n_models) if m != best_model):
                wrong = cast
        if design == "active":
            shares = allocation.top_two_shares(best, beta=beta, floor=floor)
        else:
            shares = allocation.balanced_shares(votes, low=low, high=high)
        history.append(shares)
        n = min(window, budget - cast)
        models = rng.choice(n_models, size=n, p=shares)
        drawn = np.array([card_lists[m][rng.integers(len(card_lists[m]))] for m in models])
        propensity = (cards.makers[drawn] * (shares / counts)[None, :]).sum(axis=1)
        voter = rng.integers(crowd_.p.shape[0], size=n)
        dope = rng.random(n) < crowd_.p[voter, drawn]
        if attack.kind != "none":
            hostile = rng.random(n) < attack.share
            if attack.kind == "random":
                dope = np.where(hostile, rng.random(n) < 0.5, dope)
            elif attack.kind == "always-dope":
                dope = np.where(hostile, True, dope)
            elif attack.kind == "signature":
                dope = np.where(hostile, signature[drawn], dope)
            elif attack.kind == "blind-push":
                dope = np.where(hostile & (rng.random(n) < 1.0 / n_models), True, dope)
            elif attack.kind == "push" and target is not None:
                dope = np.where(hostile & cards.makers[drawn, target], True, dope)
        weight = 1.0 / propensity
        for m in range(n_models):
            mine = cards.makers[drawn, m]
            w_sum[m] += weight[mine].sum()
            wy_sum[m] += (weight[mine] * dope[mine]).sum()
            w2_sum[m] += (weight[mine] ** 2).sum()
            votes[m] += mine.sum()
            dope_votes[m] += dope[mine].sum()
        cast += n
    estimate = np.array(
        [statistics.weighted_from_sums(w_sum[m], wy_sum[m], w2_sum[m]).rate or np.nan for m in range(n_models)]
    )
    naive = np.where(votes > 0, dope_votes / np.maximum(votes, 1), np.nan)
    return Outcome(cast, first, settled, wrong, estimate, truth, naive, history)
