"""The serving design: shares within their bounds, and the probability each card had of being drawn."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from matching.models import MatchPair
from voting import allocation, sampling
from voting.models import Voter


@pytest.mark.parametrize("raw", [[1, 1, 1, 1], [50, 1, 1, 1], [1, 2, 3, 4, 5, 6], [1e-6, 1, 1e6]])
def test_bounded_shares_sum_to_one_keep_their_order_and_stay_within_the_bounds(raw):
    shares = allocation.bounded_shares(raw, low=0.5, high=2.0)

    m = len(raw)
    assert shares.sum() == pytest.approx(1.0)
    assert (shares >= 0.5 / m - 1e-9).all() and (shares <= 2.0 / m + 1e-9).all()
    assert list(np.argsort(shares, kind="stable")) == list(np.argsort(raw, kind="stable"))


def test_equal_vote_counts_give_equal_shares_and_a_newcomer_gets_at_most_twice_its_share():
    assert allocation.balanced_shares([100, 100, 100, 100], low=0.5, high=2.0) == pytest.approx([0.25] * 4)

    shares = allocation.balanced_shares([1000, 1000, 1000, 0], low=0.5, high=2.0)

    assert shares[3] == pytest.approx(0.5)  # 2 x 1/4
    assert shares[:3] == pytest.approx([1 / 6] * 3)


def test_a_cards_propensity_sums_each_makers_share_over_its_card_count():
    # Hand-computed: a card made by models 1 (share 0.5, 10 cards) and 2 (share 0.3, 30 cards); 3 is not a maker.
    shares, cards = {1: 0.5, 2: 0.3, 3: 0.2}, {1: 10, 2: 30, 3: 5}

    assert allocation.card_propensity([1, 2], shares, cards) == pytest.approx(0.5 / 10 + 0.3 / 30)
    assert allocation.card_propensity([9], shares, cards) == 0.0


def test_served_cards_carry_their_propensity_and_draws_follow_it(variants):
    voter = Voter.objects.create()
    rng = random.Random(4)
    draws, propensity = Counter(), {}
    for _ in range(3000):
        card = sampling.pair_next_for(voter=voter, rng=rng)
        draws[card.pair_id] += 1
        propensity[card.pair_id] = card.propensity

    # Every card's recorded probability matches the frequency it was drawn with (a chi-square goodness of fit).
    from scipy import stats

    ids = sorted(propensity)
    expected = np.array([propensity[i] for i in ids])
    assert expected.sum() == pytest.approx(1.0, abs=1e-6)  # every card of the rotation was seen
    observed = np.array([draws[i] for i in ids])
    assert stats.chisquare(observed, expected / expected.sum() * observed.sum()).pvalue > 1e-3
    shared = {p for p in ids if MatchPair.objects.filter(pair_id=p).count() > 1}
    assert all(propensity[p] > min(propensity.values()) for p in shared)  # two makers, two ways to be drawn
