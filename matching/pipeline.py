"""The build of a variant, as separate rerunnable steps with files between them:

featurize (features .npy + item ids) -> index (.ann + metadata) -> pairs (MatchPair rows) -> evaluate, and the
map of its features (layout .npz + thumbnails), which the variant does not wait for.

State lives in the database, so every step is idempotent: a step is claimed with a conditional UPDATE
(one process runs it; a redelivered copy whose owner is alive does nothing), a finished step is a no-op,
a step cut off half-way resumes, and unique constraints make duplicate pairs impossible.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone
from torch.utils.data import DataLoader

from matching import featurizers, index, signals
from matching.evaluation import precision_at, recall_with_ties
from matching.features import ItemImages, array_save, feature_dir, features_current, features_load
from matching.featurizers import FeaturizerError
from matching.layout import layout_2d
from matching.models import FeatureSet, Item, Layout, MatchPair, Metric, Pair, Variant
from matching.storage import atomic_file, private_path
from matching.thumbnails import thumbnails_ensure
from vsearch_site import metrics

log = logging.getLogger(__name__)

STAGES = ("featurizing", "indexing", "pairs", "evaluating")
# Share of the progress bar each stage fills (featurizing dominates the wall time).
STAGE_SPAN = {"featurizing": (0.0, 0.5), "indexing": (0.5, 0.6), "pairs": (0.6, 0.95), "evaluating": (0.95, 1.0)}
PAIR_CHUNK = 200  # queries per transaction: a query has all its k pairs or none
EVAL_QUERIES = 500  # recall is estimated on at most this many queries
CALIBRATION_QUERIES = 200  # queries behind the choice of search_k
TARGET_RECALL = 0.95  # search_k=-1 doubles Annoy's budget until recall@k on a sample reaches this


class BuildError(Exception):
    """A build cannot go on; the message tells a person what to do."""


# ---------------------------------------------------------------------------------------- features


def feature_set_compute(*, feature_set: FeatureSet, progress=None) -> FeatureSet:
    """Embed every catalog item with every layer of the featurizer in one pass; other layers' sets are filled too.

    Files are written only once every layer's features are complete and finite; a failure marks the set failed.
    """
    feature_set.refresh_from_db()
    if feature_set.status == FeatureSet.Status.READY and features_current(feature_set):
        return feature_set
    if feature_set.featurizer == "embeddings":
        raise BuildError("The uploaded embeddings' files are missing from the build storage: upload them again.")
    rows = list(Item.objects.order_by("id").values_list("id", "image", "bbox"))
    if not rows:
        raise BuildError(
            "The catalog is empty: import images first (manage.py import_catalog PATH or make_demo_catalog)."
        )
    try:
        out, seconds = _embed_all(feature_set, rows, progress)
    except Exception as exc:
        message = str(exc) if isinstance(exc, BuildError | FeaturizerError) else f"{exc.__class__.__name__}: {exc}"
        FeatureSet.objects.filter(pk=feature_set.pk).update(status=FeatureSet.Status.FAILED, error=message)
        raise

    folder = feature_dir(feature_set)
    array_save(f"{folder}/ids.npy", np.array([r[0] for r in rows], dtype=np.int64))
    for layer, values in out.items():
        array_save(f"{folder}/{layer}.npy", values)
        FeatureSet.objects.filter(featurizer=feature_set.featurizer, weights=feature_set.weights, layer=layer).update(
            status=FeatureSet.Status.READY,
            path=f"{folder}/{layer}.npy",
            dim=values.shape[1],
            n_items=len(rows),
            progress=1.0,
            error="",
            seconds=seconds,
        )
    feature_set.refresh_from_db()
    return feature_set


def _embed_all(feature_set: FeatureSet, rows: list, progress) -> tuple[dict[str, np.ndarray], float]:
    featurizer = featurizers.get(feature_set.featurizer, feature_set.weights)
    FeatureSet.objects.filter(pk=feature_set.pk).update(status=FeatureSet.Status.RUNNING, error="", progress=0.0)
    started = time.perf_counter()
    loader = DataLoader(
        ItemImages(rows, featurizer.transform),
        batch_size=settings.VSEARCH_BATCH_SIZE,
        num_workers=settings.VSEARCH_LOADER_WORKERS,
    )
    dims = featurizer.dims()
    out = {layer: np.empty((len(rows), dims[layer]), dtype=np.float32) for layer in featurizer.layers}
    done = 0
    for batch in loader:
        for layer, values in featurizer.embed_batch(batch).items():
            out[layer][done : done + len(values)] = values
        done += len(batch)
        FeatureSet.objects.filter(pk=feature_set.pk).update(progress=done / len(rows))
        if progress:
            progress(done / len(rows))
    for values in out.values():
        if not np.isfinite(values).all():
            raise BuildError(f"{feature_set}: the network produced NaN or Inf features; check the weights.")
    return out, time.perf_counter() - started


# ---------------------------------------------------------------------------------------- claiming a step

_HOST = socket.gethostname()


def _owner() -> str:
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(claimed_by: str, heartbeat_at) -> bool:
    """Whether the process that claimed a step may still be running it: on this host, its pid exists; on
    another host, it showed a sign of life within the lease (VSEARCH_BUILD_LEASE_SECONDS)."""
    if not claimed_by:
        return False
    lease = timedelta(seconds=settings.VSEARCH_BUILD_LEASE_SECONDS)
    if heartbeat_at is None or heartbeat_at < timezone.now() - lease:
        return False
    host, _, rest = claimed_by.partition(":")
    pid = rest.partition(":")[0]
    if host != _HOST or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process with that pid: alive
    return True


def _claim(variant_id: int, stage: str) -> tuple[Variant, str] | None:
    """Take the variant's `stage` for this process, or None when there is nothing to do: the variant is ready,
    failed or gone, the stage is already behind it, or another live process holds it."""
    row = Variant.objects.filter(pk=variant_id).values("status", "stage", "claimed_by", "heartbeat_at").first()
    if row is None or row["status"] in (Variant.Status.READY, Variant.Status.FAILED):
        return None
    if row["status"] == Variant.Status.RUNNING and row["stage"] in STAGES:
        if STAGES.index(row["stage"]) > STAGES.index(stage):
            return None  # this step finished; a later one is under way
        if owner_alive(row["claimed_by"], row["heartbeat_at"]):
            return None  # a redelivered copy: the process that has it is alive
    return _take(variant_id, stage, row)


def _take(variant_id: int, stage: str, row: dict) -> tuple[Variant, str] | None:
    """Check-then-write would let two deliveries of one step both run: this UPDATE is conditional on the row
    being exactly as read, and only the process whose UPDATE changed one row goes on (healthchecks'
    sendalerts claims its flips the same way)."""
    owner = _owner()
    now = timezone.now()
    fields = {
        "status": Variant.Status.RUNNING,
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
    Variant.objects.filter(pk=variant_id, claimed_by=owner).update(
        status=Variant.Status.FAILED, error=message, claimed_by=""
    )


def _progress(variant_id: int, stage: str, fraction: float) -> None:
    """Progress is also the owner's heartbeat."""
    low, high = STAGE_SPAN[stage]
    Variant.objects.filter(pk=variant_id).update(
        progress=low + (high - low) * min(1.0, fraction), heartbeat_at=timezone.now()
    )


# ---------------------------------------------------------------------------------------- steps


def variant_featurize(*, variant_id: int) -> None:
    with claimed_stage(variant_id, "featurizing") as variant:
        if variant is None or variant.metric == Metric.RANDOM:
            return
        feature_set_compute(feature_set=variant.feature_set, progress=lambda f: _progress(variant_id, "featurizing", f))


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
        target = private_path(relative)
        features_mtime = private_path(fs.path).stat().st_mtime
        if variant.index_path == relative and target.exists() and target.stat().st_mtime >= features_mtime:
            return
        _, vectors = features_load(fs)
        index.AnnoySearch(variant.metric, n_trees=variant.n_trees, seed=variant.seed).fit(vectors).save(target)
        with transaction.atomic():
            # New index, new neighbours: pairs from an older index must not mix with the new ones.
            MatchPair.objects.filter(variant_id=variant_id).delete()
            Variant.objects.filter(pk=variant_id).update(index_path=relative, search_k_used=None)


def _query_positions(variant: Variant, n: int) -> np.ndarray:
    if variant.sample_size and variant.sample_size < n:
        rng = np.random.default_rng(variant.seed)
        return np.sort(rng.choice(n, size=variant.sample_size, replace=False))
    return np.arange(n)


def copy_groups(ids: np.ndarray) -> np.ndarray:
    """Per position: a group number shared by byte-identical images (never matched with each other)."""
    rows = dict(Item.objects.filter(id__in=ids.tolist()).values_list("id", "sha256"))
    missing = [int(i) for i in ids if int(i) not in rows]
    if missing:
        raise BuildError(
            f"{len(missing)} items were deleted since featurizing (e.g. #{missing[0]}): rebuild the features."
        )
    codes: dict[str, int] = {}
    return np.array([codes.setdefault(rows[int(i)], len(codes)) for i in ids], dtype=np.int64)


def variant_searcher(variant: Variant, ids: np.ndarray, vectors, groups: np.ndarray) -> tuple[index.Searcher, str]:
    """The searcher a variant's pairs come from, and its name: as the variant's search says (exact, or its Annoy
    index at its search_k, whatever the catalog's size), or by size (auto: exact up to the metric's size limit, else
    Annoy at the calibrated search_k); random pairs for the control."""
    if variant.metric == Metric.RANDOM:
        return index.RandomPairs(seed=variant.seed, ids=ids).fit(groups=groups), ""
    exact = variant.search == Variant.Search.EXACT or (
        variant.search == Variant.Search.AUTO and len(ids) <= index.exact_limit(variant.metric)
    )
    if exact:
        return index.ExactSearch(variant.metric).fit(np.asarray(vectors), groups=groups), "exact"
    annoy = index.AnnoySearch.load(private_path(variant.index_path)).with_groups(groups)
    search_k = _search_k(variant, annoy, lambda: index.ExactSearch(variant.metric).fit(vectors, groups=groups))
    return annoy.set_query_arguments(search_k), "annoy"


def variant_pairs(*, variant_id: int) -> None:
    """Store each query's top-k neighbours (never itself, never a byte-identical copy), resuming where it stopped."""
    with claimed_stage(variant_id, "pairs") as variant:
        if variant is None:
            return
        if variant.metric == Metric.RANDOM:
            ids, vectors = np.array(Item.objects.order_by("id").values_list("id", flat=True), dtype=np.int64), None
        else:
            ids, vectors = features_load(variant.feature_set)
        if len(ids) < 2:
            raise BuildError(f"The catalog has {len(ids)} item(s); matching needs at least two.")
        searcher, search = variant_searcher(variant, ids, vectors, copy_groups(ids))
        Variant.objects.filter(pk=variant_id).update(pairs_search=search)
        positions = _query_positions(variant, len(ids))
        done = set(MatchPair.objects.filter(variant_id=variant_id).values_list("query_item_id", flat=True).distinct())
        order = {int(p): i for i, p in enumerate(positions)}
        todo = [int(p) for p in positions if int(ids[p]) not in done]
        for start in range(0, len(todo), PAIR_CHUNK):
            chunk = todo[start : start + PAIR_CHUNK]
            top, dist = searcher.neighbours(np.array(chunk, dtype=np.int64), variant.k)
            found = {
                p: [(int(n), float(d)) for n, d in zip(top[row], dist[row], strict=True) if n >= 0]
                for row, p in enumerate(chunk)
            }
            _store_pairs(variant, ids, found, order)
            _progress(variant_id, "pairs", (len(positions) - len(todo) + start + len(chunk)) / len(positions))


def _store_pairs(variant: Variant, ids: np.ndarray, found: dict[int, list[tuple[int, float]]], order: dict[int, int]):
    wanted = {(int(ids[q]), int(ids[m])) for q, rows in found.items() for m, _ in rows}
    with transaction.atomic():
        Pair.objects.bulk_create(
            [Pair(query_item_id=q, match_item_id=m) for q, m in wanted], ignore_conflicts=True, batch_size=2000
        )
        query_ids = {int(ids[q]) for q in found}
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
                    seq=order[q] * variant.k + rank,
                )
                for q, rows in found.items()
                for rank, (m, distance) in enumerate(rows)
            ],
            ignore_conflicts=True,
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
        Variant.objects.filter(pk=variant_id).update(
            p_at_1=p1,
            p_at_k=pk,
            recall_at_k=recall,
            status=Variant.Status.READY,
            stage=Variant.Stage.READY,
            progress=1.0,
            error="",
            ready_at=timezone.now(),
        )
    if variant is not None:
        signals.rotation_changed.send(sender=Variant, variant_id=variant_id, reason="ready")


def _recall(variant: Variant, queries: list[int]) -> float:
    """Annoy's recall@k against exact search with the same metric, on a sample of the queries.

    Measured on the index even when the pairs came from exact search, so the figure always
    says how good the index is.
    """
    ids, vectors = features_load(variant.feature_set)
    position = {int(i): p for p, i in enumerate(ids)}
    groups = copy_groups(ids)
    rng = np.random.default_rng(variant.seed)
    chosen = np.sort(rng.choice(len(queries), size=min(EVAL_QUERIES, len(queries)), replace=False))
    qpos = np.array([position[queries[i]] for i in chosen])
    annoy = index.AnnoySearch.load(private_path(variant.index_path)).with_groups(groups)
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
