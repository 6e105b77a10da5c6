"""One simulated run: a fresh copy of the world, the real server, a crowd voting through the API, and what came
of it (estimates, truths, exclusions, the attackers' guesses). Bounded in votes and in time."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import scratch_dir
from bench.crowd import crowd
from bench.crowd.client import Visitor
from bench.crowd.world import Server, build_world, fresh_copy


@dataclass
class Config:
    """Everything a run depends on. Tastes, attackers and thresholds are parameters, not constants."""

    seed: int = 0
    items: int = 600
    world_seed: int = 0
    honest: int = 120  # honest voters
    votes_per_voter: float = 40.0  # mean budget (geometric, at least `min_votes`)
    min_votes: int = 10
    max_votes_per_voter: int = 400
    attack: str = "none"  # a key of crowd.STRATEGIES, or "none"
    attack_share: float = 0.10  # of all votes
    attackers: int = 6  # how many attacker identities share that budget
    attacker_votes: int | None = None  # instead: this many votes for each attacker (the detection runs)
    target: str = "third"  # which model attackers push: "first", "second", "third"... by true approval, or an id
    population: crowd.TastePopulation = field(default_factory=crowd.TastePopulation)
    rotation: list[str] | None = None  # names of the variants to keep active (default: all ready)
    max_votes: int = 20_000
    max_seconds: float = 1800.0
    review_every: int = 100  # votes between two voter reviews (the production review runs every minute)
    probe_every: int = 0  # votes between two looks at the staff leaderboard's P(best) (0: only at the end)
    shares_every: int = 50  # votes between two looks at the design's shares (to score guesses against them)
    settings: dict[str, str] = field(default_factory=dict)  # VSEARCH_* overrides for the server


@dataclass
class Result:
    config: Config
    votes: int
    seconds: float
    names: dict[int, str]
    active: list[int]
    truth: dict[int, float]  # the crowd's true approval of each model (uniform over its match pairs)
    estimate: dict[int, float | None]  # the leaderboard's approval, as staff see it at the end
    leaderboard: list[dict]
    voters: list[dict]  # per voter: kind, honest, cast, excluded, excluded_after, gold_accuracy
    guesses: list[tuple[str, int, set[int], float | None]]  # kind, guess, makers, the design's chance
    target: int | None
    media_probe: dict[str, int] = field(default_factory=dict)
    attack_counted: float | None = None  # share of the attackers' votes that counted for a model
    probes: list[tuple[int, dict[int, float]]] = field(default_factory=list)  # (votes, P(best) per model)


def _django(data_dir: Path) -> None:
    from bench.common import django_setup

    django_setup(data_dir=data_dir)


def run_isolated(config: Config) -> Result:
    """`run` in a process of its own (Django's settings, and so the scratch data directory, are set once per
    process)."""
    import json
    import subprocess
    import sys
    import tempfile

    from bench.common import REPO

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "config.json", Path(folder) / "result.json"
        source.write_text(json.dumps(config_to_json(config)))
        subprocess.run([sys.executable, "-m", "bench.crowd.run", str(source), str(target)], cwd=REPO, check=True)
        return result_from_json(json.loads(target.read_text()))


def config_to_json(config: Config) -> dict:
    from dataclasses import asdict

    return asdict(config)


def config_from_json(data: dict) -> Config:
    data = dict(data)
    data["population"] = crowd.TastePopulation(**{k: tuple(v) for k, v in data["population"].items()})
    return Config(**data)


def result_to_json(result: Result) -> dict:
    return {
        "config": config_to_json(result.config),
        "votes": result.votes,
        "seconds": result.seconds,
        "names": result.names,
        "active": result.active,
        "truth": result.truth,
        "estimate": result.estimate,
        "leaderboard": result.leaderboard,
        "voters": result.voters,
        "guesses": [(kind, guess, sorted(makers), chance) for kind, guess, makers, chance in result.guesses],
        "target": result.target,
        "media_probe": result.media_probe,
        "attack_counted": result.attack_counted,
        "probes": result.probes,
    }


def result_from_json(data: dict) -> Result:
    def ints(d):
        return {int(k): v for k, v in d.items()}

    return Result(
        config=config_from_json(data["config"]),
        votes=data["votes"],
        seconds=data["seconds"],
        names=ints(data["names"]),
        active=data["active"],
        truth=ints(data["truth"]),
        estimate=ints(data["estimate"]),
        leaderboard=data["leaderboard"],
        voters=data["voters"],
        guesses=[(kind, guess, set(makers), chance) for kind, guess, makers, chance in data["guesses"]],
        target=data["target"],
        media_probe=data["media_probe"],
        attack_counted=data["attack_counted"],
        probes=[(n, {int(k): v for k, v in best.items()}) for n, best in data.get("probes", [])],
    )


ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]


def run(config: Config) -> Result:
    world = build_world(config.items, config.world_seed)
    scratch = fresh_copy(world, scratch_dir(f"crowd-{config.seed}"))
    settings = {"VSEARCH_PUBLIC_SNAPSHOT_SECONDS": "20", "VSEARCH_VOTE_RATE": "100000/min",
                "VSEARCH_PAIR_RATE": "100000/min", "VSEARCH_LEADERBOARD_RATE": "100000/min",
                **config.settings}  # fmt: skip
    import os

    os.environ.update(settings)  # the harness reads the same settings as the server
    _django(scratch)
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from matching.models import Item, MatchPair, Variant
    from matching.storage import media_url
    from voting.models import GoldCard, Voter

    call_command("migrate", verbosity=0)
    if config.rotation is not None:
        Variant.objects.exclude(name__in=config.rotation).update(rotation=Variant.Rotation.PAUSED)
    staff = User.objects.create_user("crowd-staff", is_staff=True)
    token = Token.objects.create(user=staff).key
    labels = {
        media_url(image): {"category": category, **(attributes or {})}
        for image, category, attributes in Item.everything.values_list("image", "category", "attributes")
    }
    active = list(Variant.objects.filter(status="ready", rotation="active").order_by("id").values_list("id", flat=True))
    names = dict(Variant.objects.values_list("id", "name"))
    makers: dict[tuple[str, str], set[int]] = {}
    looks_by_variant: dict[int, list[crowd.Look]] = {v: [] for v in active}
    for variant_id, q_image, q_cat, q_attr, m_image, m_cat, m_attr in MatchPair.objects.filter(
        variant_id__in=active
    ).values_list(
        "variant_id",
        "pair__query_item__image",
        "pair__query_item__category",
        "pair__query_item__attributes",
        "pair__match_item__image",
        "pair__match_item__category",
        "pair__match_item__attributes",
    ):
        makers.setdefault((media_url(q_image), media_url(m_image)), set()).add(variant_id)
        looks_by_variant[variant_id].append(
            crowd.look_of({"category": q_cat, **(q_attr or {})}, {"category": m_cat, **(m_attr or {})})
        )
    approval = {}
    for variant_id, looks in looks_by_variant.items():
        cache: dict[crowd.Look, float] = {}
        for look in looks:
            if look not in cache:
                cache[look] = config.population.mean_p_dope(look)
        approval[variant_id] = sum(cache[look] for look in looks) / len(looks)

    gold_looks = []
    for g in GoldCard.objects.select_related("pair__query_item", "pair__match_item"):
        query, match = labels[media_url(g.pair.query_item.image)], labels[media_url(g.pair.match_item.image)]
        gold_looks.append((g.expected, crowd.look_of(query, match)))
    rng = random.Random(config.seed)
    ranked = sorted(active, key=lambda v: -approval[v])
    target = None
    if config.attack != "none":
        target = ranked[ORDINALS.index(config.target)] if config.target in ORDINALS else int(config.target)

    with Server(scratch, settings=settings) as server:
        voters = _crowd(config, rng, server.port, target, gold_looks)
        ctx = crowd.Context(rng=rng, labels=labels, makers=makers, active=active)
        votes, started, since_review, since_probe, since_shares = 0, time.monotonic(), 0, 0, 0
        from voting.services import voters_review

        staff_view = Visitor(server.port, "192.0.2.251", staff_token=token)
        probes = []

        def look_at_shares() -> None:
            _, live = staff_view.request("GET", "/api/leaderboard")
            ctx.shares = {r["variant_id"]: r["draw_share"] for r in live.get("rows", []) if r.get("draw_share")}

        look_at_shares()

        excluded_after: dict[str, int] = {}
        by_uuid: dict[str, crowd.Voter] = {}
        while votes < config.max_votes and time.monotonic() - started < config.max_seconds:
            live = [v for v in voters if v.cast < v.budget]
            if not live:
                break
            voter = rng.choices(live, weights=[v.budget - v.cast for v in live])[0]
            before = voter.cast
            if not voter.step(ctx):
                voter.budget = voter.cast  # nothing left for it
            votes += voter.cast - before
            since_review += voter.cast - before
            since_probe += voter.cast - before
            since_shares += voter.cast - before
            if since_shares >= config.shares_every:
                since_shares = 0
                look_at_shares()
            if since_review >= config.review_every:
                since_review = 0
                _review_and_record(voters_review, voters, by_uuid, excluded_after, Voter)
            if config.probe_every and since_probe >= config.probe_every:
                since_probe = 0
                _, live = staff_view.request("GET", "/api/leaderboard")
                probes.append(
                    (votes, {r["variant_id"]: r["p_best"] for r in live.get("rows", []) if r["p_best"] is not None})
                )
        _review_and_record(voters_review, voters, by_uuid, excluded_after, Voter)
        seconds = time.monotonic() - started
        probe = {}
        from matching.models import FeatureSet

        visitor = Visitor(server.port, "192.0.2.250")
        for fs in FeatureSet.objects.exclude(path=""):
            probe[f"/media/{fs.path}"] = visitor.request("GET", f"/media/{fs.path}")[0]
        for variant in Variant.objects.exclude(index_path=""):
            probe[f"/media/{variant.index_path}"] = visitor.request("GET", f"/media/{variant.index_path}")[0]
        status, board = staff_view.request("GET", "/api/leaderboard")
    rows = board.get("rows", [])
    estimate = {r["variant_id"]: r["approval_rate"] for r in rows}
    rows_by_uuid = {str(u): (e, c) for u, e, c in Voter.objects.values_list("uuid", "excluded", "counted")}
    summary = []
    for v in voters:
        uuid = _uuid_of(v)
        excluded, counted = rows_by_uuid.get(uuid, (False, False))
        summary.append(
            {
                "name": v.name,
                "kind": v.kind,
                "honest": v.honest,
                "cast": v.cast,
                "excluded": excluded,
                "counted": counted,
                "excluded_after": excluded_after.get(uuid),
                "gold_accuracy": v.gold_accuracy,
            }
        )
    from voting.models import Vote

    attack_votes = Vote.objects.filter(ip__startswith="172.16.", gold__isnull=True)
    counted = attack_votes.filter(voter__counted=True).count() / attack_votes.count() if attack_votes.exists() else None
    return Result(
        config,
        votes,
        seconds,
        names,
        active,
        approval,
        estimate,
        rows,
        summary,
        ctx.log,
        target,
        probe,
        counted,
        probes,
    )


def _uuid_of(voter: crowd.Voter) -> str:
    raw = voter.visitor.cookies.get("vsearch_voter", "")
    if not raw:
        return ""
    import uuid as uuid_module

    value = raw.strip('"').split(":", 1)[0]  # signed cookie: "value:signature..."
    tail = value.rpartition(".")[2]
    try:
        return str(uuid_module.UUID(tail))
    except ValueError:
        return ""


def _review_and_record(review, voters, by_uuid, excluded_after, Voter) -> None:
    review()
    excluded = set(str(u) for u in Voter.objects.filter(excluded=True).values_list("uuid", flat=True))
    for voter in voters:
        uuid = _uuid_of(voter)
        if uuid and uuid in excluded and uuid not in excluded_after:
            excluded_after[uuid] = voter.cast


def _crowd(config: Config, rng: random.Random, port: int, target: int | None, gold_looks) -> list[crowd.Voter]:
    def budget() -> int:
        n = int(rng.expovariate(1 / max(1.0, config.votes_per_voter - config.min_votes))) + config.min_votes
        return min(n, config.max_votes_per_voter)

    voters: list[crowd.Voter] = []
    for i in range(config.honest):
        taste = config.population.draw(rng)
        accuracy = None
        if gold_looks:
            accuracy = sum(
                taste.p_dope(look) if expected else 1 - taste.p_dope(look) for expected, look in gold_looks
            ) / len(gold_looks)
        visitor = Visitor(port, f"10.{i // 250}.{i % 250}.{rng.randrange(1, 250)}")
        voters.append(crowd.Voter(f"honest-{i}", "honest", visitor, budget(), taste=taste, gold_accuracy=accuracy))
    if config.attack != "none":
        honest_votes = sum(v.budget for v in voters)
        total = int(honest_votes * config.attack_share / (1 - config.attack_share))
        cls = crowd.STRATEGIES[config.attack]
        n = 1 if config.attack == "cookie-clearer" else config.attackers
        for i in range(n):
            visitor = Visitor(port, f"172.16.{i}.{rng.randrange(1, 250)}")
            budget = config.attacker_votes if config.attacker_votes is not None else total // n
            kwargs = dict(name=f"{config.attack}-{i}", kind=config.attack, visitor=visitor, budget=budget)
            if issubclass(cls, crowd.Attacker):
                voter = cls(**kwargs, taste=config.population.draw(rng), target=target)
            else:
                voter = cls(**kwargs, honest=False)
            voters.append(voter)
    return voters


if __name__ == "__main__":
    import json
    import sys

    result = run(config_from_json(json.loads(Path(sys.argv[1]).read_text())))
    Path(sys.argv[2]).write_text(json.dumps(result_to_json(result)))
