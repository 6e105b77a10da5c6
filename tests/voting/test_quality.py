"""Voter quality: gold posteriors and the anomaly test against known answers, and what exclusion does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import special, stats

from matching.models import MatchPair
from voting import quality
from voting.models import Vote, Voter
from voting.services import voter_facts, voter_set_decision, voters_review

T = quality.Thresholds()


@pytest.mark.parametrize(
    ("right", "wrong", "expected"),
    [  # P(accuracy < 0.7) for Beta(1 + right, 1 + wrong), by hand: 1 - 0.3^(n+1) for n wrong and none right...
        (0, 3, 1 - 0.3**4),
        (3, 0, 0.7**4),  # ...and 0.7^(n+1) for n right and none wrong
        (0, 0, 0.7),  # the uniform prior alone
    ],
)
def test_the_gold_posterior_matches_hand_computed_beta_tails(right, wrong, expected):
    assert quality.gold_posterior_below(right, wrong, 0.7) == pytest.approx(expected)


def test_fishers_method_matches_its_chi_square_definition():
    p = [0.01, 0.2, 0.5, 0.9]

    statistic = -2 * np.log(p).sum()

    assert quality.fisher_combined(p) == pytest.approx(stats.chi2.sf(statistic, 2 * len(p)))


# The crowd's P(dope) per card: cards vary around what is predictable of them (here: whether the two items share a
# category, 0.85 vs 0.1) as Beta(m * S, (1 - m) * S).
S = 6.0


def crowd_cards(n: int, seed: int, same: float = 0.5, high: float = 0.85, low: float = 0.1):
    """(predicted, true) P(dope) per card; a share `same` of the cards pair items of one category."""
    rng = np.random.default_rng(seed)
    predicted = np.where(rng.random(n) < same, high, low)
    return predicted, rng.beta(predicted * S, (1 - predicted) * S)


def facts_for(votes, cards, rng, others=(0, 0, 1, 2), gold_every: int = 0, gold_right: float = 1.0):
    """Each vote with 0-2 other votes on its card (sparse overlap, as in a real crowd) and the crowd's prediction."""
    predicted, q = cards
    out = []
    for i, vote in enumerate(votes):
        if gold_every and i % gold_every == 0:
            out.append(quality.VoteFact(key=f"g{i}", dope=bool(rng.random() < gold_right), gold=True))
            continue
        n = int(rng.choice(others))
        out.append(
            quality.VoteFact(
                key=f"v{i}-{rng.random()}",
                dope=bool(vote),
                others_dope=int(rng.binomial(n, q[i])),
                others_total=n,
                prior=float(predicted[i]),
                prior_strength=S,
            )
        )
    return out


def test_a_voter_who_votes_like_the_crowd_gets_uniform_p_values():
    rng = np.random.default_rng(0)
    cards = crowd_cards(4000, seed=1)
    votes = rng.random(4000) < cards[1]  # exchangeable with the others: the null hypothesis holds

    p = [quality.vote_p_value(f) for f in facts_for(votes, cards, rng)]

    # The Beta-binomial predictive with the right prior makes randomized p-values exactly uniform.
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_the_spread_of_cards_around_their_prediction_is_recovered_from_their_votes():
    rng = np.random.default_rng(7)
    predicted, q = crowd_cards(3000, seed=8)
    n = rng.integers(2, 8, size=3000)

    _, strength = quality.card_prior(rng.binomial(n, q), n, predicted)

    assert strength == pytest.approx(S, rel=0.3)


def test_a_crowd_model_learns_what_the_crowd_approves_of():
    rng = np.random.default_rng(9)
    same_category = rng.random(2000) < 0.5
    dope = rng.random(2000) < np.where(same_category, 0.85, 0.1)

    model = quality.CrowdModel().fit(same_category[:, None].astype(float), dope)

    assert model.predict(np.array([[1.0], [0.0]])) == pytest.approx([0.85, 0.1], abs=0.04)


@pytest.mark.parametrize("seed", range(5))
def test_a_random_clicker_is_anomalous_within_forty_votes_and_an_honest_voter_is_not(seed):
    rng = np.random.default_rng(seed)
    cards = crowd_cards(40, seed=seed + 10)

    clicker = quality.assess(facts_for(rng.random(40) < 0.5, cards, rng), T)
    honest = quality.assess(facts_for(rng.random(40) < cards[1], cards, rng), T)

    assert clicker.anomaly_p < 1e-3, clicker.anomaly_p
    assert honest.anomaly_p > 1e-3 and not honest.exclude, honest


def test_the_card_blind_odds_match_a_hand_computed_case():
    # Every card predicted 0.5, three dopes and one nope. Crowd-like fits P(dope) = 3/4 exactly: (3/4)^3 (1/4) =
    # 27/256. Card-blind averages theta^3 (1 - theta) over Beta(1/2, 1/2): B(7/2, 3/2) / B(1/2, 1/2) = 5/128.
    facts = [quality.VoteFact(key=str(i), dope=i < 3, prior=0.5) for i in range(4)]

    log_odds, votes = quality.card_blind_log_odds(facts)

    assert votes == 4
    assert np.exp(log_odds) == pytest.approx((5 / 128) / (27 / 256), abs=1e-6)


def taste_voter(cards, rng, n: int) -> list[bool]:
    """An honest person whose taste is their own: the crowd's logit scaled and shifted, plus a few careless clicks."""
    scale, shift, careless = rng.normal(1.0, 0.25), rng.normal(0.0, 0.5), rng.uniform(0.0, 0.08)
    p = special.expit(scale * special.logit(cards[1][:n]) + shift)
    return list(np.where(rng.random(n) < careless, rng.random(n) < 0.5, rng.random(n) < p))


def excluded_by(facts, every: int = 10) -> int | None:
    """The vote count at the first review (one every `every` votes) that excludes the voter, or None."""
    return next((k for k in range(every, len(facts) + 1, every) if quality.assess(facts[:k], T).exclude), None)


def test_voters_who_ignore_the_card_are_excluded_within_forty_votes_and_honest_tastes_are_not():
    rng = np.random.default_rng(11)
    clickers, honest = [], []
    for seed in range(60):
        cards = crowd_cards(150, seed=100 + seed)
        clickers.append(excluded_by(facts_for(rng.random(150) < 0.5, cards, rng, gold_every=12, gold_right=0.5)))
        cards = crowd_cards(150, seed=200 + seed)
        honest.append(excluded_by(facts_for(taste_voter(cards, rng, 150), cards, rng, gold_every=12, gold_right=0.9)))

    assert sum(k is not None and k <= 40 for k in clickers) / 60 >= 0.8
    assert sum(k is not None for k in honest) / 60 <= 0.05


def test_the_card_blind_test_adds_what_the_gold_and_fisher_tests_miss():
    # Measured over four streams of 100 clickers at 30 votes: 16 to 33 more caught with it than without.
    rng = np.random.default_rng(12)
    without = replace(T, blind_odds=float("inf"))
    caught_with = caught_without = 0
    for seed in range(100):
        cards = crowd_cards(30, seed=300 + seed)
        facts = facts_for(rng.random(30) < 0.5, cards, rng, gold_every=12, gold_right=0.5)
        caught_with += quality.assess(facts, T).exclude
        caught_without += quality.assess(facts, without).exclude

    assert caught_with >= caught_without + 10


def test_a_voter_who_ignores_the_card_is_told_why():
    rng = np.random.default_rng(13)
    cards = crowd_cards(60, seed=14)

    verdict = quality.assess(facts_for(rng.random(60) < 0.5, cards, rng), T)

    assert verdict.exclude and "card-blind" in verdict.flags
    assert "do not depend on the card" in verdict.reason and verdict.blind_log_odds >= np.log(T.blind_odds)


def test_a_voter_who_fails_gold_cards_is_excluded_and_told_why():
    rng = np.random.default_rng(2)
    facts = [quality.VoteFact(key=f"g{i}", dope=False, gold=True) for i in range(3)]  # three known dopes, all wrong

    verdict = quality.assess(facts, T)

    assert verdict.exclude and verdict.flags[0] == "gold" and "0 right, 3 wrong" in verdict.reason
    assert not quality.assess(facts_for(rng.random(3) < 0.5, crowd_cards(3, 3), rng), T).exclude


def test_good_gold_answers_vouch_for_a_voter_whose_taste_differs_from_the_crowd():
    rng = np.random.default_rng(4)
    cards = crowd_cards(120, seed=5)
    contrarian = rng.random(120) < (1 - cards[1])  # consistently against the crowd: anomalous by any test...
    facts = facts_for(contrarian, cards, rng, gold_every=6, gold_right=1.0)  # ...but every gold card right

    verdict = quality.assess(facts, T)

    assert verdict.anomaly_p < T.anomaly_alpha and "anomalous" in verdict.flags
    assert not verdict.exclude


def test_fast_voters_and_long_streaks_are_flagged_for_staff_not_excluded():
    facts = [quality.VoteFact(key=str(i), dope=True, shown_ms=150) for i in range(30)]

    verdict = quality.assess(facts, T)

    assert {"fast", "streak"} <= set(verdict.flags) and not verdict.exclude
    assert "fast decisions" in verdict.reason and "streak" in verdict.reason


# ---------------------------------------------------------------------------------------- in the database


def add_gold_votes(voter: Voter, variant, answers: list[tuple[bool, bool]]) -> None:
    pairs = list(MatchPair.objects.filter(variant=variant).values_list("pair_id", flat=True))
    Vote.objects.bulk_create(
        Vote(voter=voter, pair_id=pairs[i], dope=given, gold=expected, token_id=f"{voter.pk}-{i}")
        for i, (given, expected) in enumerate(answers)
    )


def test_an_excluded_voters_votes_leave_the_leaderboard_are_kept_and_come_back_when_staff_include_them(variants, staff):
    histogram = variants[0]
    careless = Voter.objects.create()
    add_gold_votes(careless, histogram, [(False, True)] * 4)  # four known dopes called nope
    pairs = list(MatchPair.objects.filter(variant=histogram).values_list("pair_id", flat=True))
    Vote.objects.bulk_create(Vote(voter=careless, pair_id=p, dope=True, token_id=f"c{p}") for p in pairs[4:14])

    report = voters_review()

    careless.refresh_from_db()
    assert report.excluded == 1 and careless.excluded and "gold" in careless.flags
    assert staff.get("/api/leaderboard").json()["rows"][0]["votes"] == 0
    assert Vote.objects.filter(voter=careless).count() == 14  # kept

    voter_set_decision(voter=careless, decision=Voter.StaffDecision.INCLUDE)
    voters_review(voter_ids=[careless.pk])

    careless.refresh_from_db()
    assert not careless.excluded
    rows = {r["variant_id"]: r for r in staff.get("/api/leaderboard").json()["rows"]}
    assert rows[histogram.pk]["votes"] == 10  # the ten model votes count again; gold never does


def test_an_automatic_exclusion_sticks_even_if_later_answers_are_right(variants):
    voter = Voter.objects.create()
    add_gold_votes(voter, variants[0], [(False, True)] * 4)
    voters_review()
    add_gold_votes_more = [(True, True)] * 3
    pairs = list(MatchPair.objects.filter(variant=variants[0]).values_list("pair_id", flat=True))[4:7]
    Vote.objects.bulk_create(
        Vote(voter=voter, pair_id=p, dope=g, gold=e, token_id=f"m{p}")
        for p, (g, e) in zip(pairs, add_gold_votes_more, strict=True)
    )

    voters_review()

    voter.refresh_from_db()
    assert voter.excluded and voter.gold_right == 3 and voter.gold_wrong == 4


def test_a_voters_votes_count_only_once_they_have_answered_enough_gold_cards(variants, staff, settings):
    settings.VSEARCH_QUALIFY_GOLD = 2
    histogram = variants[0]
    newcomer = Voter.objects.create()
    assert newcomer.counted is False  # new voters start unqualified
    pairs = list(MatchPair.objects.filter(variant=histogram).values_list("pair_id", flat=True))
    Vote.objects.bulk_create(Vote(voter=newcomer, pair_id=p, dope=True, token_id=f"n{p}") for p in pairs[:5])

    voters_review()
    before = {r["variant_id"]: r["votes"] for r in staff.get("/api/leaderboard").json()["rows"]}
    Vote.objects.create(voter=newcomer, pair_id=pairs[10], dope=True, gold=True, token_id="g1")  # two gold answers
    Vote.objects.create(voter=newcomer, pair_id=pairs[11], dope=False, gold=False, token_id="g2")
    voters_review()

    newcomer.refresh_from_db()
    after = {r["variant_id"]: r["votes"] for r in staff.get("/api/leaderboard").json()["rows"]}
    assert before[histogram.pk] == 0 and newcomer.counted and after[histogram.pk] == 5


def test_gold_answers_are_compared_with_the_crowds_own_answers_to_gold_cards_of_their_kind(variants):
    crowd = [Voter.objects.create(counted=True) for _ in range(2)]
    for voter in crowd:  # the crowd: known dopes called dope 2 times in 2, known nopes called dope 0 times in 2
        add_gold_votes(voter, variants[0], [(True, True), (False, False)])
    newcomer = Voter.objects.create(counted=False)
    add_gold_votes(newcomer, variants[1], [(False, True)])

    (fact,) = voter_facts([newcomer.pk])[newcomer.pk]

    assert fact.gold is True and fact.prior == pytest.approx((2 + 1) / (2 + 2))  # Laplace's rule on 2 of 2
