"""Every write of voting: recording a vote (exactly once), undoing the last one, gold cards, and the review
that decides whose votes count."""

from __future__ import annotations

import functools
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from matching.models import Item, MatchPair, Pair
from matching.services import gold_copy_add
from voting import ledger, quality, sampling
from voting.identity import voter_key, voter_saved
from voting.models import GoldCard, NopeReason, Vote, Voter
from voting.tokens import TokenError, token_read
from vsearch_site import metrics
from vsearch_site.errors import Conflict, InvalidInput, NotFound


class VoteRefused(InvalidInput):
    """The vote cannot be taken as sent (verdict, token, a card or voter that is gone)."""


class AlreadyVoted(Conflict):
    """This voter has a vote on this card already (from another token)."""


class NothingToUndo(NotFound):
    """The voter has no vote to take back."""


class UndoTooLate(Conflict):
    """The last vote is older than the undo window."""


VERDICTS = {"dope": True, "nope": False}


def vote_record(
    *,
    voter: Voter,
    token: str,
    verdict: str,
    shown_ms: int | None = None,
    ip: str | None = None,
    look_ahead: sampling.Drawn | None = None,
) -> Vote:
    """Store one verdict on a served card; the voter's row is created with their first vote. Retrying the same
    token is a replay: the stored vote comes back, nothing new is written. With `look_ahead` (the next card's draws)
    on PostgreSQL, the INSERT also runs the next card's look in the same statement, and fills in look_ahead.look."""
    if verdict not in VERDICTS:
        raise VoteRefused("verdict must be 'dope' or 'nope'.")
    try:
        served = token_read(token, voter_key=voter_key(voter))
    except TokenError as exc:
        raise VoteRefused(str(exc)) from None
    voter = voter_saved(voter)
    # The client measures how long the card was on screen; it cannot exceed the time since it was served.
    server_ms = int(served.age_seconds * 1000)
    shown = shown_ms if isinstance(shown_ms, int) and 0 <= shown_ms <= server_ms + 1000 else server_ms
    # One statement in autocommit: it has committed when it returns (no BEGIN/COMMIT round trips). A card
    # deleted since it was served fails the foreign key, a second vote the unique constraints: told apart below.
    # Inside an outer transaction (tests, a caller's atomic block) a savepoint keeps a conflict from breaking it.
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            vote = _vote_insert(
                look_ahead=look_ahead,
                voter=voter,
                pair_id=served.pair_id,
                dope=VERDICTS[verdict],
                shown_ms=min(shown, 2**31 - 1),
                token_id=served.nonce,
                ip=ip,
                gold=served.gold,
                propensity=served.propensity,
            )
        metrics.vote_recorded(gold_answer=served.gold, dope=vote.dope)
        return vote
    except IntegrityError:
        existing = Vote.objects.filter(voter=voter, pair_id=served.pair_id).first()
        if existing is not None and existing.token_id == served.nonce:
            return existing  # the same token again: a client retry
        if existing is None and not Pair.objects.filter(pk=served.pair_id).exists():
            raise VoteRefused("This card no longer exists.") from None
        if existing is None and not Voter.objects.filter(pk=voter.pk).exists():
            raise VoteRefused("Your voter identity is no longer known: reload the page.") from None
        raise AlreadyVoted("You have already voted on this pair.") from None


_INSERTED = ("voter", "pair", "dope", "created_at", "shown_ms", "token_id", "ip", "gold", "propensity")


@functools.cache
def _vote_insert_sql(vendor: str) -> tuple[str, tuple]:
    """INSERT ... RETURNING id for a vote, built once per process from the model (the ORM's create() spent more
    CPU building its statement than the database spent running it: docs/BENCHMARKS.md, vote path)."""
    qn = connection.ops.quote_name
    fields = tuple(Vote._meta.get_field(name) for name in _INSERTED)
    columns = ", ".join(qn(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {qn(Vote._meta.db_table)} ({columns}) VALUES ({marks}) RETURNING {qn('id')}", fields


def _vote_insert(*, voter: Voter, look_ahead: sampling.Drawn | None, **values) -> Vote:
    """Store one vote row (each value prepared by its field, as the ORM would) and return it as a Vote. On PostgreSQL
    with `look_ahead`, one statement: the INSERT as a data-modifying CTE, then the next card's look, which must not
    offer the card just voted on (its snapshot does not show the new row) and whose counts get the new vote added."""
    values["created_at"] = timezone.now()
    sql, fields = _vote_insert_sql(connection.vendor)
    row = {"voter": voter.pk, "pair": values["pair_id"], **values}
    params = [f.get_db_prep_save(row[f.name], connection) for f in fields]
    if look_ahead is not None and connection.vendor == "postgresql":
        look_ahead.skip_pair = values["pair_id"]
        look_sql, look_params = sampling.look_statement(voter.pk, look_ahead)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH new_vote AS ({sql}) SELECT -1, id, NULL, NULL, NULL, NULL FROM new_vote UNION ALL {look_sql}",
                params + look_params,
            )
            rows = cursor.fetchall()
        vote_id = next(r[1] for r in rows if r[0] == -1)
        look_ahead.look = sampling.look_read(rows, added=sampling.History(1, int(values["gold"] is not None)))
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            vote_id = cursor.fetchone()[0]
    vote = Vote(id=vote_id, voter=voter, **values)
    vote._state.adding = False
    vote._state.db = connection.alias
    return vote


def vote_undo(*, voter: Voter) -> Vote:
    """Delete the voter's latest vote if it is recent enough; returns it (its card is served again)."""
    last = None if voter.pk is None else Vote.objects.filter(voter=voter).order_by("-created_at", "-id").first()
    if last is None:
        raise NothingToUndo("There is no vote to undo.")
    if last.created_at < timezone.now() - timedelta(seconds=settings.VSEARCH_UNDO_SECONDS):
        raise UndoTooLate(f"Votes can be undone within {settings.VSEARCH_UNDO_SECONDS} seconds; that one is older.")
    with transaction.atomic():
        ledger.vote_removed(last)  # already folded into the tallies: its share comes off
        last.delete()
    return last


class ReasonTooLate(Conflict):
    """The nope is older than the window for its reason."""


def nope_reason_record(*, voter: Voter, token: str, reason: str) -> NopeReason:
    """Why the voter said nope to the card of `token` (the token their vote was cast with). A second tap replaces
    the first. Only a nope has a reason, only within VSEARCH_NOPE_REASON_SECONDS of the vote, only the voter's own."""
    if reason not in NopeReason.Reason.values:
        raise VoteRefused(f"reason must be one of {', '.join(NopeReason.Reason.values)}.")
    try:
        served = token_read(token, voter_key=voter_key(voter))
    except TokenError as exc:
        raise VoteRefused(str(exc)) from None
    vote = None if voter.pk is None else Vote.objects.filter(voter_id=voter.pk, token_id=served.nonce).first()
    if vote is None:
        raise NoSuchVote("There is no vote with this token (not cast yet, or undone): a reason follows its vote.")
    if vote.dope:
        raise VoteRefused("Only a nope has a reason.")
    if vote.created_at < timezone.now() - timedelta(seconds=settings.VSEARCH_NOPE_REASON_SECONDS):
        raise ReasonTooLate(f"A reason is taken within {settings.VSEARCH_NOPE_REASON_SECONDS} seconds of the vote.")
    recorded, _ = NopeReason.objects.update_or_create(vote=vote, defaults={"reason": reason})
    return recorded


class NoSuchVote(NotFound):
    """The token's vote is not stored (never cast, or undone)."""


# ---------------------------------------------------------------------------------------- gold cards


def gold_cards_ensure(*, count: int | None = None, seed: int = 0) -> int:
    """Make gold cards until there are `count` (VSEARCH_GOLD_CARDS), half of each kind: an item beside an
    altered copy of itself (known dope), two items of different categories (known nope). Returns how many
    were added; a catalog too small or of one category gets what it can."""
    count = settings.VSEARCH_GOLD_CARDS if count is None else count
    items = list(Item.objects.order_by("id").values_list("id", "category"))
    if len(items) < 2:
        return 0
    rng = np.random.default_rng([seed, GoldCard.objects.count()])
    have = dict(GoldCard.objects.values("kind").annotate(n=Count("id")).values_list("kind", "n"))
    added = 0
    copies_wanted = count // 2 - have.get(GoldCard.Kind.COPY, 0)
    used = set(GoldCard.objects.filter(kind=GoldCard.Kind.COPY).values_list("pair__query_item_id", flat=True))
    candidates = [pk for pk, _ in items if pk not in used]
    for pk in rng.permutation(candidates)[: max(0, copies_wanted)]:
        item = Item.objects.get(pk=int(pk))
        copy = gold_copy_add(item=item, rng=rng)
        added += _gold_add(Pair.objects.get_or_create(query_item=item, match_item=copy)[0], GoldCard.Kind.COPY)
    others_wanted = count - count // 2 - have.get(GoldCard.Kind.OTHER, 0)
    if len({c for _, c in items}) > 1:
        tries = 0
        while others_wanted > 0 and tries < 20 * count:
            tries += 1
            (a, ca), (b, cb) = (items[i] for i in rng.choice(len(items), size=2, replace=False))
            if ca == cb:
                continue
            pair, _ = Pair.objects.get_or_create(query_item_id=a, match_item_id=b)
            if not GoldCard.objects.filter(pair=pair).exists():
                added += _gold_add(pair, GoldCard.Kind.OTHER)
                others_wanted -= 1
    return added


def _gold_add(pair: Pair, kind: str) -> int:
    with transaction.atomic():
        top = GoldCard.objects.aggregate(top=Max("seq"))["top"]
        GoldCard.objects.create(pair=pair, kind=kind, seq=0 if top is None else top + 1)
    return 1


# ---------------------------------------------------------------------------------------- voter review


@dataclass(frozen=True)
class ReviewReport:
    reviewed: int
    excluded: int
    flagged: int


def voters_review(*, voter_ids: list[int] | None = None, thresholds: quality.Thresholds | None = None) -> ReviewReport:
    """Assess every voter with votes not yet reviewed (or the ones named): gold posterior, anomaly test,
    speed, streaks (voting.quality). Automatic exclusions stick ("from then on"); a staff decision wins."""
    thresholds = thresholds or quality.Thresholds.from_settings()
    voters = Voter.objects.annotate(n=Count("votes"))
    voters = voters.filter(pk__in=voter_ids) if voter_ids is not None else voters.exclude(n=F("reviewed_votes"))
    voters = list(voters.filter(n__gt=0))
    if not voters:
        return ReviewReport(0, 0, 0)
    facts = voter_facts([v.pk for v in voters])
    now = timezone.now()
    excluded = flagged = 0
    for voter in voters:
        verdict = quality.assess(facts[voter.pk], thresholds)
        was_excluded = voter.excluded
        if voter.staff_decision == Voter.StaffDecision.INCLUDE:
            exclude = False
        elif voter.staff_decision == Voter.StaffDecision.EXCLUDE:
            exclude = True
        else:
            exclude = was_excluded or verdict.exclude  # automatic exclusions stick
        qualified = verdict.gold_right + verdict.gold_wrong >= settings.VSEARCH_QUALIFY_GOLD
        fields = {
            "gold_right": verdict.gold_right,
            "gold_wrong": verdict.gold_wrong,
            "anomaly_p": verdict.anomaly_p,
            "flags": verdict.flags,
            "reviewed_votes": verdict.votes,
            "reviewed_at": now,
            "excluded": exclude,
            "counted": not exclude and (qualified or voter.staff_decision == Voter.StaffDecision.INCLUDE),
        }
        if exclude and not was_excluded:
            fields.update(excluded_at=now, reason=verdict.reason or "excluded by staff")
            excluded += 1
        elif not was_excluded:
            fields["reason"] = verdict.reason
        flagged += bool(verdict.flags)
        _voter_update(voter, fields)
    return ReviewReport(len(voters), excluded, flagged)


def voter_facts(voter_ids: list[int]) -> dict[int, list[quality.VoteFact]]:
    """Each voter's votes in the order cast, as the review sees them: with the other votes on the same card and
    the crowd model's prediction for it."""
    votes = list(
        Vote.objects.filter(voter_id__in=voter_ids)
        .order_by("voter_id", "created_at", "id")
        .values_list("voter_id", "pair_id", "dope", "gold", "shown_ms", "token_id")
    )
    references = _card_references({pair for _, pair, *_ in votes})
    # A model's card is predicted by the crowd model; a gold card by the crowd's answers to gold cards of its kind.
    priors = _card_priors({pair for _, pair, _, gold, *_ in votes if gold is None})
    gold_rates = _gold_rates()
    out: dict[int, list[quality.VoteFact]] = {pk: [] for pk in voter_ids}
    for voter_id, pair_id, dope, gold, shown_ms, token_id in votes:
        dope_all, total_all, mine = references.get(pair_id, (0, 0, {}))
        own_dope, own_total = mine.get(voter_id, (0, 0))  # leave the voter's own vote out of the reference
        prior, strength = priors.get(pair_id, (None, 2.0)) if gold is None else (gold_rates[gold], 2.0)
        out[voter_id].append(
            quality.VoteFact(
                key=token_id,
                dope=dope,
                gold=gold,
                shown_ms=shown_ms,
                others_dope=dope_all - own_dope,
                others_total=total_all - own_total,
                prior=prior,
                prior_strength=strength,
            )
        )
    return out


def _card_references(pairs: set[int]) -> dict[int, tuple[int, int, dict[int, tuple[int, int]]]]:
    """Per card: (dope, total) of the counted votes on it (not gold, not excluded voters), and each voter's own
    share of those, so a voter's own vote can be left out of the reference it is tested against."""
    rows = (
        Vote.objects.filter(pair_id__in=pairs, gold__isnull=True, voter__counted=True)
        .values_list("pair_id", "voter_id", "dope")
        .order_by()
    )
    out: dict[int, list] = {}
    for pair_id, voter_id, dope in rows:
        entry = out.setdefault(pair_id, [0, 0, {}])
        entry[0] += dope
        entry[1] += 1
        d, t = entry[2].get(voter_id, (0, 0))
        entry[2][voter_id] = (d + dope, t + 1)
    return {pair: (d, t, mine) for pair, (d, t, mine) in out.items()}


def _gold_rates() -> dict[bool, float]:
    """The counted crowd's P(dope) on known-dope and on known-nope gold cards (Laplace's rule; 0.5 without answers)."""
    rows = (
        Vote.objects.filter(gold__isnull=False, voter__counted=True)
        .values("gold")
        .annotate(n=Count("id"), dope=Count("id", filter=Q(dope=True)))
        .order_by()
    )
    rates = {row["gold"]: (row["dope"] + 1) / (row["n"] + 2) for row in rows}
    return {True: rates.get(True, 0.5), False: rates.get(False, 0.5)}


TRAINING_VOTES = 50_000  # the most recent counted votes the crowd model learns from


def _card_priors(pairs: set[int]) -> dict[int, tuple[float, float]]:
    """Per card: the crowd's predicted P(dope) and how much that prediction is worth in votes (quality.CrowdModel,
    fitted on recent counted votes), the reference for a card with few votes of its own."""
    training = list(
        Vote.objects.filter(gold__isnull=True, voter__counted=True)
        .order_by("-id")
        .values_list("pair_id", "dope")[:TRAINING_VOTES]
    )
    if len(training) < quality.CrowdModel.MIN_VOTES:
        return {}
    features = CardFeatures(pairs | {pair for pair, _ in training})
    per_card: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for pair_id, dope in training:
        per_card[pair_id][0] += dope
        per_card[pair_id][1] += 1
    cards = sorted(per_card)
    model = quality.CrowdModel().fit(
        features.rows([pair for pair, _ in training]),
        np.array([dope for _, dope in training]),
        card_dope=[per_card[c][0] for c in cards],
        card_total=[per_card[c][1] for c in cards],
        card_features=features.rows(cards),
    )
    wanted = sorted(pairs)
    predicted = model.predict(features.rows(wanted))
    if predicted is None:
        return {}
    return {pair: (float(q), model.strength) for pair, q in zip(wanted, predicted, strict=True)}


class CardFeatures:
    """What is known of a card, as numbers: whether its two items share their category and each catalog
    attribute (colour, pattern...), and which ready models produced it (one column each)."""

    def __init__(self, pairs: set[int]):
        rows = Pair.objects.filter(pk__in=pairs).values_list(
            "pk", "query_item__category", "match_item__category", "query_item__attributes", "match_item__attributes"
        )
        self.items = {pk: (qc, mc, qa or {}, ma or {}) for pk, qc, mc, qa, ma in rows}
        keys: dict[str, int] = defaultdict(int)
        for _, _, qa, ma in self.items.values():
            for key in set(qa) & set(ma):
                keys[key] += 1
        self.keys = sorted(k for k, _ in sorted(keys.items(), key=lambda kv: -kv[1])[:8])
        self.makers: dict[int, set[int]] = defaultdict(set)
        for pair_id, variant_id in MatchPair.objects.filter(pair_id__in=pairs, variant__status="ready").values_list(
            "pair_id", "variant_id"
        ):
            self.makers[pair_id].add(variant_id)
        self.variants = sorted({v for vs in self.makers.values() for v in vs})

    def rows(self, pairs: list[int]) -> np.ndarray:
        out = np.zeros((len(pairs), 1 + len(self.keys) + len(self.variants)), dtype=np.float64)
        column = {v: 1 + len(self.keys) + i for i, v in enumerate(self.variants)}
        for r, pair in enumerate(pairs):
            qc, mc, qa, ma = self.items.get(pair, ("", "", {}, {}))
            out[r, 0] = qc == mc
            for i, key in enumerate(self.keys):
                out[r, 1 + i] = key in qa and qa.get(key) == ma.get(key)
            for variant in self.makers.get(pair, ()):
                out[r, column[variant]] = 1.0
        return out


def voter_set_decision(*, voter: Voter, decision: str) -> Voter:
    """Staff: always count this voter (include), never count them (exclude), or let the review decide ("")."""
    if decision not in Voter.StaffDecision.values:
        raise InvalidInput(f"Unknown decision {decision!r}; choose include, exclude or automatic.")
    fields: dict = {"staff_decision": decision}
    if decision == Voter.StaffDecision.INCLUDE:
        fields.update(excluded=False, counted=True, excluded_at=None, reason="included by staff")
    elif decision == Voter.StaffDecision.EXCLUDE:
        fields.update(excluded=True, counted=False, excluded_at=timezone.now(), reason="excluded by staff")
    else:
        fields.update(excluded=False, excluded_at=None, reason="", reviewed_votes=0)  # reviewed afresh
    _voter_update(voter, fields)
    voter.refresh_from_db()
    return voter


def _voter_update(voter: Voter, fields: dict) -> None:
    """Write a voter's standing; when whether its votes count changes, the folded tallies follow in the same
    transaction (voting.ledger)."""
    with transaction.atomic():
        before = Voter.objects.select_for_update().filter(pk=voter.pk).values_list("counted", flat=True).first()
        Voter.objects.filter(pk=voter.pk).update(**fields)
        if "counted" in fields and before is not None and fields["counted"] != before:
            ledger.voter_counted_changed(voter.pk, fields["counted"])


__all__ = [
    "AlreadyVoted",
    "NoSuchVote",
    "NothingToUndo",
    "ReasonTooLate",
    "UndoTooLate",
    "VoteRefused",
    "gold_cards_ensure",
    "nope_reason_record",
    "vote_record",
    "vote_undo",
    "voter_set_decision",
    "voters_review",
]
