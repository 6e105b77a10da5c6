"""The build of a variant, as separate rerunnable steps with files between them:

featurize (features .npy + item ids) -> index (.ann + metadata) -> pairs (MatchPair rows) -> evaluate, and the
map of its features (layout .npz + thumbnails), which the variant does not wait for.

State lives in the database, so every step is idempotent: a step is claimed with a conditional UPDATE
(one process runs it; a redelivered copy whose owner is alive does nothing), a finished step is a no-op,
a step cut off half-way resumes, and unique constraints make duplicate pairs impossible.

The same steps refresh a ready variant whose catalog changed (services.variant_refresh): featurizing embeds only
the items its features lack, the index is built again, and only the queries whose neighbours changed get new
pairs. A refreshing variant stays ready and in the rotation, with its stage showing the step under way.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import time

import numpy as np
from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from matching import featurizing, index, signals
from matching.claims import new_owner as _owner
from matching.claims import owner_alive
from matching.evaluation import precision_at, recall_with_ties
from matching.features import (
    array_save,
    catalog_ids,
    feature_dir,
    features_current,
    features_load,
    features_read,
    features_rows,
    items_path,
    items_read,
)
from matching.featurizers import FeaturizerError
from matching.layout import layout_2d
from matching.models import FeatureRun, FeatureSet, Item, Layout, MatchPair, Metric, Pair, Variant
from matching.storage import atomic_file, private_path
from matching.thumbnails import thumbnails_ensure
from vsearch_site import metrics

log = logging.getLogger(__name__)

STAGES = ("featurizing", "indexing", "pairs", "evaluating")
# Share of the progress bar each stage fills (featurizing dominates the wall time).
STAGE_SPAN = {"featurizing": (0.0, 0.5), "indexing": (0.5, 0.6), "pairs": (0.6, 0.95), "evaluating": (0.95, 1.0)}
PAIR_CHUNK = 200  # queries per transaction: a query has all its k pairs or none
CHECK_CHUNK = 4096  # stored queries compared with the added items per block (4096 x 4096-d float32: 64 MB)
EVAL_QUERIES = 500  # recall is estimated on at most this many queries
CALIBRATION_QUERIES = 200  # queries behind the choice of search_k
TARGET_RECALL = 0.95  # search_k=-1 doubles Annoy's budget until recall@k on a sample reaches this


class BuildError(Exception):
    """A build cannot go on; the message tells a person what to do."""


# ---------------------------------------------------------------------------------------- claiming a step


def _claim(variant_id: int, stage: str) -> tuple[Variant, str] | None:
    """Take the variant's `stage` for this process, or None when there is nothing to do: the variant is built (and no
    refresh asked for), failed or gone, the stage is already behind it, or another live process holds it."""
    row = Variant.objects.filter(pk=variant_id).values("status", "stage", "claimed_by", "heartbeat_at").first()
    if row is None or row["status"] == Variant.Status.FAILED:
        return None
    if row["status"] == Variant.Status.READY and row["stage"] == Variant.Stage.READY:
        return None
    if row["stage"] in STAGES:
        if STAGES.index(row["stage"]) > STAGES.index(stage):
            return None  # this step finished; a later one is under way
        if owner_alive(row["claimed_by"], row["heartbeat_at"]):
            return None  # a redelivered copy: the process that has it is alive
    return _take(variant_id, stage, row)


def _take(variant_id: int, stage: str, row: dict) -> tuple[Variant, str] | None:
    """Check-then-write would let two deliveries of one step both run: this UPDATE is conditional on the row
    being exactly as read, and only the process whose UPDATE changed one row goes on (healthchecks'
    sendalerts claims its flips the same way). A ready variant being refreshed stays ready (in the rotation)."""
    owner = _owner()
    now = timezone.now()
    fields = {
        "status": Variant.Status.READY if row["status"] == Variant.Status.READY else Variant.Status.RUNNING,
        "stage": stage,
        "claimed_by": owner,
        "heartbeat_at": now,
        "progress": STAGE_SPAN[stage][0],
    }
    if row["status"] == Variant.Status.QUEUED:
        fields["started_at"] = now
    claimed = Variant.objects.filter(
        pk=variant_id, status=row["status"], stage=row["stage"], claimed_by=row["claimed_by"]
    ).update(**fields)
    if claimed != 1:
        return None  # another process changed the row between the read and the write: it has the step
    return Variant.objects.select_related("feature_set").get(pk=variant_id), owner


@contextlib.contextmanager
def claimed_stage(variant_id: int, stage: str):
    """Claim one stage of a variant's build and run the block as its owner; yields the variant, or None when
    there is nothing to do. A failure marks the variant failed with a message to act on; the claim is
    released either way, so the next step (or a rebuild) can take the variant."""
    claim = _claim(variant_id, stage)
    if claim is None:
        yield None
        return
    variant, owner = claim
    try:
        with metrics.build_step_timed(stage):
            yield variant
    except (BuildError, FeaturizerError) as exc:
        _fail(variant_id, owner, str(exc))
    except OperationalError:
        _release(variant_id, owner)
        raise  # the database blinked: the task retries, the step resumes
    except Exception as exc:
        log.exception("variant %s failed while %s", variant_id, stage)
        _fail(
            variant_id, owner, f"Unexpected error while {stage}: {exc.__class__.__name__}: {exc}. See the worker log."
        )
    else:
        _release(variant_id, owner)


def _release(variant_id: int, owner: str) -> None:
    Variant.objects.filter(pk=variant_id, claimed_by=owner).update(claimed_by="")


def _fail(variant_id: int, owner: str, message: str) -> None:
    """A build fails the variant; a refresh leaves it ready with the pairs it has (still whole per query) and says
    why, so that it can be refreshed again."""
    if Variant.objects.filter(pk=variant_id, claimed_by=owner, status=Variant.Status.READY).update(
        stage=Variant.Stage.READY, progress=1.0, error=f"Refresh failed: {message}", claimed_by=""
    ):
        signals.rotation_changed.send(sender=Variant, variant_id=variant_id, reason="ready")  # its pairs may differ
        return
    Variant.objects.filter(pk=variant_id, claimed_by=owner).update(
        status=Variant.Status.FAILED, error=message, claimed_by=""
    )


def _progress(variant_id: int, stage: str, fraction: float) -> None:
    """Progress is also the owner's heartbeat."""
    low, high = STAGE_SPAN[stage]
    Variant.objects.filter(pk=variant_id).update(
        progress=low + (high - low) * min(1.0, fraction), heartbeat_at=timezone.now()
    )


def _run_progress(variant_id: int | None = None):
    """A featurizing run's progress (the sum over its chunks) shown on every variant waiting for it; the heartbeat
    of `variant_id`'s claim."""

    def report(run: FeatureRun, fraction: float) -> None:
        low, high = STAGE_SPAN["featurizing"]
        Variant.objects.filter(
            feature_set__in=featurizing.siblings(run.feature_set), stage=Variant.Stage.FEATURIZING
        ).update(progress=low + (high - low) * min(1.0, fraction))
        if variant_id is not None:
            Variant.objects.filter(pk=variant_id).update(heartbeat_at=timezone.now())

    return report


# ---------------------------------------------------------------------------------------- steps


def variant_featurize(*, variant_id: int, distribute: bool = False) -> int | None:
    """Bring the variant's features up to the catalog: plan a featurizing run for the items they lack (or join the
    one under way), embed its chunks here in order and merge. `distribute`: plan only, and return the run's id for
    chunk tasks to share (None when the features already hold the catalog)."""
    with claimed_stage(variant_id, "featurizing") as variant:
        if variant is None or variant.metric == Metric.RANDOM:
            return None
        run = featurizing.run_plan(feature_set=variant.feature_set)
        if distribute and run is not None:
            return run.pk
        featurizing.run_finish(feature_set=variant.feature_set, run=run, progress=_run_progress(variant_id))
    return None


def variant_featurize_finish(*, variant_id: int, run_id: int) -> None:
    """Finish a run whose chunks went to the workers: embed the chunks no one has taken (or whose owner died) here,
    wait for those live processes hold, merge, and stop the build with the run's message if it failed."""
    with claimed_stage(variant_id, "featurizing") as variant:
        if variant is None or variant.metric == Metric.RANDOM:
            return
        run = FeatureRun.objects.filter(pk=run_id).first()
        featurizing.run_finish(feature_set=variant.feature_set, run=run, progress=_run_progress(variant_id))


def chunk_featurize(*, chunk_id: int) -> None:
    """One chunk of a featurizing run, in whichever worker got it; its progress shows on the variants waiting."""
    featurizing.chunk_featurize(chunk_id=chunk_id, progress=_run_progress())


def index_relative_path(variant: Variant) -> str:
    return f"indexes/variant-{variant.pk}.ann"


def variant_index(*, variant_id: int) -> None:
    """Build the Annoy index unless one for these features is already in place."""
    with claimed_stage(variant_id, "indexing") as variant:
        if variant is None or variant.metric == Metric.RANDOM:
            return
        fs = variant.feature_set
        if fs.status != FeatureSet.Status.READY:
            raise BuildError(f"Features {fs} are not ready ({fs.status}): {fs.error or 'build them first'}.")
        relative = index_relative_path(variant)
        if variant.index_path == relative and _index_current(variant, fs):
            return
        _index_write(variant, fs)
        with transaction.atomic():
            if variant.features_generation != fs.generation:
                # Features of another generation (the weights changed): every stored neighbour is void. Appended
                # items do not void them: the pairs step redoes the queries they change.
                MatchPair.objects.filter(variant_id=variant_id).delete()
                private_path(items_path(variant_id)).unlink(missing_ok=True)
            Variant.objects.filter(pk=variant_id).update(
                index_path=relative, search_k_used=None, features_generation=fs.generation
            )


def _index_current(variant: Variant, fs: FeatureSet) -> bool:
    target = private_path(index_relative_path(variant))
    return (
        variant.features_generation == fs.generation
        and target.exists()
        and target.stat().st_mtime >= private_path(fs.path).stat().st_mtime
    )


def _index_write(variant: Variant, fs: FeatureSet) -> None:
    """Over every row of the feature file: a row whose item was deleted since stays, never returned (see _annoy)."""
    _, vectors = features_read(fs)
    target = private_path(index_relative_path(variant))
    index.AnnoySearch(variant.metric, n_trees=variant.n_trees, seed=variant.seed).fit(vectors).save(target)


def _annoy(variant: Variant, fs: FeatureSet, rows: np.ndarray, groups: np.ndarray) -> index.AnnoySearch:
    """The variant's index seen over the feature rows still in the catalog; built again first if its features got
    a newer revision since (another variant's refresh)."""
    if not _index_current(variant, fs):
        _index_write(variant, fs)
    return index.AnnoySearch.load(private_path(index_relative_path(variant))).view(rows=rows, groups=groups)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64, elementwise: a fixed pseudo-random key per item id."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _query_positions(variant: Variant, ids: np.ndarray) -> np.ndarray:
    """Every item, or a sample of `sample_size`: the items with the smallest keys for the variant's seed, so that a
    grown catalog keeps most of its sample (a new item enters it, displacing one, with the chance it would have in a
    fresh uniform sample) and a refresh redoes few queries."""
    if variant.sample_size and variant.sample_size < len(ids):
        keys = _mix(np.asarray(ids, dtype=np.uint64) ^ _mix(np.array([variant.seed], dtype=np.uint64))[0])
        return np.sort(np.argpartition(keys, variant.sample_size - 1)[: variant.sample_size])
    return np.arange(len(ids))


def copy_groups(ids: np.ndarray) -> np.ndarray:
    """Per position: a group number shared by byte-identical images (never matched with each other). An item
    deleted meanwhile is in a group of its own."""
    wanted = set(ids.tolist())
    sha = {i: s for i, s in Item.objects.values_list("id", "sha256").iterator(chunk_size=20_000) if i in wanted}
    codes: dict[str, int] = {}
    return np.array([codes.setdefault(sha.get(int(i), f"#{int(i)}"), len(codes)) for i in ids], dtype=np.int64)


def variant_searcher(
    variant: Variant, ids: np.ndarray, vectors, groups: np.ndarray, rows: np.ndarray | None = None
) -> tuple[index.Searcher, str]:
    """The searcher a variant's pairs come from, and its name: as the variant's search says (exact, or its Annoy
    index at its search_k, whatever the catalog's size), or by size (auto: exact up to the metric's size limit, else
    Annoy at the calibrated search_k); random pairs for the control. `rows`: the feature file's row of each of `ids`
    (where the index has them)."""
    if variant.metric == Metric.RANDOM:
        return index.RandomPairs(seed=variant.seed, ids=ids).fit(groups=groups), ""
    exact = variant.search == Variant.Search.EXACT or (
        variant.search == Variant.Search.AUTO and len(ids) <= index.exact_limit(variant.metric)
    )
    if exact:
        return index.ExactSearch(variant.metric).fit(np.asarray(vectors), groups=groups), "exact"
    rows = np.arange(len(ids)) if rows is None else rows
    annoy = _annoy(variant, variant.feature_set, rows, groups)
    search_k = _search_k(variant, annoy, lambda: index.ExactSearch(variant.metric).fit(vectors, groups=groups))
    return annoy.set_query_arguments(search_k), "annoy"


class SeqPool:
    """Free seq numbers of a variant's rows (MatchPair.seq; serving draws them uniformly from 0..max): numbers freed
    by removed rows are given out again, lowest first, before new ones, so the range stays dense."""

    def __init__(self, used: np.ndarray):
        used = np.unique(np.asarray(used, dtype=np.int64))
        self.next = int(used[-1]) + 1 if len(used) else 0
        self.free = np.setdiff1d(np.arange(self.next), used).tolist()  # sorted: a heap already

    def take(self) -> int:
        if self.free:
            return heapq.heappop(self.free)
        self.next += 1
        return self.next - 1

    def give(self, seqs) -> None:
        for seq in seqs:
            heapq.heappush(self.free, int(seq))


class Stored:
    """A variant's stored rows, as arrays sorted by (query, rank); `at(query)` is the slice of one query's rows."""

    def __init__(self, variant_id: int):
        rows = MatchPair.objects.filter(variant_id=variant_id).order_by("query_item_id", "rank")
        fields = ("query_item_id", "pair__match_item_id", "rank", "distance", "seq")
        data = list(rows.values_list(*fields).iterator(chunk_size=20_000))
        columns = list(zip(*data, strict=True)) if data else [(), (), (), (), ()]
        self.query = np.array(columns[0], dtype=np.int64)
        self.match = np.array(columns[1], dtype=np.int64)
        self.rank = np.array(columns[2], dtype=np.int64)
        self.distance = np.array(columns[3], dtype=np.float64)
        self.seq = np.array(columns[4], dtype=np.int64)
        self.queries, self.start, self.count = np.unique(self.query, return_index=True, return_counts=True)

    def lookup(self, query_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per query id: (has rows, its first row, how many)."""
        if not len(self.queries):
            none = np.zeros(len(query_ids), dtype=np.int64)
            return np.zeros(len(query_ids), dtype=bool), none, none
        at = np.minimum(np.searchsorted(self.queries, query_ids), len(self.queries) - 1)
        has = self.queries[at] == query_ids
        return has, np.where(has, self.start[at], 0), np.where(has, self.count[at], 0)


def variant_pairs(*, variant_id: int) -> None:
    """Store each query's top-k neighbours (never itself, never a byte-identical copy), resuming where it stopped.

    On a variant whose pairs were stored before, only what changed is done again: queries without pairs (new items,
    or the rest of an interrupted build), queries that lost a neighbour (an item deleted), and queries that an item
    added since comes nearer to than their k-th; every other query keeps its rows as they are. The items the pairs
    were computed over are written last (`items_path`): what a later refresh compares the catalog with.
    """
    with claimed_stage(variant_id, "pairs") as variant:
        if variant is None:
            return
        catalog = catalog_ids()
        if variant.metric == Metric.RANDOM:
            ids, vectors, rows = catalog, None, None
        else:
            ids, vectors, rows = features_rows(variant.feature_set, catalog)
        if len(ids) < 2:
            raise BuildError(f"The catalog has {len(ids)} item(s); matching needs at least two.")
        groups = copy_groups(ids)
        searcher, search = variant_searcher(variant, ids, vectors, groups, rows)
        Variant.objects.filter(pk=variant_id).update(pairs_search=search)
        _pairs_update(variant, ids, vectors, groups, searcher)
        array_save(items_path(variant_id), ids)


def _pairs_update(variant: Variant, ids: np.ndarray, vectors, groups: np.ndarray, searcher: index.Searcher) -> None:
    k = variant.k
    stored = Stored(variant.pk)
    pool = SeqPool(stored.seq)
    positions = _query_positions(variant, ids)

    # Queries that are no longer asked (their item left the sample; a deleted item's rows went with it).
    leaving = stored.queries[~np.isin(stored.queries, ids[positions])]
    if len(leaving):
        gone = MatchPair.objects.filter(variant_id=variant.pk, query_item_id__in=leaving.tolist())
        pool.give(gone.values_list("seq", flat=True))
        gone.delete()

    before = items_read(variant.pk)
    if before is None:
        if len(stored.query):  # stored before items files were kept: the items its rows name
            before = np.union1d(stored.query, stored.match)
        else:  # a first build: it covers these items (a resumed build reads them back)
            array_save(items_path(variant.pk), ids)
            before = ids
    added = np.flatnonzero(~np.isin(ids, before))

    has, start, count = stored.lookup(ids[positions])
    sizes = np.bincount(groups)
    expected = np.minimum(k, len(ids) - sizes[groups[positions]])
    top_rank = np.full(len(positions), -1)
    if len(stored.rank):
        top_rank = np.where(has, stored.rank[np.where(has, start + count - 1, 0)], -1)
    # Whole: every rank 0..expected-1 is there (ranks are unique per query, so the last one says it).
    whole = has & (count == expected) & (top_rank == expected - 1)
    todo = list(positions[~whole])
    if len(added) and variant.metric != Metric.RANDOM:
        todo += _entered(variant, ids, vectors, groups, positions[whole], stored, start[whole], count[whole], added)
    todo = sorted(set(int(p) for p in todo))
    at = {int(p): (bool(h), int(s), int(c)) for p, h, s, c in zip(positions, has, start, count, strict=True)}

    for chunk_start in range(0, len(todo), PAIR_CHUNK):
        chunk = todo[chunk_start : chunk_start + PAIR_CHUNK]
        top, dist = searcher.neighbours(np.array(chunk, dtype=np.int64), k)
        found = {}
        for row, p in enumerate(chunk):
            h, s, c = at[p]
            old = stored.match[s : s + c].tolist() if h else []
            if variant.metric == Metric.RANDOM and old:
                new = _random_keeping(searcher, p, old, ids, k)
            else:
                new = [(int(n), float(d)) for n, d in zip(top[row], dist[row], strict=True) if n >= 0]
            if [int(ids[n]) for n, _ in new] != old:
                found[p] = new
        if found:
            _store_pairs(variant, ids, found, pool)
        _progress(variant.pk, "pairs", (chunk_start + len(chunk)) / len(todo))


def _entered(variant, ids, vectors, groups, checked, stored: Stored, start, count, added) -> list[int]:
    """The stored, whole queries that some added item comes nearer to than their k-th neighbour, by exact distances
    (whatever searcher made the pairs): O(queries x added x dim), in blocks."""
    kth = stored.distance[start + count - 1]
    candidates = np.asarray(vectors[added])
    out = []
    for block in range(0, len(checked), CHECK_CHUNK):
        part = checked[block : block + CHECK_CHUNK]
        nearer = index.nearer_than(
            np.asarray(vectors[part]),
            candidates,
            variant.metric,
            kth[block : block + CHECK_CHUNK],
            query_groups=groups[part],
            candidate_groups=groups[added],
        )
        out += part[nearer].tolist()
    return out


def _random_keeping(searcher: index.Searcher, p: int, old: list[int], ids: np.ndarray, k: int):
    """The random control's picks for a query that lost some (their items were deleted): the surviving picks first,
    so their votes keep counting, then fresh ones; distances are ranks."""
    top, _ = searcher.neighbours(np.array([p], dtype=np.int64), k + len(old))
    position = {int(i): n for n, i in enumerate(ids)}
    kept = [position[m] for m in old if m in position]
    fresh = [int(n) for n in top[0] if n >= 0 and int(n) not in set(kept)]
    return [(n, float(rank)) for rank, n in enumerate((kept + fresh)[:k])]


def _store_pairs(variant: Variant, ids: np.ndarray, found: dict[int, list[tuple[int, float]]], pool: SeqPool):
    """Replace the rows of each query in `found` by its new neighbours, in one transaction (a query has all its
    pairs or none). Pair rows (what votes are on) are shared and kept; a pair that stays keeps its id."""
    query_ids = [int(ids[q]) for q in found]
    wanted = {(int(ids[q]), int(ids[m])) for q, rows in found.items() for m, _ in rows}
    with transaction.atomic():
        old = MatchPair.objects.filter(variant_id=variant.pk, query_item_id__in=query_ids)
        freed = list(old.values_list("seq", flat=True))
        old.delete()
        pool.give(freed)
        Pair.objects.bulk_create(
            [Pair(query_item_id=q, match_item_id=m) for q, m in wanted], ignore_conflicts=True, batch_size=2000
        )
        stored = Pair.objects.filter(query_item_id__in=query_ids).values_list("id", "query_item_id", "match_item_id")
        pair_ids = {(q, m): pk for pk, q, m in stored}
        MatchPair.objects.bulk_create(
            [
                MatchPair(
                    variant=variant,
                    pair_id=pair_ids[(int(ids[q]), int(ids[m]))],
                    query_item_id=int(ids[q]),
                    rank=rank,
                    distance=float(distance),
                    seq=pool.take(),
                )
                for q, rows in found.items()
                for rank, (m, distance) in enumerate(rows)
            ],
            batch_size=2000,
        )


def variant_evaluate(*, variant_id: int) -> None:
    """P@1 and P@k of the stored pairs against categories; recall@k of the Annoy index. Then: ready."""
    with claimed_stage(variant_id, "evaluating") as variant:
        if variant is None:
            return
        rows = list(
            MatchPair.objects.filter(variant_id=variant_id)
            .order_by("query_item_id", "rank")
            .values_list("query_item_id", "pair__match_item_id", "rank", "distance")
        )
        if not rows:
            raise BuildError("No pairs were stored: the catalog may be too small for this variant.")
        categories = dict(Item.objects.values_list("id", "category"))
        codes = {c: i for i, c in enumerate(sorted(set(categories.values())))}
        queries = sorted({q for q, *_ in rows})
        qpos = {q: i for i, q in enumerate(queries)}
        matches = np.full((len(queries), variant.k), -1, dtype=np.int64)
        for q, m, rank, _ in rows:
            matches[qpos[q], rank] = codes[categories[m]]
        qcats = np.array([codes[categories[q]] for q in queries])
        p1, pk = precision_at(qcats, matches)
        recall = None
        if variant.metric != Metric.RANDOM:
            recall = _recall(variant, queries)
        # A refreshed model keeps the day it joined (the leaderboard marks models new by it).
        refreshed = variant.status == Variant.Status.READY and variant.ready_at
        Variant.objects.filter(pk=variant_id).update(
            p_at_1=p1,
            p_at_k=pk,
            recall_at_k=recall,
            status=Variant.Status.READY,
            stage=Variant.Stage.READY,
            progress=1.0,
            error="",
            ready_at=variant.ready_at if refreshed else timezone.now(),
        )
    if variant is not None:
        signals.rotation_changed.send(sender=Variant, variant_id=variant_id, reason="ready")


def _recall(variant: Variant, queries: list[int]) -> float:
    """Annoy's recall@k against exact search with the same metric, on a sample of the queries.

    Measured on the index even when the pairs came from exact search, so the figure always
    says how good the index is.
    """
    ids, vectors, rows = features_rows(variant.feature_set)
    position = {int(i): p for p, i in enumerate(ids)}
    queries = [q for q in queries if q in position]  # an item deleted since its pairs were stored is left out
    groups = copy_groups(ids)
    rng = np.random.default_rng(variant.seed)
    chosen = np.sort(rng.choice(len(queries), size=min(EVAL_QUERIES, len(queries)), replace=False))
    qpos = np.array([position[queries[i]] for i in chosen])
    annoy = _annoy(variant, variant.feature_set, rows, groups)
    exact = index.ExactSearch(variant.metric).fit(np.asarray(vectors), groups=groups)
    # The budget the pairs were searched with (search_k_used); exact-search variants never set it.
    return recall_probe(variant.k, annoy, exact, qpos)(variant.search_k_used or variant.search_k)


def recall_probe(k: int, annoy: index.AnnoySearch, exact: index.ExactSearch, qpos: np.ndarray):
    """search_k -> Annoy's recall@k on the catalog rows at `qpos` (exact neighbours found once, up front).

    Annoy's answers are scored by exact distances, so ties compare like for like.
    """
    _, exact_dist = exact.neighbours(qpos, k)
    kth = np.array([row[np.isfinite(row)][-1] if np.isfinite(row).any() else np.inf for row in exact_dist])

    def recall_at(search_k: int) -> float:
        found = np.full((len(qpos), k), np.inf)
        top, _ = annoy.set_query_arguments(search_k).neighbours(qpos, k)
        for r, p in enumerate(qpos.tolist()):
            neighbours = [n for n in top[r] if n >= 0]
            if neighbours:
                found[r, : len(neighbours)] = index.exact_distances(
                    exact.vectors[[p]], exact.vectors[neighbours], exact.metric
                )[0]
        return recall_with_ties(found, kth, k)

    return recall_at


def _search_k(variant: Variant, annoy: index.AnnoySearch, exact_search) -> int:
    """The search_k to query with: the variant's own, else the smallest doubling of Annoy's default budget
    that reaches TARGET_RECALL on a sample (50 trees at the default budget fell to recall 0.82 at 100k
    items: docs/BENCHMARKS.md, index). Kept on the variant until its index is rebuilt."""
    if variant.search_k != -1 or variant.search_k_used:
        search_k = variant.search_k if variant.search_k != -1 else variant.search_k_used
        Variant.objects.filter(pk=variant.pk).update(search_k_used=search_k)
        return search_k
    search_k = calibrated_search_k(variant, annoy, exact_search())
    Variant.objects.filter(pk=variant.pk).update(search_k_used=search_k)
    log.info("%s: search_k %d reaches recall@%d >= %.2f", variant, search_k, variant.k, TARGET_RECALL)
    return search_k


def calibrated_search_k(variant: Variant, annoy: index.AnnoySearch, exact: index.ExactSearch) -> int:
    n = len(exact.vectors)
    rng = np.random.default_rng(variant.seed)
    qpos = np.sort(rng.choice(n, size=min(CALIBRATION_QUERIES, n), replace=False))
    recall_at = recall_probe(variant.k, annoy, exact, qpos)
    search_k = variant.n_trees * (variant.k + 1)  # what Annoy does with -1
    while recall_at(search_k) < TARGET_RECALL and search_k < variant.n_trees * n:
        search_k *= 2  # at n_trees * n every tree is read whole: the search is exhaustive
    return search_k


# ---------------------------------------------------------------------------------------- the map


def layout_relative_path(feature_set: FeatureSet) -> str:
    return f"{feature_dir(feature_set)}/{feature_set.layer}.layout.npz"


def layout_current(layout: Layout) -> bool:
    """The map's file exists and is at least as new as the features it was laid out from."""
    fs = layout.feature_set
    if layout.status != Layout.Status.READY or not layout.path or not fs.path:
        return False
    target, features = private_path(layout.path), private_path(fs.path)
    return target.exists() and features.exists() and target.stat().st_mtime >= features.stat().st_mtime


def _layout_claim(feature_set_id: int) -> tuple[Layout, str] | None:
    """Take the feature set's map for this process, or None: a current one exists, or a live process is at it.
    A conditional UPDATE on the row as read, as `_take` does for a variant's steps."""
    layout, _ = Layout.objects.get_or_create(feature_set_id=feature_set_id)
    layout = Layout.objects.select_related("feature_set").get(pk=layout.pk)
    if layout_current(layout):
        return None
    if layout.status == Layout.Status.RUNNING and owner_alive(layout.claimed_by, layout.heartbeat_at):
        return None
    owner = _owner()
    claimed = Layout.objects.filter(pk=layout.pk, status=layout.status, claimed_by=layout.claimed_by).update(
        status=Layout.Status.RUNNING, claimed_by=owner, heartbeat_at=timezone.now(), error=""
    )
    if claimed != 1:
        return None
    return layout, owner


def feature_set_layout(*, feature_set_id: int) -> Layout | None:
    """Lay a ready feature set's items out in 2-D (PCA, then t-SNE), written atomically beside the features, and
    make the thumbnails the map draws. A no-op when a current map exists or another live process is making it;
    a failure marks the map failed with a message and leaves any earlier file in place."""
    claim = _layout_claim(feature_set_id)
    if claim is None:
        return Layout.objects.filter(feature_set_id=feature_set_id).first()
    layout, owner = claim
    mine = Layout.objects.filter(pk=layout.pk, claimed_by=owner)

    def alive(_fraction: float = 0.0) -> None:
        mine.update(heartbeat_at=timezone.now())

    try:
        fs = layout.feature_set
        if fs.status != FeatureSet.Status.READY or not features_current(fs):
            raise BuildError(f"Features {fs} are not ready ({fs.status}): build a variant on them first.")
        ids, vectors = features_load(fs)
        started = time.perf_counter()
        xy = layout_2d(vectors, seed=0, n_jobs=settings.VSEARCH_LAYOUT_THREADS, heartbeat=alive)
        seconds = time.perf_counter() - started
        relative = layout_relative_path(fs)
        with atomic_file(private_path(relative)) as tmp, tmp.open("wb") as fh:
            np.savez(fh, ids=np.asarray(ids, dtype=np.int64), xy=xy)
        wanted = set(ids.tolist())
        rows = Item.objects.values_list("id", "image", "sha256", "crop_key", "bbox").iterator(chunk_size=2000)
        thumbnails_ensure((row[1:] for row in rows if row[0] in wanted), progress=alive)
    except OperationalError:
        mine.update(claimed_by="")
        raise  # the database blinked: the task retries
    except Exception as exc:
        if not isinstance(exc, BuildError):
            log.exception("map of feature set %s failed", feature_set_id)
        message = str(exc) if isinstance(exc, BuildError) else f"{exc.__class__.__name__}: {exc}"
        mine.update(status=Layout.Status.FAILED, error=message, claimed_by="")
        return Layout.objects.get(pk=layout.pk)
    mine.update(
        status=Layout.Status.READY,
        path=relative,
        n_items=len(ids),
        seconds=seconds,
        error="",
        claimed_by="",
        ready_at=timezone.now(),
    )
    return Layout.objects.get(pk=layout.pk)


def variant_layout(*, variant_id: int) -> None:
    """The map of the variant's features, once they are ready (a failed variant's features may still be)."""
    row = Variant.objects.filter(pk=variant_id).values("feature_set_id", "feature_set__status").first()
    if row is None or row["feature_set_id"] is None or row["feature_set__status"] != FeatureSet.Status.READY:
        return
    feature_set_layout(feature_set_id=row["feature_set_id"])


STEPS = (variant_featurize, variant_index, variant_pairs, variant_evaluate, variant_layout)


def variant_build_inline(*, variant_id: int) -> Variant:
    """Every step in this process, in order (eager mode, the thread runner, management commands)."""
    for step in STEPS:
        step(variant_id=variant_id)
    return Variant.objects.get(pk=variant_id)
