"""A simulated crowd voting through the real API, and what it shows (docs/EVALUATION.md).

    .venv/bin/python -m bench.crowd blind [--seeds 0,1,2] [--honest 120] [--votes-per-voter 40] [--quick]

Each run is a fresh copy of the demo world (600 items, the ten default models, 200 gold cards) behind gunicorn on
loopback, and a crowd of honest voters (tastes drawn from a population) plus, in some runs, attackers with 10% of
the votes. Every run is bounded in votes and in time. Results are medians over seeds, never one seed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

from bench.common import REPO, emit, heading, scratch_dir, table
from bench.crowd import crowd
from bench.crowd.run import ORDINALS, Config, Result, run_isolated

ATTACKS = ("random", "always-dope", "cookie-clearer", "count-oracle", "delta-oracle", "signature", "blind")
EVALUATION = REPO / "docs" / "EVALUATION.md"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ranks(estimate: dict[int, float | None]) -> dict[int, int]:
    order = sorted((v for v in estimate if estimate[v] is not None), key=lambda v: -estimate[v])
    return {v: i + 1 for i, v in enumerate(order)}


def naming(result: Result) -> tuple[float, float, float, int] | None:
    """(the attacker's accuracy at naming a card's model, a uniform random guess's, a guess drawn by the serving
    design's own shares, cards guessed)."""
    guesses = [(g, makers, chance) for kind, g, makers, chance in result.guesses if kind == result.config.attack]
    if not guesses:
        return None
    hit = sum(g in makers for g, makers, _ in guesses) / len(guesses)
    active = set(result.active)
    uniform = sum(len(makers & active) / len(active) for _, makers, _ in guesses) / len(guesses)
    by_design = [c for _, _, c in guesses if c is not None]
    design = sum(by_design) / len(by_design) if by_design else uniform
    return hit, uniform, design, len(guesses)


def target_se(result: Result) -> float | None:
    row = next((r for r in result.leaderboard if r["variant_id"] == result.target), None)
    if not row or not row["votes"]:
        return None
    p = row["approval_rate"]
    return (p * (1 - p) / row["votes"]) ** 0.5


def blind_suite(args) -> str:
    base = Config(
        honest=args.honest,
        votes_per_voter=args.votes_per_voter,
        max_seconds=args.max_seconds,
        settings={"VSEARCH_DESIGN": args.design},
    )
    runs: dict[str, list[Result]] = {"none": []}
    for attack in ATTACKS:
        runs[attack] = []
    runs["exclusion"] = []
    started = time.monotonic()
    for seed in args.seeds:
        for attack in ("none", *ATTACKS):
            config = replace(base, seed=seed, attack=attack, target="third")
            emit(f"seed {seed}: {attack} ...")
            runs[attack].append(run_isolated(config))
            emit(f"  {runs[attack][-1].votes} votes in {runs[attack][-1].seconds:.0f} s")
        # Detection: enough random clickers and always-dope voters with 150 votes each to measure rates.
        config = replace(base, seed=seed, attack="random", attackers=20, attacker_votes=150, max_votes_per_voter=150)
        config = replace(config, settings={**base.settings, "VSEARCH_QUALIFY_GOLD": "2"})
        emit(f"seed {seed}: detection run ...")
        runs["exclusion"].append(run_isolated(config))
    minutes = (time.monotonic() - started) / 60
    return blind_report(runs, args, minutes)


def blind_report(runs: dict[str, list[Result]], args, minutes: float) -> str:
    baseline = runs["none"]
    first = baseline[0]
    names = first.names
    out = []
    out.append(
        f"Measured with `.venv/bin/python -m bench.crowd blind --design {args.design} "
        f"--seeds {','.join(map(str, args.seeds))}` ({len(args.seeds)} seeds, the `{args.design}` serving design, "
        f"{args.honest} honest voters of about {args.votes_per_voter:.0f} votes each per run, {minutes:.0f} minutes "
        "in all). Medians over seeds."
    )

    heading("True approvals and the leaderboard without attackers")
    truth = first.truth
    est = {v: median([r.estimate.get(v) for r in baseline]) for v in first.active}
    rows = [
        (names[v], truth[v], est[v], median([ranks(r.estimate).get(v) for r in baseline]))
        for v in sorted(first.active, key=lambda v: -truth[v])
    ]
    out.append("#### True approvals and the leaderboard without attackers\n")
    out.append(table(["model", "true approval", "estimate (median)", "rank (median)"], rows))

    out.append("\n#### Naming a card's model from public data\n")
    rows = []
    for attack in ("count-oracle", "delta-oracle", "blind"):
        scores = [naming(r) for r in runs[attack] if naming(r)]
        if scores:
            hit, uniform, by_design = (median([s[i] for s in scores]) for i in range(3))
            rows.append((attack, hit, uniform, by_design, hit - max(uniform, by_design), sum(s[3] for s in scores)))
    out.append(
        table(
            ["attacker", "named right", "uniform guess", "guess by the design's shares", "advantage", "cards guessed"],
            rows,
        )
    )
    out.append(
        "\nA card made by several models counts as named right if the guess is any of them. Uniform guess: the same "
        "rule for a model drawn uniformly from the active ones; guess by the design's shares: for a model drawn by "
        "the serving design's shares of the moment (what an attacker who knew the design, but nothing about the "
        "card, would reach; the active design draws the leading pair most). Advantage: named right minus the "
        "better of the two. Target: at most 0.10."
    )

    out.append("\n#### Oracle-guided attacker against the same attacker voting blind\n")
    rows = []
    for seed_runs in zip(runs["none"], runs["count-oracle"], runs["delta-oracle"], runs["blind"], strict=True):
        none, count, delta, blind = seed_runs
        t = blind.target
        shift = {name: (r.estimate.get(t) or 0) - (none.estimate.get(t) or 0) for name, r in
                 (("count", count), ("delta", delta), ("blind", blind))}  # fmt: skip
        se = target_se(blind)
        bound = 2**0.5 * se if se is not None else 0.0
        close = abs(shift["count"] - shift["blind"]) <= bound and abs(shift["delta"] - shift["blind"]) <= bound
        rows.append((none.config.seed, names[t], shift["blind"], shift["count"], shift["delta"], se, close))
    out.append(
        table(["seed", "target", "blind shift", "count-oracle shift", "delta-oracle shift", "SE", "within SE"], rows)
    )
    out.append(
        "\nShift: the target's estimate minus the same seed's estimate without attackers. Within SE: both oracle "
        "shifts differ from the blind shift by at most the standard error of that difference (√2 × SE)."
    )
    gains = {name: [r[i] - r[2] for r in rows] for name, i in (("count-oracle", 3), ("delta-oracle", 4))}
    if len(rows) > 1:
        parts = []
        for name, values in gains.items():
            mean, se = statistics.mean(values), statistics.stdev(values) / len(values) ** 0.5
            verdict = "within one SE" if abs(mean) <= se else ("a gain" if mean > 0 else "a loss") + " beyond one SE"
            parts.append(f"{name} {mean:+.3f} ± {se:.3f} ({verdict})")
        out.append(
            "\nGain over the blind attacker, mean over seeds ± its standard error from the seeds' scatter (each "
            "seed's runs differ in which voter meets which card, so a run's own SE understates how far two runs "
            "differ): " + "; ".join(parts) + "."
        )

    out.append("\n#### Ranks with 10% attackers of each strategy\n")
    order = sorted(first.active, key=lambda v: -truth[v])
    header = ["model", "true rank", "no attack", *ATTACKS]
    rows = []
    for i, v in enumerate(order, start=1):
        cells = [names[v], i, median([ranks(r.estimate).get(v) for r in baseline])]
        cells += [median([ranks(r.estimate).get(v) for r in runs[a]]) for a in ATTACKS]
        rows.append(cells)
    out.append(table(header, rows))
    target_name = names[runs["blind"][0].target]
    out.append(f"\nEvery attacker pushed {target_name} (third by true approval).")
    rows = []
    for attack in ATTACKS:
        counted = median([r.attack_counted for r in runs[attack]])
        rows.append((attack, counted))
    out.append("\nShare of each attacker's votes that counted for a model at the end of the run:\n")
    out.append(table(["attacker", "votes counted"], rows))

    out.append("\n#### Who is excluded\n")
    rows = []
    honest = [v for r in runs["none"] + [x for a in ATTACKS for x in runs[a]] for v in r.voters if v["honest"]]
    good = [v for v in honest if (v["gold_accuracy"] or 0) >= 0.85]
    rows.append(("honest voters", len(honest), sum(v["excluded"] for v in honest) / len(honest)))
    rows.append(("honest, gold accuracy ≥ 0.85", len(good), sum(v["excluded"] for v in good) / max(1, len(good))))
    clickers = [v for r in runs["exclusion"] for v in r.voters if v["kind"] == "random"]
    for limit in (40, 100, 150):
        share = sum(v["excluded_after"] is not None and v["excluded_after"] <= limit for v in clickers)
        rows.append((f"random clickers, by vote {limit}", len(clickers), share / max(1, len(clickers))))
    for attack in ("always-dope", "signature", "count-oracle", "delta-oracle"):
        voters = [v for r in runs[attack] for v in r.voters if v["kind"] == attack]
        rows.append((f"{attack} voters", len(voters), sum(v["excluded"] for v in voters) / max(1, len(voters))))
    out.append(table(["voters", "n", "excluded"], rows))
    out.append(
        "\nTargets: random clickers ≥ 50% excluded by their 40th vote and ≥ 90% by their 100th; honest voters with "
        "gold accuracy ≥ 0.85: ≤ 5% ever excluded. The detection runs give 20 random clickers 150 votes each "
        "beside the honest crowd, reviewed every 100 votes."
    )

    probes = {path: status for r in baseline for path, status in r.media_probe.items()}
    served = sum(status == 200 for status in probes.values())
    out.append(f"\n#### Build files\n\n{len(probes)} feature and index files probed at their old /media/ URLs: "
               f"{served} served, {len(probes) - served} answered {sorted(set(probes.values()))}.")  # fmt: skip
    text = "\n".join(out)
    emit(text)
    return text


# ---------------------------------------------------------------------------------------- deciding (issue 14)

FLAT = crowd.TastePopulation(
    base=(0.2, 0.0), category=(0.0, 0.0), colour=(0.0, 0.0), pattern=(0.0, 0.0), slip=(0.0, 0.0)
)
# Colour matters about as much as category: the colour histogram closes in on the fine-tuned network.
COLOURFUL = crowd.TastePopulation(category=(2.0, 0.7), colour=(1.8, 0.5))
HAMMING_FT = "finetuned/hidden · finetuned-resnet18 · hamming"
SCENARIOS = {
    # name: (population, models left out of the rotation, vote budget)
    "clear winner": (COLOURFUL, [HAMMING_FT], 15_000),
    "close race": (crowd.TastePopulation(), [], 40_000),
    "all equal": (FLAT, [], 20_000),
}
# The previous issue's strategies as they reach the design: random clickers, always-dope voters, the signature
# voter (dope on same colour, other category: the colour histogram's look), and the oracles, which blindness turns
# into a blind push (the API runs show they name a card's model no better than a guess). The last row is the
# worst case blindness exists to prevent: attackers who know which cards are the runner-up's.
ATTACKS_14 = {"none": None, "10% random": ("random", 0.1), "10% always dope": ("always-dope", 0.1),
              "10% signature": ("signature", 0.1), "10% oracles, blind (push the runner-up)": ("blind-push", 0.1),
              "10% knowing the runner-up's cards (blindness broken)": ("push", 0.1)}  # fmt: skip


def load_cards():
    import json

    from bench.crowd.design_sim import Cards
    from bench.crowd.world import world_cards

    data = json.loads(world_cards(600, 0).read_text())
    looks = {int(k): crowd.Look(*v["look"]) for k, v in data["cards"].items()}
    makers = {int(k): set(v["makers"]) for k, v in data["cards"].items()}
    return Cards.from_world(looks, makers)


def decide_suite(args) -> str:
    import os

    import django
    import numpy as np

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vsearch_site.settings")
    os.environ.setdefault("VSEARCH_DATA_DIR", str(scratch_dir("decide")))
    django.setup()
    from bench.crowd.design_sim import Attack, Crowd, simulate

    every = load_cards()
    out = [
        f"Measured with `.venv/bin/python -m bench.crowd decide --seeds {args.decide_seeds}` "
        f"({args.decide_seeds} seeds per cell, each a fresh crowd of {args.crowd_size} voters with tastes drawn from "
        "the scenario's population). Medians over seeds; '>' where more than half the runs had not decided within "
        "the budget."
    ]
    bias_rows, decide_rows, equal_rows = [], [], []
    started = time.monotonic()
    for scenario, (population, left_out, budget) in SCENARIOS.items():
        cards = every.only([n for n in every.names if n not in left_out])
        for attack_name, attack in ATTACKS_14.items():
            if attack_name != "none" and args.quick:
                continue
            cells = {}
            for design in ("balanced", "active"):
                outcomes = []
                for seed in range(args.decide_seeds):
                    rng = np.random.default_rng([seed, 14])
                    crowd_ = Crowd.draw(cards, population, args.crowd_size, rng)
                    truth = design_truth(cards, crowd_)
                    runner_up = int(np.argsort(-truth)[1])
                    outcomes.append(
                        simulate(cards, crowd_, design=design, budget=budget, rng=rng,
                                 attack=Attack(*attack) if attack else None, target=runner_up)
                    )  # fmt: skip
                cells[design] = outcomes
            if scenario == "all equal":
                falsely = {d: sum(o.wrong_decided is not None or o.first_decided is not None for o in cells[d])
                           for d in cells}  # fmt: skip
                equal_rows.append((attack_name, *(falsely[d] / len(cells[d]) for d in ("balanced", "active"))))
            else:
                first = {d: censored_median([o.first_decided for o in cells[d]], budget) for d in cells}
                settled = {d: censored_median([o.settled for o in cells[d]], budget) for d in cells}
                wrong = {d: sum(wrong_first(o) for o in cells[d]) / len(cells[d]) for d in cells}
                lead = np.median([np.sort(o.truth)[-1] - np.sort(o.truth)[-2] for o in cells["balanced"]])
                decide_rows.append(
                    (scenario, attack_name, round(float(lead), 3), settled["balanced"][0], settled["active"][0],
                     ratio_text(settled, budget), first["balanced"][0], first["active"][0], wrong["balanced"],
                     wrong["active"])
                )  # fmt: skip
            if attack_name == "none":
                for design, outcomes in cells.items():
                    errors = np.array([o.estimate - o.truth for o in outcomes])
                    naive = np.array([o.naive - o.truth for o in outcomes])
                    bias = np.nanmean(errors, axis=0)
                    se = np.nanstd(errors, axis=0) / np.sqrt(len(outcomes))
                    worst = int(np.nanargmax(np.abs(bias)))
                    bias_rows.append(
                        (scenario, design, float(np.nanmax(np.abs(bias))), cards.names[worst], float(se[worst]),
                         float(np.nanmax(np.abs(np.nanmean(naive, axis=0)))))
                    )  # fmt: skip
        emit(f"{scenario}: done ({(time.monotonic() - started) / 60:.1f} min)")
    out.append("\n### Bias of the leaderboard's estimate\n")
    out.append(
        table(
            ["scenario", "design", "largest |mean error|", "model", "its SE", "the old credited estimate's"], bias_rows
        )  # fmt: skip
    )
    out.append(
        "\nMean over seeds of estimate minus true approval, for the model where it is largest (target: at most 0.005 "
        "for every model). SE: the standard error of that mean. The last column is the same figure for the old "
        "estimate (every vote credited to every model that made the card, unweighted) on the same votes."
    )
    out.append("\n### Votes until the true best has P(best) >= 0.95\n")
    out.append(
        table(
            [
                "scenario",
                "adversaries",
                "true lead",
                "settled (balanced)",
                "settled (active)",
                "active / balanced",
                "first reached (balanced)",
                "first reached (active)",
                "wrong model decided first (balanced)",
                "(active)",
            ],
            decide_rows,
        )  # fmt: skip
    )
    out.append(
        "\nSettled: the votes from which the true best kept P(best) >= 0.95 to the end of the budget (the decision "
        "a reader of the leaderboard can act on). First reached: the first look (every 100 votes) at which it "
        "reached 0.95; with a look every 100 votes, early luck crosses the line and falls back, so this figure is "
        "mostly noise and is shown for completeness. Wrong model decided first: the share of runs in which another "
        "model reached 0.95 before the true best did."
    )
    out.append("\n### All models equal: how often any model is declared decided\n")
    out.append(table(["adversaries", "balanced", "active"], equal_rows))
    out.append(f"\n({(time.monotonic() - started) / 60:.1f} minutes.)")
    text = "\n".join(out)
    emit(text)
    return text


def wrong_first(outcome) -> bool:
    """Another model reached P(best) >= 0.95 before the true best did (or the true best never did)."""
    if outcome.wrong_decided is None:
        return False
    return outcome.first_decided is None or outcome.wrong_decided < outcome.first_decided


def design_truth(cards, crowd_):
    from bench.crowd.design_sim import truth_of

    return truth_of(cards, crowd_)


def ratio_text(settled: dict, budget: int) -> str:
    """active / balanced of the settled medians; a bound when balanced did not settle within the budget."""
    (_, active, active_censored), (_, balanced, balanced_censored) = settled["active"], settled["balanced"]
    if active_censored:
        return "n/a"
    if balanced_censored:
        return f"< {active / budget:.2f}"
    return f"{active / balanced:.2f}"


def censored_median(values, budget):
    """(text, median or None, censored?) of votes-to-decide where None means not within the budget."""
    ordered = sorted(v if v is not None else float("inf") for v in values)
    middle = ordered[len(ordered) // 2]
    if middle == float("inf"):
        return f">{budget:,}", None, True
    return f"{int(middle):,}", middle, False


def write_section(name: str, text: str) -> None:
    """Replace (or add) the section between the markers of `name` in docs/EVALUATION.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    doc = EVALUATION.read_text() if EVALUATION.exists() else ""
    block = f"{start}\n{text}\n{end}"
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    EVALUATION.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", choices=["blind", "decide"])
    parser.add_argument("--decide-seeds", type=int, default=40, help="decide: seeds per cell")
    parser.add_argument("--crowd-size", type=int, default=200, help="decide: voters per simulated crowd")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated")
    parser.add_argument("--honest", type=int, default=120)
    parser.add_argument("--votes-per-voter", type=float, default=40.0)
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="per run")
    parser.add_argument("--quick", action="store_true", help="one seed, 40 honest voters: a smoke run")
    parser.add_argument("--design", choices=["active", "balanced"], default="active", help="blind: serving design")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/EVALUATION.md alone")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        args.seeds, args.honest = args.seeds[:1], 40
    text = blind_suite(args) if args.suite == "blind" else decide_suite(args)
    if not args.no_write:
        write_section(f"blind-{args.design}" if args.suite == "blind" else args.suite, text)


if __name__ == "__main__":
    main()

__all__ = ["ORDINALS", "Path"]
