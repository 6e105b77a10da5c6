"""The leaderboard's statistics against known answers: hand-computed cases, closed forms and simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from voting import allocation, statistics
from voting.tallies import Tally


def test_the_weighted_approval_and_its_effective_sample_size_by_hand():
    # Votes dope, nope, dope weighing 1, 2, 3: (1 + 3) / 6, and n_eff = 6² / (1 + 4 + 9).
    estimate = statistics.weighted_rate([1, 0, 1], [1, 2, 3])

    assert estimate.rate == pytest.approx(4 / 6) and estimate.n_eff == pytest.approx(36 / 14)


def test_equal_weights_give_the_plain_proportion_over_every_vote():
    estimate = statistics.weighted_rate([1, 1, 0, 0, 1], [0.3] * 5)

    assert estimate.rate == pytest.approx(0.6) and estimate.n_eff == pytest.approx(5)


def test_votes_without_a_propensity_weigh_as_much_as_the_average_weighted_vote():
    # 2 weighted votes (w = 1 and 3, one dope with w = 3) and 2 without a propensity (one dope): mean weight 2.
    tally = Tally(
        votes=4, approvals=2, weight=4.0, weighted_dope=3.0, weight_squared=10.0, unweighted=2, unweighted_dope=1
    )

    estimate = tally.estimate

    assert estimate.rate == pytest.approx((3 + 2) / (4 + 4))
    assert estimate.n_eff == pytest.approx(64 / (10 + 8))


def test_the_interval_over_an_effective_sample_size_is_wilsons_at_that_size():
    assert statistics.wilson_interval(0.8, 10, 0.95) == pytest.approx(statistics.wilson(8, 10, 0.95))
    low, high = statistics.wilson_interval(0.5, 2.571, 0.95)
    assert 0 < low < 0.5 < high < 1 and high - low > statistics.wilson_interval(0.5, 25.71, 0.95)[1] - 0.5


def p_second_beats_first(a1, b1, a2, b2) -> float:
    """Closed form for integer a2 (Evan Miller): P(X2 > X1), X1 ~ Beta(a1, b1), X2 ~ Beta(a2, b2)."""
    total = 0.0
    for i in range(int(a2)):
        total += math.exp(
            special.betaln(a1 + i, b1 + b2) - math.log(b2 + i) - special.betaln(1 + i, b2) - special.betaln(a1, b1)
        )
    return total


@pytest.mark.parametrize(("first", "second"), [((20, 30), (30, 20)), ((5, 5), (6, 4)), ((101, 99), (99, 101))])
def test_p_best_of_two_models_matches_the_closed_form(first, second):
    best = statistics.p_best([first, second], draws=200_000)

    assert best[1] == pytest.approx(p_second_beats_first(*first, *second), abs=0.005)
    assert best.sum() == pytest.approx(1.0)


def test_p_within_a_margin_matches_numerical_integration():
    a, b, margin = (60, 40), (55, 45), 0.02
    x, y = stats.beta(*a), stats.beta(*b)
    exact = integrate.quad(lambda t: x.pdf(t) * (y.cdf(min(1, t + margin)) - y.cdf(max(0, t - margin))), 0, 1)[0]

    assert statistics.p_within(a, b, margin, draws=400_000) == pytest.approx(exact, abs=0.003)


def test_votes_to_separate_is_the_least_number_that_reaches_the_target():
    leader, runner_up = statistics.Weighted(0.60, 200), statistics.Weighted(0.55, 200)

    more = statistics.votes_to_separate(leader, runner_up, target=0.95)

    z = stats.norm.ppf(0.95)

    def reached(extra):
        return 0.05 / math.sqrt(0.24 / (200 + extra / 2) + 0.2475 / (200 + extra / 2)) >= z

    assert reached(more) and not reached(more - 1)
    assert statistics.votes_to_separate(statistics.Weighted(0.5, 10), statistics.Weighted(0.5, 10), target=0.95) is None


def test_top_two_thompson_shares_by_hand_and_with_their_floor():
    q = [0.6, 0.3, 0.1]
    # beta q_m + (1 - beta) q_m * sum_{l != m} q_l / (1 - q_l), normalised; then 10% spread evenly.
    ratio = [x / (1 - x) for x in q]
    raw = [0.5 * x + 0.5 * x * (sum(ratio) - r) for x, r in zip(q, ratio, strict=True)]
    expected = [0.9 * r / sum(raw) + 0.1 / 3 for r in raw]

    shares = allocation.top_two_shares(q, beta=0.5, floor=0.1)

    assert shares == pytest.approx(expected) and shares.sum() == pytest.approx(1.0)
    assert allocation.top_two_shares([1.0, 0.0, 0.0], beta=0.5, floor=0.3).min() >= 0.1 - 1e-12


def test_inverse_propensity_weights_remove_the_bias_of_shared_cards_in_a_simulation_with_a_known_truth():
    """Three models; model A shares most of its cards with B. Serving picks a model, then one of its cards; a
    vote counts for every model that made the card. Plain proportions over-weight shared cards; the weighted
    estimate recovers each model's approval, its mean over its own cards."""
    rng = np.random.default_rng(0)
    cards = 300
    p_dope = rng.uniform(0.05, 0.95, cards)
    p_dope[:100] = rng.uniform(0.7, 0.95, 100)  # the shared cards are good ones
    makers = {"A": np.arange(0, 120), "B": np.arange(0, 200), "C": np.arange(150, 300)}
    truth = {m: p_dope[c].mean() for m, c in makers.items()}
    shares = {"A": 0.5, "B": 0.2, "C": 0.3}
    member = {m: np.isin(np.arange(cards), c) for m, c in makers.items()}
    propensity = sum(shares[m] / len(c) * member[m] for m, c in makers.items())

    naive, weighted = {m: [] for m in makers}, {m: [] for m in makers}
    for _ in range(400):
        models = rng.choice(list(makers), size=2000, p=list(shares.values()))
        drawn = np.array([rng.choice(makers[m]) for m in models])
        votes = rng.random(len(drawn)) < p_dope[drawn]
        for m in makers:
            mine = member[m][drawn]
            naive[m].append(votes[mine].mean())
            weighted[m].append(statistics.weighted_rate(votes[mine], 1 / propensity[drawn][mine]).rate)

    bias_naive = {m: np.mean(naive[m]) - truth[m] for m in makers}
    bias_weighted = {m: np.mean(weighted[m]) - truth[m] for m in makers}
    assert max(abs(b) for b in bias_weighted.values()) < 0.004, bias_weighted
    assert max(abs(b) for b in bias_naive.values()) > 0.02, bias_naive  # the bias the weights remove
