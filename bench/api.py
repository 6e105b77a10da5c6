"""The voting API under load: requests/s and p50/p99 latency of GET /api/pairs/next and the vote flow
(GET / for the CSRF cookie, GET /api/pairs/next, POST /api/votes), beside two floors: a plain WSGI
answer (gunicorn alone) and a trivial Django view (the middleware stack). gunicorn with 4 sync workers,
DEBUG off, throttles raised out of the way; SQLite (no Redis: per-process cache) and PostgreSQL (+ Redis
cache). Clients are threads with keep-alive connections and a cookie jar per simulated voter.
Then the queries behind each endpoint, timed in-process, with the plan of the slowest.

    .venv/bin/python -m bench.api [--quick] [--backends sqlite,postgres] [--duration 10] [--clients 1,8,32]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.cookies import SimpleCookie
from pathlib import Path

import numpy as np

from bench.common import (
    REDIS_BENCH_URL,
    REPO,
    django_setup,
    emit,
    explain,
    fmt_seconds,
    heading,
    postgres_available,
    postgres_create,
    postgres_drop,
    redis_available,
    scratch_dir,
    table,
)

HIGH_RATE = "1000000/min"
VOTES_PER_SIMULATED_VOTER = 50  # then the thread starts over as a new visitor (GET /, fresh cookies)
PG_DATABASE = "vsearch_bench_api"


class Visitor:
    """One browser: a keep-alive connection and a cookie jar. `request` never raises; status 0 = transport error."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def reset(self) -> None:
        self.cookies.clear()

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, float]:
        headers = {"Host": "127.0.0.1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        t0 = time.perf_counter()
        try:
            self.conn.request(method, path, body=payload, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            return 0, b"", time.perf_counter() - t0
        elapsed = time.perf_counter() - t0
        for header in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            self.cookies.update({k: m.value for k, m in jar.items()})
        if response.will_close:
            self.conn.close()  # gunicorn's sync workers close after each response; the next request reconnects
        return response.status, data, elapsed


class Recorder:
    def __init__(self):
        self.latency: dict[str, list[float]] = {}
        self.status: dict[str, Counter] = {}
        self.sample_5xx: dict[str, bytes] = {}

    def add(self, label: str, status: int, data: bytes, elapsed: float) -> None:
        self.latency.setdefault(label, []).append(elapsed)
        self.status.setdefault(label, Counter())[status] += 1
        if status >= 500 or status == 0:
            self.sample_5xx.setdefault(label, data[:300])

    def merge(self, other: Recorder) -> None:
        for label, values in other.latency.items():
            self.latency.setdefault(label, []).extend(values)
        for label, counts in other.status.items():
            self.status.setdefault(label, Counter()).update(counts)
        for label, data in other.sample_5xx.items():
            self.sample_5xx.setdefault(label, data)


def scenario_get(path: str):
    def run(visitor: Visitor, rec: Recorder, deadline: float) -> None:
        while time.perf_counter() < deadline:
            rec.add(f"GET {path}", *visitor.request("GET", path))

    return run


def scenario_pairs(visitor: Visitor, rec: Recorder, deadline: float) -> None:
    """One returning voter asking for cards (the first answer sets the voter cookie)."""
    while time.perf_counter() < deadline:
        rec.add("GET /api/pairs/next", *visitor.request("GET", "/api/pairs/next"))


def scenario_votes(visitor: Visitor, rec: Recorder, deadline: float) -> None:
    """A visitor swipes VOTES_PER_SIMULATED_VOTER cards, then another visitor takes the seat."""
    cast = VOTES_PER_SIMULATED_VOTER
    verdicts = ("dope", "nope")
    while time.perf_counter() < deadline:
        if cast >= VOTES_PER_SIMULATED_VOTER:
            visitor.reset()
            rec.add("GET /", *visitor.request("GET", "/"))
            cast = 0
        status, data, elapsed = visitor.request("GET", "/api/pairs/next")
        rec.add("GET /api/pairs/next", status, data, elapsed)
        if status != 200:
            continue
        card = json.loads(data)
        if "token" not in card:
            cast = VOTES_PER_SIMULATED_VOTER  # this voter has seen everything: next visitor
            continue
        body = {"token": card["token"], "verdict": verdicts[cast % 2], "shown_ms": 800}
        rec.add("POST /api/votes", *visitor.request("POST", "/api/votes", body))
        cast += 1


def load(port: int, scenario, clients: int, duration: float) -> tuple[Recorder, float]:
    recorders = [Recorder() for _ in range(clients)]
    deadline = time.perf_counter() + duration
    threads = [threading.Thread(target=scenario, args=(Visitor(port), rec, deadline), daemon=True) for rec in recorders]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    total = Recorder()
    for rec in recorders:
        total.merge(rec)
    return total, elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, timeout: float) -> None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        status, _, _ = Visitor(port).request("GET", "/floor/wsgi")
        if status == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer on port {port} within {timeout:.0f} s")


# ---------------------------------------------------------------------------------------- per backend


def run_backend(args) -> None:
    backend = args.backend
    data_dir = scratch_dir(f"api-{backend}")
    database_url = postgres_create(PG_DATABASE) if backend == "postgres" else None
    redis_url = REDIS_BENCH_URL if backend == "postgres" and args.pg_cache == "redis" and redis_available() else None
    rates = {"VSEARCH_VOTE_RATE": HIGH_RATE, "VSEARCH_VOTE_IP_RATE": HIGH_RATE, "VSEARCH_PAIR_RATE": HIGH_RATE}
    os.environ.update(rates)
    gunicorn = None
    try:
        django_setup(data_dir=data_dir, database_url=database_url, redis_url=redis_url)
        from django.conf import settings
        from django.core.management import call_command

        from bench import seed

        cache_label = "Redis" if redis_url else "per-process memory"
        heading(f"{backend}: {args.match_pairs:,} match pairs, {args.votes:,} votes; cache: {cache_label}")
        t0 = time.perf_counter()
        seed.migrate()
        world = seed.World.for_match_pairs(args.match_pairs)
        seconds = seed.seed_catalog(world, Path(settings.MEDIA_ROOT))
        seconds["votes + voters"] = seed.seed_votes(world, 0, args.votes)
        if backend == "postgres":
            seed.analyze()
        call_command("collectstatic", interactive=False, verbosity=0)
        emit(
            table(
                ["seeded", "rows", "seconds"],
                [
                    ("items", world.n_items, seconds["items"]),
                    ("pairs", world.n_pairs, seconds["pairs"]),
                    ("match pairs", world.n_match_pairs, seconds["match pairs"]),
                    ("votes", args.votes, seconds["votes + voters"]),
                ],
            )
        )
        emit(f"\n(setup incl. migrate and collectstatic: {time.perf_counter() - t0:.1f} s)")

        port = free_port()
        env = {
            **os.environ,
            **rates,
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "VSEARCH_DATA_DIR": str(data_dir),
            "VSEARCH_LOG_LEVEL": "WARNING",
        }
        env.pop("VSEARCH_TASKS", None)  # the server picks its own default, as in production
        log = open(data_dir / "gunicorn.log", "wb")  # noqa: SIM115 - closed with the server below
        gunicorn = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "bench.floor_wsgi:application",
                "-w",
                str(args.workers),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "--timeout",
                "120",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_ready(port, 60)
        # Warm every worker (imports, first queries) before measuring.
        load(port, scenario_votes, args.workers * 2, 1.0)

        scenarios = [
            ("GET /floor/wsgi (no Django)", scenario_get("/floor/wsgi")),
            ("GET /floor/django (trivial view)", scenario_get("/floor/django")),
            ("GET /health", scenario_get("/health")),
            ("GET /api/pairs/next", scenario_pairs),
            ("vote flow", scenario_votes),
        ]
        rows, failures = [], []
        for name, scenario in scenarios:
            for clients in args.clients:
                rec, elapsed = load(port, scenario, clients, args.duration)
                for label in sorted(rec.latency):
                    lat = np.array(rec.latency[label])
                    codes = ", ".join(f"{code or 'conn err'}: {n}" for code, n in sorted(rec.status[label].items()))
                    rows.append(
                        (
                            name,
                            clients,
                            label,
                            len(lat),
                            len(lat) / elapsed,
                            fmt_seconds(float(np.percentile(lat, 50))),
                            fmt_seconds(float(np.percentile(lat, 99))),
                            codes,
                        )
                    )
                    bad = sum(n for code, n in rec.status[label].items() if code >= 500 or code == 0)
                    if bad:
                        failures.append(
                            f"- {backend} · {name} · {clients} clients · {label}: {bad} failed; first body: "
                            f"`{rec.sample_5xx.get(label, b'')[:200]!r}`"
                        )
        emit(f"\ngunicorn -w {args.workers}, {args.duration:g} s per row, the load generator on the same machine.")
        if redis_url:
            emit(
                "With REDIS_URL set, /health also pings Redis and asks Celery workers to answer "
                "(inspect ping, 1 s timeout)."
            )
        else:
            emit("Without REDIS_URL, /health is a database ping.")
        emit("")
        emit(table(["scenario", "clients", "request", "n", "req/s", "p50", "p99", "status codes"], rows))
        if failures:
            emit(f"\n**5xx or connection errors on {backend}:**\n")
            emit("\n".join(failures))
            tail = (data_dir / "gunicorn.log").read_bytes()[-3000:].decode(errors="replace")
            emit(f"\ngunicorn log tail:\n\n```\n{tail}\n```")
        else:
            emit(f"\nNo 5xx and no connection errors on {backend}.")
        query_profile(backend)
    finally:
        if gunicorn is not None:
            gunicorn.send_signal(signal.SIGTERM)
            try:
                gunicorn.wait(20)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
        from django.db import connections

        connections.close_all()
        if database_url:
            postgres_drop(PG_DATABASE)
        shutil.rmtree(data_dir, ignore_errors=True)


def query_profile(backend: str) -> None:
    """Each endpoint's queries, timed in this process over the seeded data; the slowest one's plan."""
    from django.core import signing
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from voting.identity import COOKIE, SALT
    from voting.models import Voter

    newcomer = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1")
    newcomer.get("/")
    csrf = newcomer.cookies["csrftoken"].value
    regular = Client(HTTP_HOST="127.0.0.1")  # a seeded voter with 100 votes: the probes must skip voted cards
    voter = Voter.objects.order_by("id").first()
    regular.cookies[COOKIE] = signing.get_cookie_signer(salt=COOKIE + SALT).sign(str(voter.uuid))

    def vote():
        token = newcomer.get("/api/pairs/next").json()["token"]
        return lambda: newcomer.post(
            "/api/votes",
            json.dumps({"token": token, "verdict": "dope"}),
            content_type="application/json",
            HTTP_X_CSRFTOKEN=csrf,
        )

    steps = [  # (name, prepare -> request)
        (
            "GET /api/pairs/next, cold cache, new voter",
            lambda: (cache.clear(), lambda: newcomer.get("/api/pairs/next"))[1],
        ),
        ("GET /api/pairs/next, warm cache", lambda: lambda: newcomer.get("/api/pairs/next")),
        ("GET /api/pairs/next, voter with 100 votes", lambda: lambda: regular.get("/api/pairs/next")),
        ("POST /api/votes", vote),
        ("GET /api/leaderboard", lambda: lambda: newcomer.get("/api/leaderboard")),
    ]
    rows, slowest = [], (0.0, "", "")
    for name, prepare in steps:
        request = prepare()
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            response = request()
            elapsed = time.perf_counter() - t0
        times = [float(q["time"]) for q in ctx.captured_queries]
        top = max(ctx.captured_queries, key=lambda q: float(q["time"]), default=None)
        rows.append(
            (
                name,
                response.status_code,
                len(times),
                fmt_seconds(elapsed),
                fmt_seconds(sum(times)),
                fmt_seconds(max(times, default=0.0)),
                "`" + (top["sql"][:100] if top else "") + "…`",
            )
        )
        if top and float(top["time"]) > slowest[0]:
            slowest = (float(top["time"]), name, top["sql"])
    heading(f"{backend}: queries per request (in-process, seeded data)")
    emit(table(["request", "status", "queries", "wall", "in SQL", "slowest query", "its SQL"], rows))
    if slowest[2]:
        emit(f"\nPlan of the slowest query ({fmt_seconds(slowest[0])}, in {slowest[1]}):\n")
        emit("```\n" + slowest[2] + "\n\n" + explain(slowest[2]) + "\n```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k rows, 1 s per row, 4 clients")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--match-pairs", type=int, help="MatchPair rows (default 1,000,000; quick 100,000)")
    parser.add_argument("--votes", type=int, help="Vote rows (default 1,000,000; quick 100,000)")
    parser.add_argument("--duration", type=float, help="seconds per scenario and client count (default 10; quick 1)")
    parser.add_argument("--clients", help="concurrent clients, comma-separated (default 1,8,32; quick 4)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--pg-cache", choices=("redis", "locmem"), default="redis", help="cache beside PostgreSQL")
    parser.add_argument("--backend", help=argparse.SUPPRESS)  # internal: run one backend in this process
    args = parser.parse_args()
    q = args.quick
    args.match_pairs = args.match_pairs or (100_000 if q else 1_000_000)
    args.votes = args.votes or (100_000 if q else 1_000_000)
    args.duration = args.duration or (1.0 if q else 10.0)
    args.clients = [int(c) for c in (args.clients or ("4" if q else "1,8,32")).split(",")]
    if args.backend:
        run_backend(args)
        return
    # Django is configured once per process, so each backend runs in its own.
    for backend in args.backends.split(","):
        if backend == "postgres" and (why := postgres_available()):
            heading("postgres")
            emit(f"Skipped: PostgreSQL at 127.0.0.1:5432 is not reachable ({why}).")
            continue
        forward = [
            "--match-pairs",
            str(args.match_pairs),
            "--votes",
            str(args.votes),
            "--duration",
            str(args.duration),
            "--clients",
            ",".join(map(str, args.clients)),
            "--workers",
            str(args.workers),
            "--pg-cache",
            args.pg_cache,
        ]
        subprocess.run([sys.executable, "-m", "bench.api", *forward, "--backend", backend], cwd=REPO, check=True)


if __name__ == "__main__":
    main()
