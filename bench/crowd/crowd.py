"""The simulated crowd: honest voters with tastes of their own, and attackers. Every one of them only sees what a
visitor sees (the two pictures, and the public API); the harness knows more (the items' labels stand in for what
a person sees in a picture; which models made a card is only used to score the attackers' guesses).

Tastes. A person's P(dope) for a card is a logistic function of whether the two items share their category,
colour and pattern, with weights drawn per person from a population (TastePopulation), plus a small share of
inattentive clicks. The same labels make gold cards easy for them: an altered copy shares everything, two items
of different categories rarely share more than a colour.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------- what a card shows


@dataclass(frozen=True)
class Look:
    """What a person sees in a card: do the two items share their category, colour, pattern?"""

    category: bool
    colour: bool
    pattern: bool


def look_of(query: dict, match: dict) -> Look:
    return Look(
        query["category"] == match["category"],
        query.get("colour") == match.get("colour"),
        query.get("pattern") == match.get("pattern"),
    )


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class Taste:
    base: float
    category: float
    colour: float
    pattern: float
    slip: float  # share of inattentive clicks (a coin toss)

    def p_dope(self, look: Look) -> float:
        p = _sigmoid(
            self.base + self.category * look.category + self.colour * look.colour + self.pattern * look.pattern
        )
        return (1 - self.slip) * p + self.slip * 0.5


@dataclass(frozen=True)
class TastePopulation:
    """Each honest voter's weights: normal around these means (logit scale). Defaults: a card of the same
    category, colour and pattern is dope for about 93% of people, the same category alone for about 70%, the
    same colour and pattern in another category for about 40%, nothing shared for about 10%."""

    base: tuple[float, float] = (-2.2, 0.4)
    category: tuple[float, float] = (3.0, 0.7)
    colour: tuple[float, float] = (1.2, 0.5)
    pattern: tuple[float, float] = (0.6, 0.4)
    slip: tuple[float, float] = (0.0, 0.08)  # uniform between

    def draw(self, rng: random.Random) -> Taste:
        return Taste(
            base=rng.gauss(*self.base),
            category=rng.gauss(*self.category),
            colour=rng.gauss(*self.colour),
            pattern=rng.gauss(*self.pattern),
            slip=rng.uniform(*self.slip),
        )

    def mean_p_dope(self, look: Look, draws: int = 4000, seed: int = 12345) -> float:
        """The crowd's approval of a card with this look: the population average (Monte Carlo)."""
        rng = random.Random(seed)
        return sum(self.draw(rng).p_dope(look) for _ in range(draws)) / draws


# ---------------------------------------------------------------------------------------- voters


@dataclass
class Context:
    """What the harness hands a voter for one step."""

    rng: random.Random
    labels: dict[str, dict]  # image URL -> the item's labels (what a person sees)
    makers: dict[tuple[str, str], set[int]]  # card -> the models that made it (scoring only, never for deciding)
    active: list[int]  # the models in the rotation
    # (voter kind, guess, makers, chance) of each guess an attacker made; chance: P(a guess drawn by the serving
    # design's current shares names one of the card's makers), the baseline an uninformed attacker who knew the
    # design would reach
    log: list = field(default_factory=list)
    shares: dict[int, float] = field(default_factory=dict)  # the design's shares, as staff last saw them (scoring)

    def record(self, kind: str, guess: int, makers: set[int]) -> None:
        total = sum(self.shares.get(m, 0.0) for m in self.active)
        chance = sum(self.shares.get(m, 0.0) for m in makers) / total if total else None
        self.log.append((kind, guess, makers, chance))


@dataclass
class Voter:
    """Casts votes through a Visitor until its budget is spent."""

    name: str
    kind: str
    visitor: object
    budget: int
    cast: int = 0
    honest: bool = True
    taste: Taste | None = None
    gold_accuracy: float | None = None  # what its taste gives on gold cards (honest voters)
    pending: dict | None = None  # the next card, as the last vote's answer carried it

    def next_card(self) -> tuple[int, dict]:
        """The card the last vote's answer brought, else GET /api/pairs/next."""
        card, self.pending = self.pending, None
        if card is not None and "token" in card:
            return 200, card
        return self.visitor.card()

    def cast_vote(self, token: str, verdict: str, rng) -> int:
        status, answer = self.visitor.vote(token, verdict, self.shown_ms(rng))
        if status == 201:
            self.pending = answer.get("next")
        return status

    def shown_ms(self, rng: random.Random) -> int:
        return int(min(60_000, rng.lognormvariate(math.log(1500), 0.5)))

    def verdict(self, card: dict, ctx: Context) -> str:
        look = look_of(ctx.labels[card["query"]["image"]], ctx.labels[card["match"]["image"]])
        return "dope" if ctx.rng.random() < self.taste.p_dope(look) else "nope"

    def step(self, ctx: Context) -> bool:
        """One card and its vote; False when there is nothing left to do."""
        status, card = self.next_card()
        if status != 200 or "token" not in card:
            return False
        status = self.cast_vote(card["token"], self.verdict(card, ctx), ctx.rng)
        self.cast += status == 201
        return status in (201, 409, 400, 429)


class RandomClicker(Voter):
    def verdict(self, card, ctx):
        return ctx.rng.choice(("dope", "nope"))


class AlwaysDope(Voter):
    def verdict(self, card, ctx):
        return "dope"


class CookieClearer(AlwaysDope):
    """A script that clears its cookie before every vote: a new identity each time, from one address."""

    def step(self, ctx):
        self.visitor.clear()
        self.pending = None  # a new identity: the next card was someone else's
        return super().step(ctx)


@dataclass
class Attacker(Voter):
    """Pushes one model: dope on the cards it believes that model made, honest elsewhere (so gold cards and
    the crowd's verdicts do not give it away). How it guesses the model is the strategy."""

    target: int = 0
    honest: bool = False

    def guess(self, card: dict, ctx: Context) -> int | None:
        raise NotImplementedError

    def verdict(self, card, ctx):
        guess = self.guess(card, ctx)
        makers = ctx.makers.get((card["query"]["image"], card["match"]["image"]), set())
        if guess is not None:
            ctx.record(self.kind, guess, makers)
        if guess == self.target:
            return "dope"
        return Voter.verdict(self, card, ctx)


@dataclass
class BlindAttacker(Attacker):
    """The same policy with no information: a guess drawn at random among the active models."""

    def guess(self, card, ctx):
        return ctx.rng.choice(ctx.active)


@dataclass
class CountOracle(Attacker):
    """Reads the public leaderboard and guesses the active model with the fewest votes (the old balancing drew
    it almost every time)."""

    def guess(self, card, ctx):
        status, board = self.visitor.request("GET", "/api/leaderboard")
        rows = [r for r in board.get("rows", []) if r["variant_id"] in ctx.active] if status == 200 else []
        if not rows:
            return ctx.rng.choice(ctx.active)
        fewest = min(r["votes"] for r in rows)
        return ctx.rng.choice([r["variant_id"] for r in rows if r["votes"] == fewest])


@dataclass
class DeltaOracle(Attacker):
    """Votes, reads every active model's per-category rows, and guesses the model whose count moved; then undoes
    the vote and votes again knowing it."""

    def totals(self, ctx) -> dict[int, int]:
        out = {}
        for variant in ctx.active:
            status, body = self.visitor.request("GET", f"/api/leaderboard/{variant}/categories")
            out[variant] = sum(r["votes"] for r in body.get("rows", [])) if status == 200 else -1
        return out

    def step(self, ctx):
        status, card = self.next_card()
        if status != 200 or "token" not in card:
            return False
        before = self.totals(ctx)
        status = self.cast_vote(card["token"], Voter.verdict(self, card, ctx), ctx.rng)
        if status != 201:
            return status in (409, 400, 429)
        after = self.totals(ctx)
        moved = [v for v in ctx.active if after[v] > before[v] >= 0]
        guess = ctx.rng.choice(moved or ctx.active)
        makers = ctx.makers.get((card["query"]["image"], card["match"]["image"]), set())
        ctx.record(self.kind, guess, makers)
        status, again = self.visitor.undo()
        if status == 200 and "token" in again:
            verdict = "dope" if guess == self.target else Voter.verdict(self, again, ctx)
            self.cast_vote(again["token"], verdict, ctx.rng)
        self.cast += 1
        return True


@dataclass
class Signature(Attacker):
    """Votes dope on cards that look like its target's work and nope on the rest: for the colour histogram, the
    same colour in another category."""

    def verdict(self, card, ctx):
        look = look_of(ctx.labels[card["query"]["image"]], ctx.labels[card["match"]["image"]])
        return "dope" if look.colour and not look.category else "nope"


STRATEGIES = {
    "random": RandomClicker,
    "always-dope": AlwaysDope,
    "cookie-clearer": CookieClearer,
    "count-oracle": CountOracle,
    "delta-oracle": DeltaOracle,
    "signature": Signature,
    "blind": BlindAttacker,
}
