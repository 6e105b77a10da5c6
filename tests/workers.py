"""Real Celery workers and a private Redis for the tests that need them (services tests)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """The URL of the database this test runs in (pytest-django's test_ copy), for a worker process."""
    if connection.vendor != "postgresql":
        skip_or_fail(
            f"a worker process cannot see this {connection.vendor} test database: set DATABASE_URL to PostgreSQL"
        )
    db = connection.settings_dict
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    host = (db["HOST"] or "") + (f":{db['PORT']}" if db["PORT"] else "")
    return f"postgres://{credentials}{'@' if credentials else ''}{host}/{quote(db['NAME'])}"


def shared_redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("REDIS_URL is not set: this test needs a Redis broker")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {url} is unreachable ({exc})")
    return url


def start_worker(*, queue: str, redis_url: str, log: Path, **env) -> subprocess.Popen:
    """A solo-pool worker on its own queue (other runs may share the Redis)."""
    environment = dict(
        os.environ,
        DATABASE_URL=database_url(),
        REDIS_URL=redis_url,
        VSEARCH_TASKS="celery",
        VSEARCH_MEDIA_ROOT=str(settings.MEDIA_ROOT),
        VSEARCH_PRIVATE_ROOT=str(settings.VSEARCH_PRIVATE_ROOT),
        VSEARCH_DATA_DIR=str(log.parent / "worker-data"),
        VSEARCH_ALLOW_DOWNLOADS="0",
        DJANGO_SECRET_KEY="worker-test",
        **env,
    )
    command = [sys.executable, "-m", "celery", "-A", "vsearch_site", "worker", "-P", "solo", "-c", "1",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", queue, "-n", f"{queue}@%h",
               "-l", "info"]  # fmt: skip
    with log.open("a") as out:
        return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_redis(folder: Path, port: int | None = None):
    """A throwaway redis-server on loopback that a test may stop and start; yields (url, start, stop)."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server is not installed: this test starts and stops its own Redis")
    port = port or free_port()
    state: dict[str, subprocess.Popen | None] = {"process": None}

    def start() -> None:
        state["process"] = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def halt() -> None:
        if state["process"] is not None:
            stop(state["process"])
            state["process"] = None

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", start, halt
    finally:
        halt()


def wait_for(condition, timeout: float, every: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()
