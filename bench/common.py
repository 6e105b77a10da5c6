"""What every benchmark shares: markdown tables, timing loops, a scratch Django setup and the machine's description."""

from __future__ import annotations

import atexit
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(tempfile.gettempdir()) / "vsearch-bench-cache"  # survives runs, so features are computed once
PG_SERVER = "postgres://postgres@127.0.0.1:5432"  # trust auth on loopback
REDIS_BENCH_URL = "redis://127.0.0.1:6379/14"  # db 14: tests use db 0


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; floats are printed with 3 significant digits unless already formatted."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:
            return "—"
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def emit(*parts: str) -> None:
    """Print and flush, so a driver reading the pipe sees progress at once."""
    print(*parts, flush=True)


def heading(text: str) -> None:
    emit(f"\n### {text}\n")


def rate_loop(
    step: Callable[[], int], *, min_seconds: float, min_steps: int = 2, max_steps: int = 10_000
) -> tuple[float, int]:
    """Run `step` (returns items done) until both floors are met; (items per second, items)."""
    done = steps = 0
    started = time.perf_counter()
    while steps < max_steps:
        done += step()
        steps += 1
        elapsed = time.perf_counter() - started
        if steps >= min_steps and elapsed >= min_seconds:
            break
    return done / (time.perf_counter() - started), done


def median_time(fn: Callable[[], object], *, runs: int, budget: float) -> tuple[float, int]:
    """Median wall time of `fn` over up to `runs` runs, stopping early once `budget` seconds are spent."""
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < runs:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - started > budget:
            break
    return statistics.median(times), len(times)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def fmt_seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> list[tuple[str, str]]:
    """(what, value) rows describing where the numbers came from."""
    import numpy

    model = "?"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    rows = [
        ("CPU", model),
        ("cores (os.cpu_count)", str(os.cpu_count())),
        (
            "vector ISA",
            ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags) or "?",
        ),
        ("RAM", mem),
        ("Python", platform.python_version()),
        ("numpy", numpy.__version__),
    ]
    try:
        import torch

        rows += [("torch", torch.__version__), ("torch threads", str(torch.get_num_threads()))]
    except ImportError:
        rows.append(("torch", "not installed"))
    try:
        from importlib.metadata import version

        rows += [("annoy", version("annoy")), ("Django", version("django")), ("gunicorn", version("gunicorn"))]
    except Exception:
        pass
    return rows


def django_setup(*, data_dir: Path, database_url: str | None = None, redis_url: str | None = None) -> None:
    """Configure Django on a scratch data directory (never ./var). Call before importing models."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "vsearch_site.settings"
    os.environ["VSEARCH_DATA_DIR"] = str(data_dir)
    os.environ.pop("VSEARCH_MEDIA_ROOT", None)
    os.environ.pop("VSEARCH_PRIVATE_ROOT", None)
    os.environ["VSEARCH_ALLOW_DOWNLOADS"] = os.environ.get("VSEARCH_ALLOW_DOWNLOADS", "0")
    os.environ["VSEARCH_TASKS"] = "eager"
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def scratch_dir(prefix: str) -> Path:
    """A fresh directory under /tmp for VSEARCH_DATA_DIR, removed when the process exits."""
    path = Path(tempfile.mkdtemp(prefix=f"vsearch-bench-{prefix}-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def postgres_available() -> str | None:
    """None if the bench PostgreSQL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3):
            return None
    except Exception as exc:
        return f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def postgres_create(name: str) -> str:
    """A fresh, empty scratch database (dropped first if a killed run left it); returns its URL."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def postgres_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_BENCH_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


def explain(sql: str) -> str:
    """The query plan, with timings on PostgreSQL (EXPLAIN ANALYZE) and the plan alone on SQLite."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            return "\n".join(r[0] for r in cursor.fetchall())
        cursor.execute("EXPLAIN QUERY PLAN " + sql)
        return "\n".join(" ".join(str(c) for c in r) for r in cursor.fetchall())
