"""voting.leaderboard.leaderboard_rows() as votes grow: 10k, 100k, 1M, 10M votes on SQLite and PostgreSQL
(median of a few runs), and the plan of its aggregate query at the largest size. Votes are added in
steps to one seeded database; a step whose projected seeding time would exceed the budget is skipped.

    .venv/bin/python -m bench.leaderboard [--quick] [--backends sqlite,postgres] [--sizes ...] [--seed-budget 900]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    REPO,
    django_setup,
    emit,
    explain,
    fmt_seconds,
    heading,
    median_time,
    postgres_available,
    postgres_create,
    postgres_drop,
    scratch_dir,
    table,
)

PG_DATABASE = "vsearch_bench_leaderboard"
# A candidate rewrite of the per-variant totals, timed beside the real one: votes are counted per card first
# (an index-only pass over the (pair, dope) index), then spread over the variants that made each card.
PER_CARD_SQL = """
SELECT mp.variant_id, SUM(v.n), SUM(v.d)
FROM matching_matchpair mp
JOIN (SELECT pair_id, COUNT(*) AS n, SUM(CASE WHEN dope THEN 1 ELSE 0 END) AS d
      FROM voting_vote GROUP BY pair_id) v ON v.pair_id = mp.pair_id
GROUP BY mp.variant_id
"""


def per_card_totals() -> dict[int, tuple[int, int]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(PER_CARD_SQL)
        return {int(v): (int(n), int(d)) for v, n, d in cursor.fetchall()}


def run_backend(args) -> None:
    backend = args.backend
    data_dir = scratch_dir(f"leaderboard-{backend}")
    database_url = postgres_create(PG_DATABASE) if backend == "postgres" else None
    try:
        django_setup(data_dir=data_dir, database_url=database_url)
        from django.conf import settings
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from bench import seed
        from voting.leaderboard import leaderboard_rows

        seed.migrate()
        world = seed.World.for_match_pairs(args.match_pairs)
        t0 = time.perf_counter()
        seed.seed_catalog(world, Path(settings.MEDIA_ROOT))
        catalog_s = time.perf_counter() - t0
        heading(
            f"{backend}: leaderboard_rows() over {world.n_match_pairs:,} match pairs "
            f"({world.n_pairs:,} cards, 4 variants; seeded in {catalog_s:.1f} s)"
        )

        rows, notes = [], []
        done, spent, rate = 0, 0.0, None
        for size in args.sizes:
            if rate is not None and spent + (size - done) / rate > args.seed_budget:
                notes.append(
                    f"- {size:,} votes skipped: seeding would take about {(size - done) / rate:.0f} s more, "
                    f"past the {args.seed_budget:.0f} s budget (--seed-budget)."
                )
                continue
            seconds = seed.seed_votes(world, done, size)
            spent += seconds
            rate = (size - done) / seconds
            done = size
            analyze_s = None
            if backend == "postgres":
                t0 = time.perf_counter()
                seed.analyze()  # autovacuum's job on a live database
                analyze_s = time.perf_counter() - t0
            leaderboard_rows()  # warm the page cache once, as a running site would be
            median, runs = median_time(leaderboard_rows, runs=args.runs, budget=args.run_budget)
            per_card = per_card_totals()
            same = per_card == {r.variant_id: (r.votes, r.approvals) for r in leaderboard_rows() if r.votes}
            alt, _ = median_time(per_card_totals, runs=args.runs, budget=args.run_budget)
            rows.append(
                (
                    size,
                    fmt_seconds(seconds),
                    fmt_seconds(analyze_s) if analyze_s else "—",
                    fmt_seconds(median),
                    runs,
                    fmt_seconds(alt),
                    "yes" if same else "**no**",
                )
            )
            emit(f"<!-- {backend} {size:,} votes: seeded {seconds:.1f} s, median {median:.3f} s -->")

        emit("")
        emit(
            table(
                [
                    "votes",
                    "seeding this step",
                    "ANALYZE",
                    "leaderboard_rows() median",
                    "runs",
                    "per-card aggregate (candidate) median",
                    "same totals",
                ],
                rows,
            )
        )
        if notes:
            emit("\n" + "\n".join(notes))
        with CaptureQueriesContext(connection) as ctx:
            leaderboard_rows()
        slowest = max(ctx.captured_queries, key=lambda q: float(q["time"]))
        emit(f"\nPlan of its slowest query at {done:,} votes ({float(slowest['time']) * 1000:.0f} ms when captured):\n")
        emit("```\n" + slowest["sql"] + "\n\n" + explain(slowest["sql"]) + "\n```")
        emit(f"\nPlan of the candidate per-card aggregate at {done:,} votes:\n")
        emit("```\n" + PER_CARD_SQL.strip() + "\n\n" + explain(PER_CARD_SQL) + "\n```")
    finally:
        from django.db import connections

        connections.close_all()
        if database_url:
            postgres_drop(PG_DATABASE)
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="up to 1M votes over 100k match pairs")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--sizes", help="vote counts, ascending (default 10000,100000,1000000,10000000; quick to 1M)")
    parser.add_argument("--match-pairs", type=int, help="MatchPair rows (default 1,000,000; quick 100,000)")
    parser.add_argument("--runs", type=int, help="timed runs per size, median reported (default 5; quick 3)")
    parser.add_argument("--run-budget", type=float, default=60.0, help="stop timing a size after this many seconds")
    parser.add_argument(
        "--seed-budget", type=float, help="seconds of vote seeding per backend (default 900; quick 120)"
    )
    parser.add_argument("--backend", help=argparse.SUPPRESS)  # internal: run one backend in this process
    args = parser.parse_args()
    q = args.quick
    args.sizes = [
        int(s) for s in (args.sizes or ("10000,100000,1000000" if q else "10000,100000,1000000,10000000")).split(",")
    ]
    args.match_pairs = args.match_pairs or (100_000 if q else 1_000_000)
    args.runs = args.runs or (3 if q else 5)
    args.seed_budget = args.seed_budget or (120.0 if q else 900.0)
    if args.sizes != sorted(args.sizes):
        parser.error("--sizes must ascend: votes are added in steps")
    if args.backend:
        run_backend(args)
        return
    for backend in args.backends.split(","):
        if backend == "postgres" and (why := postgres_available()):
            heading("postgres")
            emit(f"Skipped: PostgreSQL at 127.0.0.1:5432 is not reachable ({why}).")
            continue
        forward = [
            "--sizes",
            ",".join(map(str, args.sizes)),
            "--match-pairs",
            str(args.match_pairs),
            "--runs",
            str(args.runs),
            "--run-budget",
            str(args.run_budget),
            "--seed-budget",
            str(args.seed_budget),
        ]
        subprocess.run(
            [sys.executable, "-m", "bench.leaderboard", *forward, "--backend", backend], cwd=REPO, check=True
        )


if __name__ == "__main__":
    main()
