"""Bulk seeding for the API and leaderboard benches: COPY on PostgreSQL, executemany in big transactions on SQLite.

The world: `n_items` catalog rows (all pointing at one tiny PNG), four ready variants with k=10 matches per
item (three share some cards, the fourth is the random control), and votes from voters of 100 votes each.
Every row is a pure function of its index, so votes can be added in steps (10k, then up to 100k, ...).
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

K = 10
# Match offsets per variant: item i's rank-r match is item (i + offset) mod n. Variants 0-2 overlap by half,
# so one card can count for two variants (as the product allows); variant 3 is the random control.
OFFSETS = (tuple(range(1, 11)), tuple(range(6, 16)), tuple(range(11, 21)), tuple(range(100, 110)))
METRICS = ("l2", "cosine", "hamming", "random")
VOTES_PER_VOTER = 100
CHUNK = 200_000  # rows per executemany / COPY write
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class World:
    n_items: int
    offsets: tuple[int, ...] = field(init=False)
    stride: int = field(init=False)

    def __post_init__(self):
        self.offsets = tuple(sorted({d for group in OFFSETS for d in group}))
        # Voter j's t-th vote is on card (j * 7919 + t * stride) mod n_pairs: distinct for t < n_pairs when
        # stride and n_pairs are coprime, so no voter votes twice on a card.
        self.stride = next(p for p in (104_729, 130_363, 160_001) if math.gcd(p, self.n_pairs) == 1)

    @classmethod
    def for_match_pairs(cls, match_pairs: int) -> World:
        return cls(max(100, match_pairs // (len(OFFSETS) * K)))

    @property
    def n_pairs(self) -> int:
        return self.n_items * len({d for group in OFFSETS for d in group})

    @property
    def n_match_pairs(self) -> int:
        return self.n_items * len(OFFSETS) * K


def _vendor() -> str:
    from django.db import connection

    return connection.vendor


def _timestamps(start: int, stop: int, *, step_ms: int, sqlite: bool) -> list[str]:
    ts = np.datetime64(EPOCH.replace(tzinfo=None), "ms") + np.arange(start, stop, dtype=np.int64) * step_ms
    text = np.datetime_as_string(ts, unit="us")
    # Django keeps naive UTC text on SQLite and timestamptz on PostgreSQL.
    return np.char.replace(text, "T", " ").tolist() if sqlite else np.char.add(text, "+00").tolist()


class _Writer:
    """Append rows to a table by COPY (PostgreSQL) or executemany (SQLite); the caller holds the transaction."""

    def __init__(self, table: str, columns: tuple[str, ...]):
        self.table = table
        self.columns = columns
        self.sqlite = _vendor() == "sqlite"

    def write(self, columns: list[list]) -> None:
        from django.db import connection

        if self.sqlite:
            marks = ",".join("?" * len(self.columns))
            connection.connection.executemany(
                f"INSERT INTO {self.table} ({','.join(self.columns)}) VALUES ({marks})", zip(*columns, strict=True)
            )
            return
        buffer = io.StringIO()
        for row in zip(*columns, strict=True):
            buffer.write("\t".join(r"\N" if v is None else str(v) for v in row))
            buffer.write("\n")
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {self.table} ({','.join(self.columns)}) FROM STDIN") as copy,
        ):
            copy.write(buffer.getvalue())


class bulk:
    """One transaction for a bulk load, with the fast settings of each engine for its duration.

    SQLite: no fsync, a 1 GB page cache (the connection is closed after, so later queries get the defaults).
    PostgreSQL: replica mode skips the foreign-key triggers (rows are consistent by construction).
    """

    def __enter__(self):
        from django.db import connection

        connection.ensure_connection()
        self.sqlite = connection.vendor == "sqlite"
        if self.sqlite:
            raw = connection.connection
            raw.execute("PRAGMA synchronous=OFF")
            raw.execute("PRAGMA cache_size=-1048576")
            raw.execute("BEGIN")
        else:
            connection.set_autocommit(False)
            with connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = replica")
        return self

    def __exit__(self, exc_type, exc, tb):
        from django.db import connection

        if self.sqlite:
            connection.connection.execute("COMMIT" if exc_type is None else "ROLLBACK")
            connection.close()
            return
        if exc_type is None:
            with connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = DEFAULT")
            connection.commit()
        else:
            connection.rollback()
        connection.set_autocommit(True)


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def seed_catalog(world: World, media_root: Path) -> dict[str, float]:
    """Items, one feature set, the four variants, Pair and MatchPair rows; returns seconds per table."""
    from django.utils import timezone

    from matching.models import FeatureSet, Variant

    image = media_root / "items" / "bench.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 30, 40)).save(image)

    seconds: dict[str, float] = {}
    sqlite = _vendor() == "sqlite"
    n = world.n_items
    t0 = time.perf_counter()
    with bulk():
        w = _Writer(
            "matching_item",
            (
                "id",
                "sha256",
                "image",
                "category",
                "attributes",
                "bbox",
                "crop_key",
                "source",
                "width",
                "height",
                "created_at",
                "role",
            ),
        )
        for start in range(0, n, CHUNK):
            ids = list(range(start + 1, min(n, start + CHUNK) + 1))
            w.write(
                [
                    ids,
                    [f"{i:064x}" for i in ids],
                    ["items/bench.png"] * len(ids),
                    [f"category-{i % 10}" for i in ids],
                    ["{}"] * len(ids),
                    [None] * len(ids),
                    [""] * len(ids),
                    [""] * len(ids),
                    [8] * len(ids),
                    [8] * len(ids),
                    _timestamps(start, start + len(ids), step_ms=1, sqlite=sqlite),
                    ["catalog"] * len(ids),
                ]
            )
    seconds["items"] = time.perf_counter() - t0

    fs = FeatureSet.objects.create(
        featurizer="resnet18",
        layer="penultimate",
        weights="none",
        status=FeatureSet.Status.READY,
        dim=512,
        n_items=n,
        path="features/bench.npy",
    )
    ready = timezone.now() - timedelta(days=30)
    variants = [
        Variant.objects.create(
            name=f"bench-{i} · {metric}",
            metric=metric,
            feature_set=None if metric == "random" else fs,
            k=K,
            status=Variant.Status.READY,
            stage=Variant.Stage.READY,
            progress=1.0,
            started_at=ready,
            ready_at=ready,
            p_at_1=0.1 * (4 - i),
        )
        for i, metric in enumerate(METRICS)
    ]

    # Pair (query i, offset j) has id i * n_offsets + j + 1.
    n_off = len(world.offsets)
    t0 = time.perf_counter()
    with bulk():
        w = _Writer("matching_pair", ("id", "query_item_id", "match_item_id"))
        per_chunk = max(1, CHUNK // n_off)
        offsets = np.array(world.offsets, dtype=np.int64)
        for start in range(0, n, per_chunk):
            q = np.arange(start, min(n, start + per_chunk), dtype=np.int64)
            ids = (q[:, None] * n_off + np.arange(n_off)[None, :] + 1).ravel()
            matches = ((q[:, None] + offsets[None, :]) % n + 1).ravel()
            queries = np.repeat(q + 1, n_off)
            w.write([ids.tolist(), queries.tolist(), matches.tolist()])
    seconds["pairs"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    position = {d: j for j, d in enumerate(world.offsets)}
    next_id = 1
    with bulk():
        w = _Writer("matching_matchpair", ("id", "variant_id", "pair_id", "query_item_id", "rank", "distance", "seq"))
        per_chunk = max(1, CHUNK // K)
        for variant, group in zip(variants, OFFSETS, strict=True):
            cols = np.array([position[d] for d in group], dtype=np.int64)
            for start in range(0, n, per_chunk):
                q = np.arange(start, min(n, start + per_chunk), dtype=np.int64)
                rows = len(q) * K
                w.write(
                    [
                        list(range(next_id, next_id + rows)),
                        [variant.pk] * rows,
                        (q[:, None] * n_off + cols[None, :] + 1).ravel().tolist(),
                        np.repeat(q + 1, K).tolist(),
                        np.tile(np.arange(K), len(q)).tolist(),
                        np.tile(np.arange(K) * 0.1 + 1.0, len(q)).tolist(),
                        (q[:, None] * K + np.arange(K)[None, :]).ravel().tolist(),
                    ]
                )
                next_id += rows
    seconds["match pairs"] = time.perf_counter() - t0
    _reset_sequences()
    return seconds


def seed_votes(world: World, start: int, stop: int) -> float:
    """Votes with index in [start, stop) and the voters they need; returns seconds."""
    sqlite = _vendor() == "sqlite"
    t0 = time.perf_counter()
    n_off = len(world.offsets)
    # Approval rate by offset: near matches (small offsets) are liked more; the random control's cards least.
    p_dope = np.array([0.75 - 0.02 * j if d < 100 else 0.25 for j, d in enumerate(world.offsets)])
    with bulk():
        # Every NOT NULL column of Voter is written (Django keeps defaults in Python, not in the table): seeded voters
        # are reviewed, qualified and counted.
        voters = _Writer(
            "voting_voter",
            (
                "id",
                "uuid",
                "user_id",
                "created_at",
                "counted",
                "excluded",
                "reason",
                "flags",
                "staff_decision",
                "gold_right",
                "gold_wrong",
                "reviewed_votes",
            ),
        )
        first, last = -(-start // VOTES_PER_VOTER), -(-stop // VOTES_PER_VOTER)
        true, false = (1, 0) if sqlite else ("t", "f")
        for v0 in range(first, last, CHUNK):
            ids = list(range(v0 + 1, min(last, v0 + CHUNK) + 1))
            n = len(ids)
            voters.write(
                [
                    ids,
                    [f"{i:032x}" for i in ids],
                    [None] * n,
                    _timestamps(v0, v0 + n, step_ms=60_000, sqlite=sqlite),
                    [true] * n,
                    [false] * n,
                    [""] * n,
                    ["[]"] * n,
                    [""] * n,
                    [2] * n,
                    [0] * n,
                    [0] * n,
                ]
            )
        votes = _Writer(
            "voting_vote", ("id", "voter_id", "pair_id", "dope", "created_at", "shown_ms", "token_id", "ip")
        )
        for c0 in range(start, stop, CHUNK):
            i = np.arange(c0, min(stop, c0 + CHUNK), dtype=np.int64)
            voter = i // VOTES_PER_VOTER
            pair = (voter * 7919 + (i % VOTES_PER_VOTER) * world.stride) % world.n_pairs
            rng = np.random.default_rng(c0)
            dope = rng.random(len(i)) < p_dope[pair % n_off]
            votes.write(
                [
                    (i + 1).tolist(),
                    (voter + 1).tolist(),
                    (pair + 1).tolist(),
                    dope.astype(int).tolist() if sqlite else np.where(dope, "t", "f").tolist(),
                    _timestamps(c0, c0 + len(i), step_ms=500, sqlite=sqlite),
                    (500 + i % 4000).tolist(),
                    [f"bench{x:027x}" for x in i.tolist()],
                    ["127.0.0.1"] * len(i),
                ]
            )
    _reset_sequences()
    return time.perf_counter() - t0


def _reset_sequences() -> None:
    """Rows were written with explicit ids: move PostgreSQL's identity sequences past them (SQLite tracks its own)."""
    from django.core.management.color import no_style
    from django.db import connection

    from matching.models import Item, MatchPair, Pair
    from voting.models import Vote, Voter

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Item, Pair, MatchPair, Voter, Vote]):
            cursor.execute(sql)


def analyze() -> None:
    """Planner statistics, as autovacuum (PostgreSQL) would have gathered them on a live database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
