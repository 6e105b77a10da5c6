"""CPU per vote, measured in-process: simulated voters' requests go straight into vsearch's WSGI application (no
HTTP server, no load generator competing for the cores) on a seeded PostgreSQL and a private Redis, and the CPU
time of this process, of its PostgreSQL backend and of the Redis server is read around N requests of each kind.
Beside them, the framework's floor: a trivial Django view behind the same middleware (bench.floor_urls). Then
cProfile over the vote requests: the top functions by cumulative CPU.

The machine is shared, so wall-clock throughput is noisy; CPU time per request is not (much). A vote is measured
as the swipe page sends it: POST /api/votes whose answer carries the next card (one round trip); the card request
(GET /api/pairs/next, the first card and after an undo) is measured on its own.

    .venv/bin/python -m bench.vote_path [--quick] [--requests 2000] [--voters 16] [--pairs 100000]
        [--db-options server_side_binding=true] [--renderer ...] [--profile 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from http.cookies import SimpleCookie
from pathlib import Path

from bench.common import (
    PG_SERVER,
    emit,
    heading,
    postgres_available,
    postgres_create,
    postgres_drop,
    scratch_dir,
    table,
)

PG_DATABASE = "vsearch_bench_vote_path"
HIGH_RATE = "1000000/s"
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (clock ticks: 10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own on a free port, so its CPU and commands are this benchmark's alone."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no", "--dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        self.client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def commands(self) -> int:
        return int(self.client.info("stats")["total_commands_processed"])

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Browser:
    """One voter's cookie jar, talking WSGI to the application object directly."""

    def __init__(self, app, ip: str):
        self.app = app
        self.ip = ip
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else b""
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_X_FORWARDED_FOR": self.ip,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(payload),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            environ.update(
                CONTENT_TYPE="application/json",
                CONTENT_LENGTH=str(len(payload)),
                HTTP_X_CSRFTOKEN=self.cookies.get("csrftoken", ""),
            )
        seen = {}

        def start_response(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, headers

        result = self.app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        for name, value in seen["headers"]:
            if name.lower() == "set-cookie":
                jar = SimpleCookie()
                jar.load(value)
                self.cookies.update({k: m.value for k, m in jar.items()})
        return int(seen["status"].split(" ", 1)[0]), data


class Meter:
    """CPU of this process, its PostgreSQL backend and Redis, queries and Redis commands, around a block."""

    def __init__(self, redis_server: PrivateRedis):
        from django.db import connection

        self.redis = redis_server
        self.queries = 0
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.backend = cursor.fetchone()[0]
        connection.execute_wrappers.append(self._count)

    def _count(self, execute, sql, params, many, context):
        self.queries += 1
        return execute(sql, params, many, context)

    def backend_pid(self) -> int:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    def snapshot(self) -> tuple[float, float, float, int, int]:
        return (time.process_time(), proc_cpu(self.backend), self.redis.cpu(), self.queries, self.redis.commands())


def measure(meter: Meter, label: str, n: int, step) -> tuple:
    """Run step() n times; the row: label, n, ms of CPU per request in Python, PostgreSQL, Redis, total, queries
    and Redis commands per request."""
    before = meter.snapshot()
    codes: Counter = Counter()
    for i in range(n):
        codes[step(i)] += 1
    after = meter.snapshot()
    py, pg, rd, q, rc = (a - b for a, b in zip(after, before, strict=True))
    rc -= 1  # the INFO call of the second snapshot
    per = 1000.0 / n
    return (
        label,
        n,
        py * per,
        pg * per,
        rd * per,
        (py + pg + rd) * per,
        q / n,
        rc / n,
        ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())),
    )


def profile_table(profiler: cProfile.Profile, n: int, top: int) -> str:
    """The top functions by cumulative CPU time of this process, per vote (cProfile's own overhead inflates small,
    hot functions: read it for where the time goes, the table above for how much)."""
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():
        where = filename.replace(str(Path(sys.prefix)), "venv").split("site-packages/")[-1]
        where = where.replace(str(Path(__file__).resolve().parent.parent) + "/", "")
        rows.append((cumtime, tottime, calls, f"`{where}:{line}({name})`"))
    rows.sort(reverse=True)
    per = 1000.0 / n
    return table(
        ["function", "calls per vote", "cumulative ms per vote", "own ms per vote"],
        [(f, c / n, cum * per, tot * per) for cum, tot, c, f in rows[:top]],
    )


def explain_first_look() -> str:
    """EXPLAIN ANALYZE of the card statement for a seeded voter with 100 votes: planning and execution time."""
    import random

    from django.db import connection

    from voting import sampling
    from voting.models import Voter

    voter = Voter.objects.order_by("id").first()
    drawn = sampling.draw(random.Random(0))
    sql, params = sampling.look_statement(voter.pk, drawn)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, SUMMARY) " + sql, params)
        return "\n".join(r[0] for r in cursor.fetchall())


def _serializer_vote_in(data):
    """The vote's input checked as it was: a VoteIn serializer per request."""
    from voting.serializers import VoteIn

    checked = VoteIn(data=data)
    checked.is_valid(raise_exception=True)
    return checked.validated_data


def ablation(meter: Meter, vote, args) -> None:
    """Each choice undone alone, in the same process, rounds interleaved: what it saves per vote (CPU of this process
    and of its PostgreSQL backend). Gives a comparison that the shared machine's noise does not swamp."""
    from django.db import connection
    from django.db.backends.postgresql.base import DatabaseWrapper as DjangoPostgres

    from voting import api
    from vsearch_site.db.base import DatabaseWrapper as Ours

    def undo_attr(obj, name, value):
        def apply():
            saved = getattr(obj, name)
            setattr(obj, name, value)
            return lambda: setattr(obj, name, saved)

        return apply

    def unprepared():
        connection.ensure_connection()
        raw = connection.connection
        saved = raw.prepare_threshold
        raw.prepare_threshold = None
        return lambda: setattr(raw, "prepare_threshold", saved)

    from voting import services

    shipped_record = services.vote_record

    def two_statements(**kwargs):
        return shipped_record(**{**kwargs, "look_ahead": None})

    variants = [
        ("as shipped", lambda: lambda: None),
        (
            "vote INSERT and the next card's look as two statements",
            undo_attr(api.services, "vote_record", two_statements),
        ),
        ("statements not prepared", unprepared),
        ("health check by SELECT 1 (Django's)", undo_attr(Ours, "is_usable", DjangoPostgres.is_usable)),
        ("a VoteIn serializer per vote", undo_attr(api, "vote_in", _serializer_vote_in)),
    ]
    n = max(200, args.requests // 2)
    cells: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in variants}
    for _ in range(args.rounds + 2):
        for label, apply in variants:
            restore = apply()
            try:
                vote(0)  # the change in place (a prepared statement re-prepared, a script loaded)
                row = measure(meter, label, n, vote)
            finally:
                restore()
            cells[label].append((row[2], row[3]))
    base_py = statistics.median(p for p, _ in cells["as shipped"])
    base_pg = statistics.median(g for _, g in cells["as shipped"])
    rows = []
    for label, _ in variants:
        py = statistics.median(p for p, _ in cells[label])
        pg = statistics.median(g for _, g in cells[label])
        rows.append((label, py, pg, py + pg, (py + pg) - (base_py + base_pg)))
    heading(f"Each choice undone alone (median of {args.rounds + 2} interleaved rounds of {n} votes)")
    emit(table(["vote path", "Python ms", "PostgreSQL ms", "together ms", "more than as shipped, ms"], rows))


def run(args) -> None:
    data_dir = scratch_dir("vote-path")
    redis_server = PrivateRedis(data_dir)
    database_url = postgres_create(PG_DATABASE)
    if args.db_options:
        database_url += f"?{args.db_options}"
    try:
        os.environ.update(
            DJANGO_DEBUG="0",
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
            DJANGO_SECRET_KEY="vote-path-" + os.urandom(8).hex(),
            VSEARCH_VOTE_RATE=HIGH_RATE,
            VSEARCH_VOTE_IP_RATE=HIGH_RATE,
            VSEARCH_PAIR_RATE=HIGH_RATE,
            VSEARCH_NUM_PROXIES="1",
            VSEARCH_LOG_LEVEL="WARNING",
        )
        from bench.common import django_setup

        django_setup(data_dir=data_dir, database_url=database_url, redis_url=redis_server.url)
        os.environ.pop("VSEARCH_TASKS", None)
        from django.conf import settings

        from bench import seed

        t0 = time.perf_counter()
        seed.migrate()
        world = seed.World.for_match_pairs(args.pairs)
        seed.seed_catalog(world, Path(settings.MEDIA_ROOT))
        seed.seed_votes(world, 0, args.votes)
        seed.analyze()
        from django.core.management import call_command

        call_command("collectstatic", interactive=False, verbosity=0)
        settings.VSEARCH_TASKS = "thread"  # as the web process runs (nothing is sent on the vote path)
        from django.db import connection

        # One backend for the whole run, so its CPU can be read from /proc (production reconnects every 60 s).
        connection.settings_dict["CONN_MAX_AGE"] = None
        connection.close()  # the seeding's connection was opened with a 60 s lifetime
        settings.ROOT_URLCONF = "bench.floor_urls"  # /floor/django beside the site's own URLs
        from vsearch_site.wsgi import application

        emit(
            f"Seeded {world.n_items:,} items, {world.n_match_pairs:,} match pairs, {args.votes:,} votes in "
            f"{time.perf_counter() - t0:.1f} s; PostgreSQL {PG_SERVER} {args.db_options or '(default options)'}, "
            f"a private redis-server; renderer {settings.REST_FRAMEWORK['DEFAULT_RENDERER_CLASSES'][0]}."
        )

        voters = [Browser(application, f"10.9.{i // 250}.{i % 250 + 1}") for i in range(args.voters)]
        cards: dict[int, dict] = {}
        for i, b in enumerate(voters):
            b.request("GET", "/")
            status, data = b.request("GET", "/api/pairs/next")
            assert status == 200, data[:300]
            cards[i] = json.loads(data)

        def vote(i: int) -> int:
            who = i % len(voters)
            card = cards[who]
            status, data = voters[who].request(
                "POST", "/api/votes", {"token": card["token"], "verdict": "dope" if i % 3 else "nope", "shown_ms": 900}
            )
            if status == 201:
                cards[who] = json.loads(data)["next"]
            else:
                cards[who] = json.loads(voters[who].request("GET", "/api/pairs/next")[1])
            return status

        def card(i: int) -> int:
            return voters[i % len(voters)].request("GET", "/api/pairs/next")[0]

        def floor(i: int) -> int:
            return voters[i % len(voters)].request("GET", "/floor/django")[0]

        for i in range(args.voters * 12):  # past the first cards' gold qualification; warms every cache
            vote(i)
        meter = Meter(redis_server)
        n = args.requests
        kinds = [
            ("GET /floor/django (trivial view, same middleware)", floor),
            ("GET /api/pairs/next", card),
            ("POST /api/votes (answer carries the next card)", vote),
        ]
        # Rounds interleave the kinds, so a burst of other work on the shared machine hits them alike; each cell
        # is the median over the rounds.
        rounds = [[measure(meter, label, n, step) for label, step in kinds] for _ in range(args.rounds)]
        rows = [
            (
                label,
                n * args.rounds,
                *(statistics.median(r[k][c] for r in rounds) for c in range(2, 8)),
                rounds[-1][k][8],
            )
            for k, (label, _) in enumerate(kinds)
        ]
        heading("CPU per request, in-process (WSGI application called directly)")
        emit(
            table(
                [
                    "request",
                    "n",
                    "Python ms",
                    "PostgreSQL backend ms",
                    "Redis ms",
                    "server CPU ms",
                    "SQL queries",
                    "Redis commands",
                    "status codes",
                ],
                rows,
            )
        )
        emit(
            f"\nServer CPU per vote (one round trip): **{rows[2][5]:.2f} ms**; the trivial view's floor "
            f"{rows[0][5]:.2f} ms ({rows[2][5] / max(rows[0][5], 1e-9):.1f}x). CPU of the process includes this "
            "driver's few µs per request (building the WSGI environ, reading cookies); PostgreSQL and Redis CPU "
            f"are read from /proc at {1000 // TICK} ms resolution; medians of {args.rounds} rounds of {n:,} requests."
        )
        if hasattr(__import__("voting.sampling").sampling, "look_statement"):  # absent before the trimming
            heading("The card statement (voting.sampling.first_look) on the seeded data")
            emit("```\n" + explain_first_look() + "\n```")
        if args.ablation:
            ablation(meter, vote, args)
        if args.profile:
            profiler = cProfile.Profile(time.process_time)  # CPU time, not the wait for PostgreSQL
            m = max(200, n // 2)
            profiler.enable()
            for i in range(m):
                vote(i)
            profiler.disable()
            heading(f"cProfile of {m:,} votes: top {args.profile} functions by cumulative time")
            emit(profile_table(profiler, m, args.profile))
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            emit(f"\nKept the database: {database_url}")
        else:
            postgres_drop(PG_DATABASE)
        redis_server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 requests of each kind, 20k match pairs")
    parser.add_argument("--requests", type=int, help="requests of each kind (default 3000; quick 500)")
    parser.add_argument("--voters", type=int, default=16)
    parser.add_argument("--pairs", type=int, help="match pairs to seed (default 100,000; quick 20,000)")
    parser.add_argument("--votes", type=int, help="earlier votes to seed (default 100,000; quick 10,000)")
    parser.add_argument("--db-options", default="", help="query options for DATABASE_URL (server_side_binding=true)")
    parser.add_argument("--keep", action="store_true", help=f"keep the scratch database {PG_DATABASE}")
    parser.add_argument("--ablation", action="store_true", help="undo each choice alone and measure the difference")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of measurement; each cell is their median")
    parser.add_argument("--profile", type=int, default=25, help="rows of the cProfile table (0: no profile)")
    args = parser.parse_args()
    args.requests = args.requests or (500 if args.quick else 3000)
    args.pairs = args.pairs or (20_000 if args.quick else 100_000)
    args.votes = args.votes if args.votes is not None else (10_000 if args.quick else 100_000)
    if why := postgres_available():
        sys.exit(f"bench.vote_path needs PostgreSQL at 127.0.0.1:5432 ({why}).")
    if not shutil.which("redis-server"):
        sys.exit("bench.vote_path starts its own redis-server: none on PATH.")
    run(args)


if __name__ == "__main__":
    main()
