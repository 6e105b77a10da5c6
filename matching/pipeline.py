"""The build of a variant, as separate rerunnable steps with files between them:

featurize (features .npy + item ids) -> index (.ann + metadata) -> pairs (MatchPair rows) -> evaluate.

State lives in the database, so every step is idempotent: a finished step is a no-op, a step cut
off half-way resumes, and unique constraints make duplicate pairs impossible.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from matching import featurizers, index
from matching.evaluation import precision_at, recall_with_ties
from matching.featurizers import FeaturizerError
from matching.models import FeatureSet, Item, MatchPair, Metric, Pair, Variant
from matching.storage import media_path, temp_path_beside

log = logging.getLogger(__name__)

# Share of the progress bar each stage fills (featurizing dominates the wall time).
STAGE_SPAN = {"featurizing": (0.0, 0.5), "indexing": (0.5, 0.6), "pairs": (0.6, 0.95), "evaluating": (0.95, 1.0)}
PAIR_CHUNK = 200  # queries per transaction: a query has all its k pairs or none
EVAL_QUERIES = 500  # recall is estimated on at most this many queries
CALIBRATION_QUERIES = 200  # queries behind the choice of search_k
TARGET_RECALL = 0.95  # search_k=-1 doubles Annoy's budget until recall@k on a sample reaches this


class BuildError(Exception):
    """A build cannot go on; the message tells a person what to do."""


# ---------------------------------------------------------------------------------------- features


class ItemImages(Dataset):
    """Catalog images, cropped to their bbox, through a featurizer's transform."""

    def __init__(self, rows: list[tuple[int, str, list | None]], transform):
        self.rows = rows
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        _, name, bbox = self.rows[i]
        with Image.open(media_path(name)) as image:
            image = image.convert("RGB")
            if bbox:
                image = image.crop(tuple(bbox))
            return self.transform(image)


def feature_dir(feature_set: FeatureSet) -> str:
    weights = feature_set.weights
    if weights in {"none", "imagenet"}:
        slug = weights
    else:
        slug = f"{Path(weights).stem[:40]}-{hashlib.sha1(weights.encode()).hexdigest()[:10]}"
    return f"features/{feature_set.featurizer}/{slug}"


def features_load(feature_set: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, vectors) of a ready feature set, vectors memory-mapped."""
    base = Path(feature_set.path)
    ids = np.load(media_path(str(base.parent / "ids.npy")))
    vectors = np.load(media_path(feature_set.path), mmap_mode="r")
    return ids, vectors


def _files_current(feature_set: FeatureSet) -> bool:
    """The feature file exists and is newer than the weights file it came from (retrained in place: stale)."""
    if not feature_set.path or not media_path(feature_set.path).exists():
        return False
    weights = Path(featurizers.resolve_weights(feature_set.weights))
    if feature_set.weights in {"none", "imagenet"} or not weights.exists():
        return True
    return weights.stat().st_mtime <= media_path(feature_set.path).stat().st_mtime


def feature_set_compute(*, feature_set: FeatureSet, progress=None) -> FeatureSet:
    """Embed every catalog item with every layer of the featurizer in one pass; other layers' sets are filled too.

    Files are written only once every layer's features are complete and finite; a failure marks the set failed.
    """
    feature_set.refresh_from_db()
    if feature_set.status == FeatureSet.Status.READY and _files_current(feature_set):
        return feature_set
    if feature_set.featurizer == "embeddings":
        raise BuildError("The uploaded embeddings' files are missing from the media folder: upload them again.")
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
    _save_npy(f"{folder}/ids.npy", np.array([r[0] for r in rows], dtype=np.int64))
    for layer, values in out.items():
        _save_npy(f"{folder}/{layer}.npy", values)
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


def _save_npy(relative: str, array: np.ndarray) -> None:
    tmp = temp_path_beside(relative)
    try:
        with tmp.open("wb") as fh:
            np.save(fh, array)
        tmp.replace(media_path(relative))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------- steps


@contextlib.contextmanager
def _step(variant_id: int, stage: str):
    """Run one stage if the variant is mid-build; a failure marks it failed with a message to act on.

    Yields the variant, or None when there is nothing to do (ready, failed, or gone).
    """
    variant = Variant.objects.filter(pk=variant_id).select_related("feature_set").first()
    if variant is None or variant.status in (Variant.Status.READY, Variant.Status.FAILED):
        yield None
        return
    fields = {"status": Variant.Status.RUNNING, "stage": stage, "progress": STAGE_SPAN[stage][0]}
    if variant.status == Variant.Status.QUEUED:
        fields["started_at"] = timezone.now()
    Variant.objects.filter(pk=variant_id).update(**fields)
    try:
        yield variant
    except (BuildError, FeaturizerError) as exc:
        _fail(variant_id, str(exc))
    except OperationalError:
        raise  # the database blinked: the task retries, the step resumes
    except Exception as exc:
        log.exception("variant %s failed while %s", variant_id, stage)
        _fail(variant_id, f"Unexpected error while {stage}: {exc.__class__.__name__}: {exc}. See the worker log.")


def _fail(variant_id: int, message: str) -> None:
    Variant.objects.filter(pk=variant_id).update(status=Variant.Status.FAILED, error=message)


def _progress(variant_id: int, stage: str, fraction: float) -> None:
    low, high = STAGE_SPAN[stage]
    Variant.objects.filter(pk=variant_id).update(progress=low + (high - low) * min(1.0, fraction))


def variant_featurize(*, variant_id: int) -> None:
    with _step(variant_id, "featurizing") as variant:
        if variant is None or variant.metric == Metric.RANDOM:
            return
        feature_set_compute(feature_set=variant.feature_set, progress=lambda f: _progress(variant_id, "featurizing", f))


def index_relative_path(variant: Variant) -> str:
    return f"indexes/variant-{variant.pk}.ann"


def variant_index(*, variant_id: int) -> None:
    """Build the Annoy index unless one for these features is already in place."""
    with _step(variant_id, "indexing") as variant:
        if variant is None or variant.metric == Metric.RANDOM:
            return
        fs = variant.feature_set
        if fs.status != FeatureSet.Status.READY:
            raise BuildError(f"Features {fs} are not ready ({fs.status}): {fs.error or 'build them first'}.")
        relative = index_relative_path(variant)
        target = media_path(relative)
        features_mtime = media_path(fs.path).stat().st_mtime
        if variant.index_path == relative and target.exists() and target.stat().st_mtime >= features_mtime:
            return
        _, vectors = features_load(fs)
        index.build(
            index.prepare(vectors, variant.metric),
            variant.metric,
            n_trees=variant.n_trees,
            seed=variant.seed,
            path=target,
        )
        with transaction.atomic():
            # New index, new neighbours: pairs from an older index must not mix with the new ones.
            MatchPair.objects.filter(variant_id=variant_id).delete()
            Variant.objects.filter(pk=variant_id).update(index_path=relative, search_k_used=None)


def _query_positions(variant: Variant, n: int) -> np.ndarray:
    if variant.sample_size and variant.sample_size < n:
        rng = np.random.default_rng(variant.seed)
        return np.sort(rng.choice(n, size=variant.sample_size, replace=False))
    return np.arange(n)


def _catalog_arrays(ids: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Per position: a group number shared by byte-identical images; and item id -> sha256."""
    rows = dict(Item.objects.filter(id__in=ids.tolist()).values_list("id", "sha256"))
    missing = [int(i) for i in ids if int(i) not in rows]
    if missing:
        raise BuildError(
            f"{len(missing)} items were deleted since featurizing (e.g. #{missing[0]}): rebuild the features."
        )
    codes: dict[str, int] = {}
    groups = np.array([codes.setdefault(rows[int(i)], len(codes)) for i in ids], dtype=np.int64)
    return groups, rows


def variant_pairs(*, variant_id: int) -> None:
    """Store each query's top-k neighbours (never itself, never a byte-identical copy), resuming where it stopped."""
    with _step(variant_id, "pairs") as variant:
        if variant is None:
            return
        exact = False
        if variant.metric == Metric.RANDOM:
            ids = np.array(Item.objects.order_by("id").values_list("id", flat=True), dtype=np.int64)
        else:
            ids, vectors = features_load(variant.feature_set)
        if len(ids) < 2:
            raise BuildError(f"The catalog has {len(ids)} item(s); matching needs at least two.")
        groups, _ = _catalog_arrays(ids)
        if variant.metric == Metric.RANDOM:
            finder = _random_finder(variant, ids, groups)
        else:
            exact = len(ids) <= index.exact_limit(variant.metric)
            prepared = index.prepare(np.asarray(vectors), variant.metric)
            if exact:
                finder = _exact_finder(variant, prepared, groups)
            else:
                ann = index.load(media_path(variant.index_path))
                finder = _annoy_finder(variant, ann, _search_k(variant, ann, prepared, groups), groups)
        search = "" if variant.metric == Metric.RANDOM else ("exact" if exact else "annoy")
        Variant.objects.filter(pk=variant_id).update(pairs_search=search)
        positions = _query_positions(variant, len(ids))
        done = set(MatchPair.objects.filter(variant_id=variant_id).values_list("query_item_id", flat=True).distinct())
        order = {int(p): i for i, p in enumerate(positions)}
        todo = [int(p) for p in positions if int(ids[p]) not in done]
        for start in range(0, len(todo), PAIR_CHUNK):
            chunk = todo[start : start + PAIR_CHUNK]
            _store_pairs(variant, ids, finder(chunk), order)
            _progress(variant_id, "pairs", (len(positions) - len(todo) + start + len(chunk)) / len(positions))


# A finder maps query positions to their [(neighbour position, distance)], best first, never a position in
# the query's group of byte-identical copies.


def _annoy_finder(variant: Variant, ann, search_k: int, groups: np.ndarray):
    def one(position: int) -> list[tuple[int, float]]:
        want = variant.k + 1
        while True:
            nns, dists = index.annoy_neighbours(ann, position, want, search_k)
            kept = [(n, d) for n, d in zip(nns, dists, strict=True) if groups[n] != groups[position]]
            if len(kept) >= variant.k or len(nns) < want:
                return kept[: variant.k]
            want *= 2  # byte-identical copies took places: ask for more

    return lambda positions: {p: one(p) for p in positions}


def _exact_finder(variant: Variant, prepared: np.ndarray, groups: np.ndarray):
    """Brute force: exact neighbours, the catalog prepared once for every chunk of queries."""
    search = index.ExactSearch(prepared, variant.metric, exclude=groups)

    def find(positions: list[int]) -> dict[int, list[tuple[int, float]]]:
        top, dist = search.search(np.array(positions), variant.k)
        return {
            p: [(int(n), float(d)) for n, d in zip(top[row], dist[row], strict=True) if n >= 0]
            for row, p in enumerate(positions)
        }

    return find


def _random_finder(variant: Variant, ids: np.ndarray, groups: np.ndarray):
    def one(position: int) -> list[tuple[int, float]]:
        rng = np.random.default_rng([variant.seed, int(ids[position])])
        candidates = np.flatnonzero(groups != groups[position])
        picks = rng.choice(candidates, size=min(variant.k, len(candidates)), replace=False)
        return [(int(p), float(rank)) for rank, p in enumerate(picks)]

    return lambda positions: {p: one(p) for p in positions}


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
    with _step(variant_id, "evaluating") as variant:
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


def _recall(variant: Variant, queries: list[int]) -> float:
    """Annoy's recall@k against exact search with the same metric, on a sample of the queries.

    Measured on the index even when the pairs came from exact search, so the figure always
    says how good the index is.
    """
    ids, vectors = features_load(variant.feature_set)
    prepared = index.prepare(np.asarray(vectors), variant.metric)
    position = {int(i): p for p, i in enumerate(ids)}
    groups, _ = _catalog_arrays(ids)
    rng = np.random.default_rng(variant.seed)
    chosen = np.sort(rng.choice(len(queries), size=min(EVAL_QUERIES, len(queries)), replace=False))
    qpos = np.array([position[queries[i]] for i in chosen])
    ann = index.load(media_path(variant.index_path))
    # The budget the pairs were searched with (search_k_used); exact-search variants never set it.
    return _recall_probe(variant, ann, prepared, groups, qpos)(variant.search_k_used or variant.search_k)


def _recall_probe(variant: Variant, ann, prepared: np.ndarray, groups: np.ndarray, qpos: np.ndarray):
    """search_k -> Annoy's recall@k on the queries at `qpos` (exact neighbours found once, up front)."""
    _, exact_dist = index.exact_search(prepared, variant.metric, qpos, variant.k, exclude=groups)
    kth = np.array([row[np.isfinite(row)][-1] if np.isfinite(row).any() else np.inf for row in exact_dist])

    def recall_at(search_k: int) -> float:
        found = np.full((len(qpos), variant.k), np.inf)
        annoy = _annoy_finder(variant, ann, search_k, groups)(qpos.tolist())
        for r, p in enumerate(qpos.tolist()):
            neighbours = [n for n, _ in annoy[p]]
            if neighbours:  # distances in exact_distances' terms, so ties compare like for like
                row = index.exact_distances(prepared[[p]], prepared[neighbours], variant.metric)[0]
                found[r, : len(neighbours)] = row
        return recall_with_ties(found, kth, variant.k)

    return recall_at


def _search_k(variant: Variant, ann, prepared: np.ndarray, groups: np.ndarray) -> int:
    """The search_k to query with: the variant's own, else the smallest doubling of Annoy's default budget
    that reaches TARGET_RECALL on a sample (50 trees at the default budget fell to recall 0.82 at 100k
    items: docs/BENCHMARKS.md, index). Kept on the variant until its index is rebuilt."""
    if variant.search_k != -1 or variant.search_k_used:
        search_k = variant.search_k if variant.search_k != -1 else variant.search_k_used
        Variant.objects.filter(pk=variant.pk).update(search_k_used=search_k)
        return search_k
    n = len(prepared)
    rng = np.random.default_rng(variant.seed)
    qpos = np.sort(rng.choice(n, size=min(CALIBRATION_QUERIES, n), replace=False))
    recall_at = _recall_probe(variant, ann, prepared, groups, qpos)
    search_k = variant.n_trees * (variant.k + 1)  # what Annoy does with -1
    while recall_at(search_k) < TARGET_RECALL and search_k < variant.n_trees * n:
        search_k *= 2  # at n_trees * n every tree is read whole: the search is exhaustive
    Variant.objects.filter(pk=variant.pk).update(search_k_used=search_k)
    log.info("%s: search_k %d reaches recall@%d >= %.2f", variant, search_k, variant.k, TARGET_RECALL)
    return search_k


STEPS = (variant_featurize, variant_index, variant_pairs, variant_evaluate)


def variant_build_inline(*, variant_id: int) -> Variant:
    """Every step in this process, in order (eager mode, the thread runner, management commands)."""
    for step in STEPS:
        step(variant_id=variant_id)
    return Variant.objects.get(pk=variant_id)
