"""The world a simulated crowd votes in: the demo catalog with the default models and gold cards, built once
(through the project's own commands) and copied fresh for every run; and the server that serves it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.common import CACHE_DIR, REPO, emit

WORLD_VERSION = 4  # bump when what a world holds changes (migrations, default variants, gold cards)


def world_dir(items: int, seed: int) -> Path:
    return CACHE_DIR / f"crowd-world-v{WORLD_VERSION}-{items}-s{seed}"


def _manage(data_dir: Path, *args: str, extra_env: dict | None = None) -> None:
    env = _env(data_dir, **(extra_env or {}))
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True)


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VSEARCH_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="vsearch_site.settings",
        DJANGO_SECRET_KEY="crowd-simulation",
        VSEARCH_DATA_DIR=str(data_dir),
        VSEARCH_ALLOW_DOWNLOADS="0",
    )
    env.update(extra)
    return env


def build_world(items: int, seed: int) -> Path:
    """The demo world (catalog, the ten default models, gold cards), built once and cached."""
    target = world_dir(items, seed)
    if (target / "ready").exists():
        return target
    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    emit(f"building the crowd world ({items} items; trains and featurizes once, minutes): {target}")
    eager = {"VSEARCH_TASKS": "eager"}
    _manage(building, "migrate", "--noinput", "-v", "0", extra_env=eager)
    _manage(building, "make_demo_catalog", "--n", str(items), "--seed", str(seed), "-v", "0", extra_env=eager)
    _manage(building, "build_variants", extra_env=eager)
    _manage(building, "make_gold_cards", "--count", "200", extra_env=eager)
    (building / "ready").write_text("ok")
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    return target


def fresh_copy(world: Path, scratch: Path) -> Path:
    """A copy of the world to vote in (votes never reach the cached world)."""
    for name in ("db.sqlite3", "secret_key"):
        if (world / name).exists():
            shutil.copy2(world / name, scratch / name)
    for folder in ("media", "private"):
        if (world / folder).exists():
            shutil.copytree(world / folder, scratch / folder, dirs_exist_ok=True)
    return scratch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn (the production app server) on loopback over a world's copy, one sync worker: the crowd asks one
    question at a time, and SQLite has one writer."""

    def __init__(self, data_dir: Path, *, settings: dict[str, str]):
        self.port = free_port()
        self.data_dir = data_dir
        self.env = _env(
            data_dir,
            VSEARCH_TASKS="thread",
            VSEARCH_NUM_PROXIES="1",  # each simulated visitor sends its own X-Forwarded-For address
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            VSEARCH_BIND=f"127.0.0.1:{self.port}",
            VSEARCH_WEB_WORKERS="1",
            **settings,
        )
        self.process: subprocess.Popen | None = None
        self.log = data_dir / "server.log"

    def __enter__(self) -> Server:
        gunicorn = Path(sys.executable).parent / "gunicorn"
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [str(gunicorn), "-c", "vsearch_site/gunicorn.conf.py", "vsearch_site.wsgi"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not start: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def world_cards(items: int, seed: int) -> Path:
    """The world's cards (each pair's makers by name, and what it shows), dumped once beside the world."""
    world = build_world(items, seed)
    target = world / "cards.json"
    if not target.exists():
        subprocess.run(
            [sys.executable, "-m", "bench.crowd.world", str(world), str(target)], cwd=REPO, env=_env(world), check=True
        )
    return target


def _dump_cards(world: Path, target: Path) -> None:
    import json

    import django

    django.setup()
    from matching.models import MatchPair, Variant

    ready = dict(Variant.objects.filter(status="ready").values_list("id", "name"))
    cards: dict[int, dict] = {}
    for pair_id, variant_id, qc, qa, mc, ma in MatchPair.objects.filter(variant_id__in=ready).values_list(
        "pair_id",
        "variant_id",
        "pair__query_item__category",
        "pair__query_item__attributes",
        "pair__match_item__category",
        "pair__match_item__attributes",
    ):
        card = cards.setdefault(
            pair_id,
            {
                "makers": [],
                "look": [qc == mc, (qa or {}).get("colour") == (ma or {}).get("colour"),
                         (qa or {}).get("pattern") == (ma or {}).get("pattern")],
            },
        )  # fmt: skip
        card["makers"].append(ready[variant_id])
    with atomic_json(target) as fh:
        json.dump({"variants": sorted(ready.values()), "cards": cards}, fh)


class atomic_json:
    def __init__(self, target: Path):
        self.target, self.tmp = target, target.with_suffix(".tmp")

    def __enter__(self):
        self.fh = self.tmp.open("w")
        return self.fh

    def __exit__(self, *exc):
        self.fh.close()
        if exc[0] is None:
            self.tmp.replace(self.target)


if __name__ == "__main__":
    _dump_cards(Path(sys.argv[1]), Path(sys.argv[2]))
