"""The leaderboard as votes grow, read from the tallies maintained as votes come (voting.ledger): 10k, 100k, 1M, 10M
votes on SQLite and PostgreSQL. At each size: the full recount (`tallies --rebuild`, what a migration or a repair
costs once), leaderboard_rows() once the votes are folded (median of a few runs), the same with 1,000 votes not yet
folded (what a read between two folds costs), the fold of those 1,000, and `tallies --check` (a recount from the
vote rows compared with the kept tallies). Votes are added in steps to one seeded database; a step whose projected
seeding time would exceed the budget is skipped.

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
UNFOLDED = 1_000  # votes cast since the last fold when the "between two folds" read is timed


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


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
        from voting import ledger
        from voting.leaderboard import leaderboard_rows
        from voting.management.commands.tallies import differences

        seed.migrate()
        world = seed.World.for_match_pairs(args.match_pairs)
        t0 = time.perf_counter()
        seed.seed_catalog(world, Path(settings.MEDIA_ROOT))
        catalog_s = time.perf_counter() - t0
        heading(
            f"{backend}: the leaderboard over {world.n_match_pairs:,} match pairs "
            f"({world.n_pairs:,} cards, 4 variants; seeded in {catalog_s:.1f} s), from the maintained tallies"
        )

        rows, notes = [], []
        done, spent, rate = 0, 0.0, None
        for size in args.sizes:
            if rate is not None and spent + (size - done + UNFOLDED) / rate > args.seed_budget:
                notes.append(
                    f"- {size:,} votes skipped: seeding would take about {(size - done) / rate:.0f} s more, "
                    f"past the {args.seed_budget:.0f} s budget (--seed-budget)."
                )
                continue
            seconds = seed.seed_votes(world, done, size)
            spent += seconds
            rate = (size - done) / seconds
            done = size
            if backend == "postgres":
                seed.analyze()  # autovacuum's job on a live database
            recount_s, _ = timed(ledger.recount)
            leaderboard_rows()  # warm the page cache once, as a running site would be
            folded, runs = median_time(leaderboard_rows, runs=args.runs, budget=args.run_budget)
            spent += seed.seed_votes(world, done, done + UNFOLDED)
            done += UNFOLDED
            between, _ = median_time(leaderboard_rows, runs=args.runs, budget=args.run_budget)
            fold_s, folded_n = timed(ledger.fold)
            check_s, found = timed(differences)
            rows.append(
                (
                    size,
                    fmt_seconds(seconds),
                    fmt_seconds(recount_s),
                    fmt_seconds(folded),
                    fmt_seconds(between),
                    f"{fmt_seconds(fold_s)} ({folded_n:,} votes)",
                    f"{fmt_seconds(check_s)}: " + ("clean" if not found else f"**{len(found)} differences**"),
                    runs,
                )
            )
            emit(
                f"<!-- {backend} {size:,} votes: seeded {seconds:.1f} s, leaderboard median {folded * 1000:.2f} ms -->"
            )

        emit("")
        emit(
            table(
                [
                    "votes",
                    "seeding this step",
                    "full recount (tallies --rebuild)",
                    "leaderboard_rows(), all folded (median)",
                    f"with {UNFOLDED:,} votes not folded yet (median)",
                    "fold",
                    "tallies --check",
                    "runs",
                ],
                rows,
            )
        )
        if notes:
            emit("\n" + "\n".join(notes))
        with CaptureQueriesContext(connection) as ctx:
            leaderboard_rows()
        slowest = max(ctx.captured_queries, key=lambda q: float(q["time"]))
        emit(
            f"\n{len(ctx.captured_queries)} queries per leaderboard_rows() at {done:,} votes; plan of the slowest "
            f"({float(slowest['time']) * 1000:.1f} ms when captured):\n"
        )
        emit("```\n" + slowest["sql"] + "\n\n" + explain(slowest["sql"]) + "\n```")
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
