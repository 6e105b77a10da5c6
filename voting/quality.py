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
- Flags for staff, not exclusions on their own: decisions faster than a person can look (median shown_ms below
  `fast_ms`), long one-sided streaks, combined p below `flag_alpha`.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Thresholds:
    min_accuracy: float = 0.7
    credibility: float = 0.95
    gold_vouches: float = 0.9
    anomaly_alpha: float = 1e-4
    flag_alpha: float = 1e-2
    min_anomaly_votes: int = 10
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
    prior: float | None = None  # approval of the card's models, None if unknown
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


def vote_p_value(fact: VoteFact) -> float | None:
    """Randomized p-value of one vote against the predictive P(dope) of the card: the card's prior (its models)
    updated by the other votes on it. None when there is nothing to compare with."""
    if fact.others_total == 0 and fact.prior is None:
        return None
    prior = 0.5 if fact.prior is None else min(max(fact.prior, 0.01), 0.99)
    weight = fact.prior_strength if fact.prior is not None else 1.0
    q = (weight * prior + fact.others_dope) / (weight + fact.others_total)
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
    result = Assessment(len(facts), right, wrong, below, above, combined, len(p_values))

    shown = [f.shown_ms for f in facts if f.shown_ms is not None]
    if len(shown) >= t.min_fast_votes and statistics.median(shown) < t.fast_ms:
        result.flags.append("fast")
    if longest_streak([f.dope for f in facts]) >= t.streak:
        result.flags.append("streak")
    anomalous = combined is not None and len(p_values) >= t.min_anomaly_votes and combined < t.flag_alpha
    if anomalous:
        result.flags.append("anomalous")

    if below > t.credibility:
        result.exclude = True
        result.flags.insert(0, "gold")
        result.reason = (
            f"gold cards: {right} right, {wrong} wrong; P(accuracy < {t.min_accuracy:.0%}) = {below:.3f} "
            f"> {t.credibility}"
        )
    elif anomalous and combined < t.anomaly_alpha and above < t.gold_vouches:
        result.exclude = True
        result.reason = (
            f"votes unlike everyone else's on the same cards: Fisher p = {combined:.2g} over {len(p_values)} "
            f"votes (< {t.anomaly_alpha:g}), and gold answers ({right} right, {wrong} wrong) do not vouch for them"
        )
    elif result.flags:
        notes = {"fast": "fast decisions", "streak": "a long one-sided streak", "anomalous": "unusual votes"}
        result.reason = "flagged: " + ", ".join(notes[f] for f in result.flags)
        if combined is not None:
            result.reason += f" (Fisher p = {combined:.2g})"
    return result
