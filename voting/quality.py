"""How much a voter's votes can be trusted: gold answers, anomaly tests, speed and streaks. Plain numbers in,
a decision out; no database here (voting.services.voters_review feeds it).

- Gold: each voter's accuracy on gold cards has a Beta(1 + right, 1 + wrong) posterior. A voter credibly below
  `min_accuracy` (posterior P(accuracy < min_accuracy) > `credibility`) is excluded.
- Anomaly (Chatbot Arena's test, arXiv 2403.04132 section 5.1): each vote gets a p-value against the other votes
  on the same card, and a voter's p-values are combined with Fisher's method. Most cards have few other votes, so
  the reference is the Beta-binomial predictive of the card: what the crowd says of similar cards (a logistic
  regression on what is known of a card: whether its two items share their category and each attribute, which
  models made it; `CrowdModel`) as a prior, updated by the card's own votes. Arena, too, falls back on the history
  of similar battles (the same model pair). The per-vote p-value is randomized, so it is exactly uniform for a
  voter who votes like the crowd when the prior is right (a binary outcome has only two conservative p-values,
  which would make Fisher's chi-square reference wrong). A credibly anomalous voter (combined p < `anomaly_alpha`)
  is excluded unless their gold answers vouch for them (P(accuracy > min_accuracy) >= `gold_vouches`): an honest
  person with a taste of their own differs from the crowd too, but answers gold cards right.
- Card-blind (a likelihood ratio, Wald's sequential test): votes that do not depend on the card at all (dope with
  one fixed probability, whatever is shown: a random clicker, a script) against votes like the crowd's (the card's
  predictive P(dope) as above, shifted on the logit scale by the voter's own leniency). The blind rate is averaged
  over a Beta(1/2, 1/2) prior, the leniency fitted to the voter. Gold cards take part with the crowd's own rate of
  dope on each kind of gold card. A voter whose odds for "card-blind" reach `blind_odds` to 1 is excluded unless
  their gold answers vouch for them. With the crowd's model right, an honest voter's odds ever reaching A to 1 has
  probability at most 1/A however often they are reviewed (Ville's inequality), so the threshold is a
  false-exclusion rate, not a number fitted to a simulation. Fisher's method asks "unlike the crowd in any way";
  this asks the narrower question "not looking at the card", and needs far fewer votes to answer it.
- Flags for staff, not exclusions on their own: decisions faster than a person can look (median shown_ms below
  `fast_ms`), long one-sided streaks, combined p below `flag_alpha`.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special, stats


@dataclass(frozen=True)
class Thresholds:
    min_accuracy: float = 0.7
    credibility: float = 0.95
    gold_vouches: float = 0.9
    anomaly_alpha: float = 1e-4
    flag_alpha: float = 1e-2
    min_anomaly_votes: int = 10
    blind_odds: float = 100.0
    fast_ms: int = 400
    min_fast_votes: int = 10
    streak: int = 25

    @classmethod
    def from_settings(cls) -> Thresholds:
        from django.conf import settings

        return cls(
            min_accuracy=settings.VSEARCH_GOLD_MIN_ACCURACY,
            credibility=settings.VSEARCH_GOLD_CREDIBILITY,
            gold_vouches=settings.VSEARCH_GOLD_VOUCHES,
            anomaly_alpha=settings.VSEARCH_ANOMALY_ALPHA,
            flag_alpha=settings.VSEARCH_ANOMALY_FLAG_ALPHA,
            blind_odds=settings.VSEARCH_CARD_BLIND_ODDS,
            fast_ms=settings.VSEARCH_FAST_MS,
            streak=settings.VSEARCH_STREAK,
        )


@dataclass(frozen=True)
class VoteFact:
    """One vote as the review sees it."""

    key: str  # stable per vote (its token nonce): seeds the randomized p-value
    dope: bool
    gold: bool | None = None  # the known answer of a gold card; None for a model's card
    shown_ms: int | None = None
    others_dope: int = 0  # counted votes by other voters on the same card
    others_total: int = 0
    prior: float | None = None  # the crowd's predicted P(dope) for the card (for a gold card: of its kind), or None
    prior_strength: float = 2.0  # how many votes the prior is worth (its Beta concentration)


@dataclass
class Assessment:
    votes: int
    gold_right: int
    gold_wrong: int
    p_gold_below: float  # posterior P(accuracy < min_accuracy)
    p_gold_above: float  # posterior P(accuracy > min_accuracy)
    anomaly_p: float | None
    anomaly_votes: int
    blind_log_odds: float | None = None  # log likelihood ratio, card-blind against crowd-like
    flags: list[str] = field(default_factory=list)
    exclude: bool = False
    reason: str = ""


def gold_posterior_below(right: int, wrong: int, threshold: float) -> float:
    """P(accuracy < threshold) under the Beta(1 + right, 1 + wrong) posterior of a uniform prior."""
    return float(stats.beta.cdf(threshold, 1 + right, 1 + wrong))


def _uniform(key: str) -> float:
    """A number in (0, 1) fixed by `key`: the randomization of a vote's p-value is reproducible."""
    digest = hashlib.sha256(f"anomaly:{key}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64


def card_prior(
    dope: Sequence[int], total: Sequence[int], predicted: Sequence[float] | None = None
) -> tuple[float, float]:
    """(mean, concentration) of the Beta prior of cards, by the method of moments from their votes: how far card
    approvals spread around their predicted value beyond binomial noise. Without predictions every card is
    predicted the same (the mean). Too few cards with several votes: a weak prior of concentration 2."""
    d, n = np.asarray(dope, dtype=np.float64), np.asarray(total, dtype=np.float64)
    mean = (d.sum() + 1) / (n.sum() + 2)
    expected = (
        np.full(len(d), mean) if predicted is None else np.clip(np.asarray(predicted, dtype=np.float64), 0.01, 0.99)
    )
    several = n >= 2
    if several.sum() < 5:
        return float(mean), 2.0
    rates, e, w = d[several] / n[several], expected[several], n[several] / n[several].sum()
    observed = float((w * (rates - e) ** 2).sum())
    binomial = float((w * e * (1 - e) / n[several]).sum())
    between = max(observed - binomial, 1e-4)
    spread = float((w * e * (1 - e)).sum())
    return float(mean), float(np.clip(spread / between - 1, 0.5, 100.0))


class CrowdModel:
    """P(dope) the crowd gives a card, from what is known of it (a feature row per card): a logistic regression
    fitted on counted votes, with the concentration of cards around it (card_prior). Too few votes to fit: None."""

    MIN_VOTES = 50

    def __init__(self):
        self.model = None
        self.strength = 2.0

    def fit(self, features: np.ndarray, dope: np.ndarray, card_dope=None, card_total=None, card_features=None):
        from sklearn.linear_model import LogisticRegression

        dope = np.asarray(dope, dtype=bool)
        if len(dope) < self.MIN_VOTES or dope.all() or not dope.any():
            return self
        self.model = LogisticRegression(C=1.0, max_iter=1000).fit(features, dope)
        if card_features is not None and len(card_features):
            _, self.strength = card_prior(card_dope, card_total, self.predict(card_features))
        return self

    def predict(self, features: np.ndarray) -> np.ndarray | None:
        if self.model is None or len(features) == 0:
            return None
        return self.model.predict_proba(features)[:, 1]


def predictive(fact: VoteFact) -> float | None:
    """The crowd's predictive P(dope) for the card: its prior (what is predictable of it) updated by the other votes
    on it (a Beta-binomial predictive). None when there is nothing to go on."""
    if fact.others_total == 0 and fact.prior is None:
        return None
    prior = 0.5 if fact.prior is None else min(max(fact.prior, 0.01), 0.99)
    weight = fact.prior_strength if fact.prior is not None else 1.0
    return (weight * prior + fact.others_dope) / (weight + fact.others_total)


def vote_p_value(fact: VoteFact) -> float | None:
    """Randomized p-value of one vote against the predictive P(dope) of the card. None when there is nothing to
    compare with."""
    q = predictive(fact)
    if q is None:
        return None
    p_seen = q if fact.dope else 1.0 - q
    p_other = 1.0 - p_seen
    u = _uniform(fact.key)
    # Outcomes less likely than the one seen are "more extreme"; ties are split at random.
    if p_seen < p_other:
        return u * p_seen
    if p_seen > p_other:
        return p_other + u * p_seen
    return u


def fisher_combined(p_values: Sequence[float]) -> float | None:
    if not p_values:
        return None
    return float(stats.combine_pvalues(p_values, method="fisher").pvalue)


def card_blind_log_odds(facts: Sequence[VoteFact]) -> tuple[float | None, int]:
    """(log likelihood ratio of "card-blind" against "crowd-like", votes it rests on), each hypothesis with its
    own parameter: card-blind, P(dope) = theta for every card, theta averaged over Beta(1/2, 1/2); crowd-like,
    logit P(dope) = logit q + a for the card's predictive q and the voter's leniency a at its maximum likelihood
    (bounded to |a| <= 4, so that a voter who says dope to everything is not "crowd-like" by an infinite leniency).
    None below two votes with a prediction."""
    known = [(q, f.dope) for f in facts if (q := predictive(f)) is not None]
    if len(known) < 2:
        return None, len(known)
    q, y = np.array(known, dtype=np.float64).T
    x = special.logit(np.clip(q, 0.01, 0.99))

    def crowd_nll(a: float) -> float:
        return -float((y * special.log_expit(x + a) + (1 - y) * special.log_expit(-(x + a))).sum())

    best = optimize.minimize_scalar(crowd_nll, bounds=(-4.0, 4.0), method="bounded")
    # The blind rate theta averaged over a Beta(1/2, 1/2) prior (Krichevsky-Trofimov), not fitted: a mixture keeps the
    # odds a martingale under the crowd's model, which is what lets blind_odds read as a false-exclusion rate.
    dope = float(y.sum())
    blind_ll = float(special.betaln(dope + 0.5, len(y) - dope + 0.5) - special.betaln(0.5, 0.5))
    return blind_ll + float(best.fun), len(known)


def longest_streak(verdicts: Sequence[bool]) -> int:
    best = run = 0
    previous = None
    for verdict in verdicts:
        run = run + 1 if verdict == previous else 1
        previous = verdict
        best = max(best, run)
    return best


def assess(facts: Sequence[VoteFact], t: Thresholds) -> Assessment:
    """A voter's standing after these votes (in the order cast)."""
    gold = [f for f in facts if f.gold is not None]
    right = sum(f.dope == f.gold for f in gold)
    wrong = len(gold) - right
    below = gold_posterior_below(right, wrong, t.min_accuracy)
    above = 1.0 - below
    cards = [f for f in facts if f.gold is None]
    p_values = [p for p in (vote_p_value(f) for f in cards) if p is not None]
    combined = fisher_combined(p_values)
    blind, blind_votes = card_blind_log_odds(facts)
    result = Assessment(len(facts), right, wrong, below, above, combined, len(p_values), blind)

    shown = [f.shown_ms for f in facts if f.shown_ms is not None]
    if len(shown) >= t.min_fast_votes and statistics.median(shown) < t.fast_ms:
        result.flags.append("fast")
    if longest_streak([f.dope for f in facts]) >= t.streak:
        result.flags.append("streak")
    anomalous = combined is not None and len(p_values) >= t.min_anomaly_votes and combined < t.flag_alpha
    if anomalous:
        result.flags.append("anomalous")
    card_blind = blind is not None and blind_votes >= t.min_anomaly_votes and blind >= np.log(t.blind_odds)
    if card_blind:
        result.flags.append("card-blind")

    unvouched = f"and gold answers ({right} right, {wrong} wrong) do not vouch for them"
    if below > t.credibility:
        result.exclude = True
        result.flags.insert(0, "gold")
        result.reason = (
            f"gold cards: {right} right, {wrong} wrong; P(accuracy < {t.min_accuracy:.0%}) = {below:.3f} "
            f"> {t.credibility}"
        )
    elif card_blind and above < t.gold_vouches:
        result.exclude = True
        result.reason = (
            f"votes that do not depend on the card: {np.exp(min(blind, 700.0)):.3g} to 1 over {blind_votes} votes "
            f"(>= {t.blind_odds:g}) against voting like the crowd, {unvouched}"
        )
    elif anomalous and combined < t.anomaly_alpha and above < t.gold_vouches:
        result.exclude = True
        result.reason = (
            f"votes unlike everyone else's on the same cards: Fisher p = {combined:.2g} over {len(p_values)} "
            f"votes (< {t.anomaly_alpha:g}), {unvouched}"
        )
    elif result.flags:
        notes = {
            "fast": "fast decisions",
            "streak": "a long one-sided streak",
            "anomalous": "unusual votes",
            "card-blind": "votes that do not depend on the card",
        }
        result.reason = "flagged: " + ", ".join(notes[f] for f in result.flags)
        if combined is not None:
            result.reason += f" (Fisher p = {combined:.2g})"
    return result
