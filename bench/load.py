"""A bounded load test of the production profile: gunicorn with vsearch_site/gunicorn.conf.py (DEBUG off,
PostgreSQL, Redis cache and throttles) on a seeded scratch database, driven by N simulated voters for a
fixed time, then the database is checked: every 201 is exactly one vote row, a retried token made no second
row, no 5xx. The issue's target: at least 500 votes/s sustained with p99 under 50 ms, zero lost.

Each simulated voter is a browser, as the swipe page behaves: GET / once (csrftoken cookie), GET /api/pairs/next
for the first card, then an optional think time and POST /api/votes with the token and X-CSRFToken, whose answer
carries the next card (one round trip per vote); 1% of votes are posted twice (a client retry, expected 201
again). As behind the README's one reverse proxy (VSEARCH_NUM_PROXIES=1), each voter sends its own
X-Forwarded-For address, so per-IP throttling sees many visitors rather than one 127.0.0.1.
Voting needs no Celery worker (no task is sent on that path), so none is started.
The load generator runs on the same machine as the server: its CPU share is printed beside the results.

    .venv/bin/python -m bench.load [--quick] [--clients 32] [--duration 30] [--workers 5] [--threads 1] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import (
    REPO,
    django_setup,
    emit,
    fmt_seconds,
    heading,
    postgres_available,
    postgres_create,
    postgres_drop,
    redis_available,
    scratch_dir,
    table,
)

PG_DATABASE = "vsearch_bench_load"
REDIS_URL = "redis://127.0.0.1:6379/5"  # its own db (tests use 0, bench.api 14): flushed before and after
# Throttles raised out of the way, with a one-second window: DRF's SimpleRateThrottle keeps a list of every
# request's timestamp within the window in the cache, so "10000000/min" at 1,000 requests/s would pickle 60,000
# floats per request. Per second, a simulated voter's history is as short as a human's at the default rates.
HIGH_RATE = "1000000/s"
TARGET_VOTES_PER_S = 500.0
TARGET_P99_S = 0.050
REPLAY_RATE = 0.01  # share of votes posted a second time with the same token (a client retry)
LOADGEN, GUNICORN_CPU, OTHER = "load generator (this process)", "gunicorn (master + workers)", "other processes"
PAIRS, VOTE, REPLAY, PAGE = "GET /api/pairs/next", "POST /api/votes", "POST /api/votes (replay)", "GET /"
GUNICORN = Path(sys.executable).parent / "gunicorn"


# ---------------------------------------------------------------------------------------- the client


class Browser:
    """One simulated visitor: an HTTP/1.1 connection kept alive while the server allows it, and a cookie jar.

    Written on asyncio streams rather than http.client: the load generator shares the machine's cores with
    the server, so every microsecond it spends parsing is taken from the thing being measured.
    """

    def __init__(self, port: int, timeout: float, ip: str):
        self.port = port
        self.timeout = timeout
        self.ip = ip
        self.cookies: dict[str, str] = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, float]:
        """(status, body, seconds incl. connecting); status 0 is a transport error or a timeout. Never raises."""
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"X-Forwarded-For: {self.ip}"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            lines += [
                "Content-Type: application/json",
                f"Content-Length: {len(payload)}",
                f"X-CSRFToken: {self.cookies.get('csrftoken', '')}",
            ]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.writer.write(raw)
                status, data, close = await self._response()
        except (OSError, EOFError, ValueError, IndexError, TimeoutError, asyncio.IncompleteReadError):
            self.close()
            return 0, b"", time.perf_counter() - t0
        elapsed = time.perf_counter() - t0
        if close:
            self.close()  # gunicorn's sync workers close after every response; the next request reconnects
        return status, data, elapsed

    async def _response(self) -> tuple[int, bytes, bool]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"set-cookie":
                pair = value.strip().split(b";", 1)[0].decode("latin-1")
                key, _, cookie = pair.partition("=")
                self.cookies[key.strip()] = cookie.strip()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if not chunked:
            return status, await self.reader.readexactly(length), close
        parts = []
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        await self.reader.readuntil(b"\r\n")
        return status, b"".join(parts), close


@dataclass
class Record:
    """Everything the voters saw, shared by all of them (one event loop: no locks needed)."""

    latency: dict[str, list[float]] = field(default_factory=dict)
    status: dict[str, Counter] = field(default_factory=dict)
    first_bad: dict[str, bytes] = field(default_factory=dict)
    posted: set[str] = field(default_factory=set)  # every token sent (first POST), answered or not
    acked: set[str] = field(default_factory=set)  # first POST answered 201
    answered: set[str] = field(default_factory=set)  # first POST answered at all (any status)
    replayed: dict[str, int] = field(default_factory=dict)  # token -> status of its retry
    ack_times: list[float] = field(default_factory=list)  # perf_counter of each 201, for the per-second rate
    done_voters: int = 0  # voters who ran out of cards

    def add(self, label: str, status: int, data: bytes, elapsed: float) -> None:
        self.latency.setdefault(label, []).append(elapsed)
        self.status.setdefault(label, Counter())[status] += 1
        if status >= 500 or status == 0:
            self.first_bad.setdefault(label, data[:300])


async def voter(browser: Browser, rec: Record, deadline: float, rng: random.Random, think: float) -> None:
    """GET / for the csrftoken cookie, then card, think, vote until the deadline (each request is bounded)."""
    for _ in range(3):
        status, data, elapsed = await browser.request("GET", "/")
        rec.add(PAGE, status, data, elapsed)
        if "csrftoken" in browser.cookies or time.perf_counter() >= deadline:
            break
        await asyncio.sleep(0.1)
    card = None
    while time.perf_counter() < deadline:
        if card is None:  # the first card, or after an answer that brought none: GET, as the swipe page does
            status, data, elapsed = await browser.request("GET", "/api/pairs/next")
            rec.add(PAIRS, status, data, elapsed)
            if status != 200:
                await asyncio.sleep(0.01)  # a refused connection must not become a busy loop
                continue
            card = json.loads(data)
        if "token" not in card:
            rec.done_voters += 1
            return
        if think:
            await asyncio.sleep(think)
        token = card["token"]
        body = {"token": token, "verdict": rng.choice(("dope", "nope")), "shown_ms": int(think * 1000)}
        rec.posted.add(token)
        status, data, elapsed = await browser.request("POST", "/api/votes", body)
        rec.add(VOTE, status, data, elapsed)
        card = None
        if status:
            rec.answered.add(token)
        if status == 201:
            rec.acked.add(token)
            rec.ack_times.append(time.perf_counter())
            card = json.loads(data).get("next")  # one round trip per vote: the answer carries the next card
            if rng.random() < REPLAY_RATE:
                status, data, elapsed = await browser.request("POST", "/api/votes", body)
                rec.add(REPLAY, status, data, elapsed)
                rec.replayed[token] = status


async def drive(port: int, *, clients: int, duration: float, think: float, grace: float, seed: int):
    """Run `clients` voters for `duration` s; stragglers are cancelled at duration + grace. (record, t0, wall)."""
    rec = Record()
    browsers = [
        Browser(port, timeout=grace, ip=f"10.{seed % 200 + 1}.{i // 250}.{i % 250 + 1}") for i in range(clients)
    ]
    t0 = time.perf_counter()
    deadline = t0 + duration
    tasks = [
        asyncio.create_task(voter(b, rec, deadline, random.Random(seed * 100_003 + i), think))
        for i, b in enumerate(browsers)
    ]
    _, pending = await asyncio.wait(tasks, timeout=duration + grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    wall = time.perf_counter() - t0
    for b in browsers:
        b.close()
    return rec, t0, wall


# ---------------------------------------------------------------------------------------- CPU accounting


def cpu_by_process() -> dict[int, tuple[str, int, float]]:
    """pid -> (command, parent pid, CPU seconds so far) for every process we can read."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies over all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def cpu_used(before, after, busy_before, busy_after, *, server_pid: int, client_s: float, wall: float):
    """CPU seconds used during the run by group: load generator, gunicorn, PostgreSQL, Redis, the rest."""
    groups: Counter = Counter({LOADGEN: client_s})
    for pid, (comm, ppid, seconds) in after.items():
        used = seconds - (before[pid][2] if pid in before else 0.0)
        if pid == os.getpid():
            continue  # measured with os.times() instead
        if pid == server_pid or ppid == server_pid:
            groups[GUNICORN_CPU] += used
        elif comm.startswith("postgres"):
            groups["PostgreSQL"] += used
        elif comm.startswith("redis"):
            groups["Redis"] += used
        else:
            groups[OTHER] += used
    busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    machine = busy * (os.cpu_count() or 1) * wall
    groups["unattributed (kernel, exited processes)"] = max(0.0, machine - sum(groups.values()))
    return groups, machine


def cpu_report(groups: Counter, machine: float, *, wall: float, votes: int) -> None:
    cores = os.cpu_count() or 1
    per_vote = 1000 / max(1, votes)
    rows = [
        (name, seconds / wall, f"{100 * seconds / wall / cores:.0f}%", f"{seconds * per_vote:.2f}")
        for name, seconds in [*groups.items(), ("whole machine (/proc/stat)", machine)]
    ]
    heading("CPU during the run")
    emit(table(["process", "cores busy", "share of machine", "ms CPU per vote (card + vote)"], rows))
    server = sum(groups[k] for k in (GUNICORN_CPU, "PostgreSQL", "Redis"))
    emit(
        f"\n{cores} cores. Server side (gunicorn + PostgreSQL + Redis): {server * per_vote:.2f} ms of CPU per vote, "
        f"so {TARGET_VOTES_PER_S:.0f} votes/s needs about {server * per_vote * TARGET_VOTES_PER_S / 1000:.1f} cores "
        "for the server alone at this cost. Processes that exited during the run (recycled workers) count only "
        "in the unattributed line."
    )
    if groups[OTHER] / wall > 0.2:
        emit(
            f"\n**Other processes took {groups[OTHER] / wall:.2f} cores during the run: throughput and latency "
            "above are pessimistic. Rerun on a quiet machine.**"
        )


# ---------------------------------------------------------------------------------------- server


def server_env(args, data_dir: Path, database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VSEARCH_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="vsearch_site.settings",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECRET_KEY=args.secret_key,
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        VSEARCH_DATA_DIR=str(data_dir),
        VSEARCH_BIND=f"127.0.0.1:{port}",
        VSEARCH_VOTE_RATE=HIGH_RATE,
        VSEARCH_VOTE_IP_RATE=HIGH_RATE,
        VSEARCH_PAIR_RATE=HIGH_RATE,
        VSEARCH_NUM_PROXIES="1",
        VSEARCH_WEB_THREADS=str(args.threads),
    )
    if args.workers:
        env["VSEARCH_WEB_WORKERS"] = str(args.workers)
    return env


def manage(env: dict[str, str], *command: str) -> None:
    subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, env=env, check=True, timeout=600)


def wait_ready(port: int, server: subprocess.Popen, timeout: float) -> None:
    async def probe() -> int:
        return (await Browser(port, timeout=2, ip="10.0.0.1").request("GET", "/"))[0]

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {server.returncode} before answering")
        if asyncio.run(probe()) == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer GET / on port {port} within {timeout:.0f} s")


def stop(server: subprocess.Popen | None) -> None:
    """SIGTERM (graceful: requests in flight finish), then SIGKILL after gunicorn's own grace."""
    if server is None or server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(35)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(5)


def redis_flush() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()


# ---------------------------------------------------------------------------------------- checks


def database_checks(rec: Record, vote_floor: int) -> list[tuple[bool, str, str]]:
    """(passed, check, detail) for what the database says after the run (the server is stopped by now)."""
    from django.core import signing
    from django.db import connection

    from voting.models import Vote, Voter
    from voting.tokens import SALT, token_read

    # What each posted token says (checked with the server's key): its nonce, voter and card.
    cards = {t: token_read(t, voter_key=signing.loads(t, salt=SALT)["v"]) for t in rec.posted}
    voters = dict(Voter.objects.filter(uuid__in={c.voter_key for c in cards.values()}).values_list("uuid", "pk"))
    voters = {key.hex: pk for key, pk in voters.items()}
    by_nonce = {c.nonce: (voters.get(c.voter_key), c.pair_id) for c in cards.values()}
    acked = {cards[t].nonce for t in rec.acked}
    unanswered = {cards[t].nonce for t in rec.posted - rec.answered}
    rows = list(Vote.objects.filter(id__gt=vote_floor).values_list("token_id", "voter_id", "pair_id"))
    row_nonces = Counter(nonce for nonce, _, _ in rows)
    lost = acked - set(row_nonces)
    twice = {n for n, c in row_nonces.items() if c > 1}
    phantom = set(row_nonces) - set(by_nonce)
    wrong = [n for n, v, p in rows if n in by_nonce and by_nonce[n] != (v, p)]
    unacked_rows = set(row_nonces) - acked - phantom
    replay_ok = sum(1 for s in rec.replayed.values() if s == 201)
    replay_nonces = {cards[t].nonce for t in rec.replayed}
    replay_rows = sum(row_nonces[n] for n in replay_nonces)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM voting_vote GROUP BY voter_id, pair_id HAVING COUNT(*) > 1) d"
        )
        duplicates = cursor.fetchone()[0]
    server_errors = sum(n for counts in rec.status.values() for code, n in counts.items() if code >= 500)
    transport = sum(counts[0] for counts in rec.status.values())
    return [
        (not lost, "every 201 has its vote row (zero lost)", f"{len(acked):,} acknowledged, {len(lost)} missing"),
        (
            not twice and not phantom and not wrong and unacked_rows <= unanswered,
            "vote rows created == distinct tokens acknowledged",
            f"{len(rows):,} rows for {len(acked):,} acknowledged tokens"
            + (f" + {len(unacked_rows)} posted but unanswered when the client gave up" if unacked_rows else "")
            + f"; {len(twice)} tokens stored twice, {len(phantom)} rows from no posted token, "
            f"{len(wrong)} rows on another voter/card than their token",
        ),
        (
            replay_ok == len(rec.replayed) and replay_rows == len(replay_nonces),
            "a retried token is 201 again and stores nothing new",
            f"{len(rec.replayed)} retries, {replay_ok} answered 201, {replay_rows} rows for their tokens",
        ),
        (duplicates == 0, "no duplicate (voter, pair) in voting_vote", f"{duplicates} duplicated"),
        (server_errors == 0, "zero 5xx", f"{server_errors} responses with 5xx"),
        (transport == 0, "zero transport errors or client timeouts", f"{transport} requests without an answer"),
    ]


# ---------------------------------------------------------------------------------------- main


def run(args) -> bool:
    data_dir = scratch_dir("load")
    server = database_url = server_log = None
    os.environ["DJANGO_SECRET_KEY"] = args.secret_key
    os.environ["DJANGO_DEBUG"] = "0"
    try:
        database_url = postgres_create(PG_DATABASE) + (f"?{args.db_options}" if args.db_options else "")
        redis_flush()
        # Deployed order (make serve): migrate and collectstatic through manage.py, then gunicorn.
        port = free_port()
        env = server_env(args, data_dir, database_url, port)
        t0 = time.perf_counter()
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "collectstatic", "--noinput", "-v", "0")
        django_setup(data_dir=data_dir, database_url=database_url, redis_url=REDIS_URL)
        from django.conf import settings

        from bench import seed
        from voting.models import Vote

        world = seed.World.for_match_pairs(args.pairs)
        seed.seed_catalog(world, Path(settings.MEDIA_ROOT))
        seed.seed_votes(world, 0, args.votes)
        seed.analyze()
        setup_s = time.perf_counter() - t0

        server_log = open(data_dir / "gunicorn.log", "wb")  # noqa: SIM115 - lives as long as the server
        server = subprocess.Popen(
            [str(GUNICORN), "-c", "vsearch_site/gunicorn.conf.py", "vsearch_site.wsgi"],
            cwd=REPO,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        wait_ready(port, server, 60)
        workers = args.workers or (os.cpu_count() or 1)  # gunicorn.conf.py's default
        # Warm every worker (first queries, connections, caches) before measuring; those votes are not counted.
        asyncio.run(drive(port, clients=min(args.clients, 2 * workers), duration=2.0, think=0, grace=5, seed=-1))
        vote_floor = Vote.objects.order_by("-id").values_list("id", flat=True).first() or 0

        procs_before, busy_before, times_before = cpu_by_process(), machine_busy(), os.times()
        rec, t_start, wall = asyncio.run(
            drive(
                port,
                clients=args.clients,
                duration=args.duration,
                think=args.think_ms / 1000,
                grace=args.grace,
                seed=args.seed,
            )
        )
        times_after, busy_after, procs_after = os.times(), machine_busy(), cpu_by_process()
        stop(server)  # graceful: whatever was in flight commits or not before the database is read
        checks = database_checks(rec, vote_floor)

        report(args, world, workers, setup_s, rec, t_start, wall, checks)
        client_s = (times_after.user - times_before.user) + (times_after.system - times_before.system)
        groups, machine = cpu_used(
            procs_before, procs_after, busy_before, busy_after, server_pid=server.pid, client_s=client_s, wall=wall
        )
        cpu_report(groups, machine, wall=wall, votes=len(rec.acked))
        if any(not ok for ok, _, _ in checks) or rec.first_bad:
            tail = (data_dir / "gunicorn.log").read_bytes()[-3000:].decode(errors="replace")
            emit("\nFirst failing bodies:\n")
            for label, body in rec.first_bad.items():
                emit(f"- {label}: `{body[:200]!r}`")
            emit(f"\ngunicorn log tail:\n\n```\n{tail}\n```")
        return all(ok for ok, _, _ in checks)
    finally:
        stop(server)
        if server_log is not None:
            server_log.close()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if args.keep and database_url:
            emit(f"\nKept the database: {database_url}")
        else:
            postgres_drop(PG_DATABASE)
        redis_flush()
        shutil.rmtree(data_dir, ignore_errors=True)


def report(args, world, workers: int, setup_s: float, rec: Record, t_start: float, wall: float, checks) -> None:
    worker_class = f"gthread × {args.threads} threads" if args.threads > 1 else "sync"
    heading(
        f"Load: {args.clients} voters for {args.duration:g} s, gunicorn {workers} workers ({worker_class}), "
        f"think {args.think_ms:g} ms"
    )
    emit(
        f"Seeded {world.n_items:,} items, 4 ready variants, {world.n_pairs:,} cards ({world.n_match_pairs:,} match "
        f"pairs), {args.votes:,} earlier votes; setup (migrate, collectstatic, seed) {setup_s:.1f} s. "
        f"PostgreSQL and Redis on 127.0.0.1, DEBUG off, throttles raised to {HIGH_RATE}, one X-Forwarded-For "
        f"address per voter (VSEARCH_NUM_PROXIES=1). Wall {wall:.1f} s."
    )

    acks = np.array(rec.ack_times) - t_start
    in_window = acks[acks <= args.duration]
    per_second = np.bincount(in_window.astype(int), minlength=int(args.duration))[: int(args.duration)]
    steady = per_second[1:] if len(per_second) > 2 else per_second  # the first second includes ramp-up
    votes_per_s = len(in_window) / args.duration
    heading("Throughput and latency")
    rows = []
    for label in (PAGE, PAIRS, VOTE, REPLAY):
        lat = np.array(rec.latency.get(label, []))
        if not len(lat):
            continue
        p50, p90, p99 = np.percentile(lat, [50, 90, 99])
        rows.append((label, len(lat), len(lat) / wall, *(fmt_seconds(float(x)) for x in (p50, p90, p99, lat.max()))))
    emit(table(["request", "n", "req/s", "p50", "p90", "p99", "max"], rows))
    emit(
        f"\nVotes acknowledged (201, first POST): {len(rec.acked):,}; **{votes_per_s:,.0f} votes/s** over "
        f"{args.duration:g} s (per second after the first: min {steady.min() if len(steady) else 0:,}, "
        f"median {float(np.median(steady)) if len(steady) else 0:,.0f}, max {steady.max() if len(steady) else 0:,})."
        + (f" {rec.done_voters} voters ran out of cards." if rec.done_voters else "")
    )

    heading("Status codes")
    emit(
        table(
            ["request", "status codes (0 = no answer)"],
            [
                (label, ", ".join(f"{code}: {n:,}" for code, n in sorted(rec.status[label].items())))
                for label in (PAGE, PAIRS, VOTE, REPLAY)
                if label in rec.status
            ],
        )
    )

    heading("Checks")
    for ok, name, detail in checks:
        emit(f"- {'PASS' if ok else 'FAIL'} {name}: {detail}")

    p99s = {label: float(np.percentile(rec.latency[label], 99)) for label in (PAIRS, VOTE) if rec.latency.get(label)}
    lost_ok = checks[0][0] and checks[1][0]
    met = votes_per_s >= TARGET_VOTES_PER_S and p99s and max(p99s.values()) < TARGET_P99_S and lost_ok
    heading("Target")
    emit(
        f"At least {TARGET_VOTES_PER_S:.0f} votes/s sustained with p99 under {TARGET_P99_S * 1000:.0f} ms "
        f"(card and vote), zero lost: **{'MET' if met else 'NOT MET'}** — {votes_per_s:,.0f} votes/s, p99 "
        + ", ".join(f"{label} {fmt_seconds(v)}" for label, v in p99s.items())
        + f", {'none' if lost_ok else 'some'} lost."
    )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s, 16 voters, a small seed")
    parser.add_argument("--clients", type=int, help="concurrent simulated voters (default 32; quick 16)")
    parser.add_argument("--duration", type=float, help="seconds of load (default 30; quick 10)")
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause between card and vote")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's one per core)")
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per worker (gunicorn.conf.py's 4: gthread); 1 means sync"
    )
    parser.add_argument("--pairs", type=int, help="match pairs to seed (default 100,000; quick 20,000)")
    parser.add_argument("--votes", type=int, help="earlier votes to seed (default 100,000; quick 10,000)")
    parser.add_argument("--grace", type=float, default=10.0, help="per-request timeout and hard stop after duration")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the verdicts and replays")
    parser.add_argument(
        "--db-options", default="", help="query options for DATABASE_URL, e.g. server_side_binding=false"
    )
    parser.add_argument("--keep", action="store_true", help=f"keep the scratch database {PG_DATABASE}")
    args = parser.parse_args()
    q = args.quick
    args.clients = args.clients or (16 if q else 32)
    args.duration = args.duration or (10.0 if q else 30.0)
    args.pairs = args.pairs or (20_000 if q else 100_000)
    args.votes = args.votes if args.votes is not None else (10_000 if q else 100_000)
    args.secret_key = "load-test-" + os.urandom(16).hex()
    if args.clients < 1 or args.duration <= 0 or args.threads < 1 or (args.workers is not None and args.workers < 1):
        parser.error("--clients, --duration, --threads and --workers must be positive")
    if why := postgres_available():
        sys.exit(f"bench.load needs PostgreSQL at 127.0.0.1:5432 ({why}).")
    if not redis_available():
        sys.exit("bench.load needs Redis at 127.0.0.1:6379.")
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the finally blocks stop gunicorn and drop the database.
    # SIGINT too, explicitly: a shell starting this in the background would have it ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        passed = run(args)
    except KeyboardInterrupt:
        print("\nInterrupted: gunicorn stopped, scratch database dropped, Redis db flushed.", file=sys.stderr)
        sys.exit(130)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
