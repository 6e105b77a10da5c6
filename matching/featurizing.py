"""Featurizing a catalog in chunks, so that several workers share it and a killed one loses one chunk at most.

A run embeds the items a featurizer's files lack: every catalog item the first time (or after the weights
changed), afterwards only the items imported since. It is split into chunks of VSEARCH_FEATURIZE_CHUNK items.
Each chunk is claimed with a conditional UPDATE (one process embeds it; a redelivered copy whose owner is alive
does nothing; one whose owner died takes over), embedded with every layer of the featurizer in one pass, and
written as one file, atomically: a chunk whose file is there is done, and is never embedded twice. Then one merge
writes the next revision of the files (the rows of the previous revision whose items are still in the catalog,
then the chunks' rows) and points every layer's FeatureSet at it. Progress is the sum over the chunks.

A run belongs to the lead (lowest id) feature set of its featurizer and weights source: the layers of one source
are computed together and share the item ids, so there is one run at a time per source.

Inline (eager and thread modes, management commands) `run_finish` embeds the chunks in order in this process.
With Celery each chunk is also a task (a group, matching.dispatch), and the build's next step finishes the run: it
embeds what no task has taken yet, takes over the chunk of a worker that died at once (its pid is gone, or its
heartbeat older than the lease) rather than waiting for the broker to redeliver it, then merges.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import F, Max, QuerySet, Sum
from django.utils import timezone
from torch.utils.data import DataLoader

from matching import featurizers
from matching.claims import new_owner, owner_alive
from matching.features import (
    REVISION_FILE,
    ItemImages,
    catalog_ids,
    feature_dir,
    features_current,
    features_read,
    revision_file,
)
from matching.featurizers import FeaturizerError
from matching.models import FeatureChunk, FeatureRun, FeatureSet, Item
from matching.storage import atomic_file, private_path

log = logging.getLogger(__name__)

EMBEDDINGS = "embeddings"  # uploaded vectors: nothing here can embed an item they lack
EMPTY = "The catalog is empty: import images first (manage.py import_catalog PATH or make_demo_catalog)."
COPY_ROWS = 4096  # rows per block when a merge copies the previous revision: 4096 x 4096 float32 is 64 MB
WAIT_SECONDS = 2.0  # how often an inline run looks again at chunks another live process holds

Progress = Callable[[FeatureRun, float], None]  # (run, fraction of its items embedded)


class Outcome:
    MERGED = "merged"  # the run's files are written and its feature sets point at them (or it was merged before)
    WAITING = "waiting"  # a live process holds a chunk or the merge: look again later
    GONE = "gone"  # the run no longer exists: merged, or failed (its error is on the feature sets)


def siblings(feature_set: FeatureSet) -> QuerySet[FeatureSet]:
    """The feature sets of one featurizer and weights source, one per layer: they share files and runs."""
    return FeatureSet.objects.filter(featurizer=feature_set.featurizer, weights=feature_set.weights)


def lead_of(feature_set: FeatureSet) -> FeatureSet:
    return siblings(feature_set).order_by("id").first()


def run_dir(run: FeatureRun) -> str:
    return f"{feature_dir(run.feature_set)}/run-{run.pk}"


def chunk_path(run: FeatureRun, number: int) -> str:
    return f"{run_dir(run)}/chunk-{number:06d}.npz"


# ---------------------------------------------------------------------------------------- planning


def run_plan(*, feature_set: FeatureSet) -> FeatureRun | None:
    """The run that brings `feature_set` up to the catalog: the one under way for its source (planned by any
    process), else a new one; None when its files already hold exactly the catalog's items."""
    _adopt(feature_set)
    head = lead_of(feature_set)
    run = FeatureRun.objects.filter(feature_set=head).first()
    if run is not None:
        return run
    feature_set.refresh_from_db()
    catalog = catalog_ids()
    base = None
    missing = catalog
    if feature_set.status == FeatureSet.Status.READY and features_current(feature_set):
        ids, _ = features_read(feature_set)
        missing = np.setdiff1d(catalog, ids) if feature_set.featurizer != EMBEDDINGS else catalog[:0]
        if not len(missing) and np.isin(ids, catalog).all():
            return None
        base = feature_set.revision
    elif feature_set.featurizer == EMBEDDINGS:
        raise FeaturizerError("The uploaded embeddings' files are missing from the build storage: upload them again.")
    if base is None and not len(catalog):
        raise FeaturizerError(EMPTY)
    size = settings.VSEARCH_FEATURIZE_CHUNK
    parts = [missing[start : start + size] for start in range(0, len(missing), size)]
    try:
        with transaction.atomic():
            # One run per source: the OneToOne on the lead set refuses a second planner.
            run = FeatureRun.objects.create(feature_set=head, base_revision=base)
            FeatureChunk.objects.bulk_create(
                [
                    FeatureChunk(run=run, number=n, item_ids=[int(i) for i in part], size=len(part))
                    for n, part in enumerate(parts)
                ]
            )
            siblings(head).exclude(status=FeatureSet.Status.READY).update(
                status=FeatureSet.Status.RUNNING, error="", progress=0.0
            )
    except IntegrityError:
        return FeatureRun.objects.filter(feature_set=head).first()  # another process planned it meanwhile
    log.info("%s: featurizing %d items in %d chunks (run %d)", feature_set, len(missing), len(parts), run.pk)
    return run


def _adopt(feature_set: FeatureSet) -> None:
    """A layer asked for after its source was featurized (every run writes every layer): point it at those files."""
    if feature_set.status == FeatureSet.Status.READY and features_current(feature_set):
        return
    source = (
        siblings(feature_set)
        .filter(status=FeatureSet.Status.READY)
        .exclude(pk=feature_set.pk)
        .order_by("-revision")
        .first()
    )
    if source is None or not features_current(source):
        return
    path = revision_file(feature_dir(feature_set), feature_set.layer, source.revision)
    if not private_path(path).exists():
        return
    dim = np.load(private_path(path), mmap_mode="r").shape[1]
    FeatureSet.objects.filter(pk=feature_set.pk).update(
        status=FeatureSet.Status.READY,
        path=path,
        dim=dim,
        n_items=source.n_items,
        revision=source.revision,
        generation=source.generation,
        progress=1.0,
        error="",
        seconds=source.seconds,
    )
    feature_set.refresh_from_db()


# ---------------------------------------------------------------------------------------- chunks


def chunk_featurize(*, chunk_id: int, progress: Progress | None = None) -> bool:
    """Embed one chunk and write its file, unless it is done or a live process has it; returns whether this call
    embedded it. A failure ends the whole run, with a message on its feature sets for the builds waiting on it."""
    claim = _claim_chunk(chunk_id)
    if claim is None:
        return False
    chunk, owner = claim
    run = chunk.run
    relative = chunk_path(run, chunk.number)
    if _chunk_complete(relative, chunk):
        _chunk_done(chunk, owner, seconds=None)  # its owner wrote the file and died before saying so
        return False
    log.info("chunk %d of run %d: embedding %d items", chunk.number, run.pk, chunk.size)
    try:
        seconds = _embed_chunk(chunk, owner, relative, progress)
    except OperationalError:
        FeatureChunk.objects.filter(pk=chunk.pk, claimed_by=owner).update(
            status=FeatureChunk.Status.QUEUED, claimed_by=""
        )
        raise  # the database blinked: the task retries and claims the chunk again
    except Exception as exc:
        if isinstance(exc, FeaturizerError):
            message = str(exc)
        else:
            log.exception("chunk %d of run %d failed", chunk.number, run.pk)
            message = f"Unexpected error while featurizing: {exc.__class__.__name__}: {exc}. See the worker log."
        run_fail(run=run, message=message)
        return False
    _chunk_done(chunk, owner, seconds=seconds)
    log.info("chunk %d of run %d: done in %.2f s", chunk.number, run.pk, seconds)
    _publish(run, progress)
    return True


def _claim_chunk(chunk_id: int) -> tuple[FeatureChunk, str] | None:
    """As pipeline._take claims a step: the UPDATE is conditional on the row being as read, so of two deliveries of
    one chunk only one embeds it."""
    row = FeatureChunk.objects.filter(pk=chunk_id).values("status", "claimed_by", "heartbeat_at").first()
    if row is None or row["status"] == FeatureChunk.Status.DONE:
        return None  # merged (the run is gone) or done
    if row["status"] == FeatureChunk.Status.RUNNING and owner_alive(row["claimed_by"], row["heartbeat_at"]):
        return None  # a redelivered copy: the process that has it is alive
    owner = new_owner()
    taken = FeatureChunk.objects.filter(pk=chunk_id, status=row["status"], claimed_by=row["claimed_by"]).update(
        status=FeatureChunk.Status.RUNNING, claimed_by=owner, heartbeat_at=timezone.now(), done=0
    )
    if taken != 1:
        return None
    return FeatureChunk.objects.select_related("run__feature_set").get(pk=chunk_id), owner


def _embed_chunk(chunk: FeatureChunk, owner: str, relative: str, progress: Progress | None) -> float:
    source = chunk.run.feature_set
    featurizer = featurizers.get(source.featurizer, source.weights)
    found = {row[0]: row for row in Item.objects.filter(id__in=chunk.item_ids).values_list("id", "image", "bbox")}
    rows = [found[i] for i in chunk.item_ids if i in found]  # items deleted since planning are skipped
    started = time.perf_counter()
    dims = featurizer.dims()
    out = {layer: np.empty((len(rows), dims[layer]), dtype=np.float32) for layer in featurizer.layers}
    loader = DataLoader(
        ItemImages(rows, featurizer.transform),
        batch_size=settings.VSEARCH_BATCH_SIZE,
        num_workers=settings.VSEARCH_LOADER_WORKERS,
    )
    done = 0
    for batch in loader:
        for layer, values in featurizer.embed_batch(batch).items():
            out[layer][done : done + len(values)] = values
        done += len(batch)
        # Progress is also the claim's heartbeat.
        FeatureChunk.objects.filter(pk=chunk.pk, claimed_by=owner).update(done=done, heartbeat_at=timezone.now())
        _publish(chunk.run, progress)
    for values in out.values():
        if not np.isfinite(values).all():
            raise FeaturizerError(f"{source}: the network produced NaN or Inf features; check the weights.")
    with atomic_file(private_path(relative)) as tmp, tmp.open("wb") as fh:
        np.savez(fh, ids=np.array([r[0] for r in rows], dtype=np.int64), **{f"layer_{k}": v for k, v in out.items()})
    return time.perf_counter() - started


def _chunk_complete(relative: str, chunk: FeatureChunk) -> bool:
    """The chunk's file is there and whole: ids among the planned ones, every layer with a row per id."""
    path = private_path(relative)
    if not path.exists():
        return False
    try:
        with np.load(path) as data:
            ids = data["ids"]
            layers = [name for name in data.files if name.startswith("layer_")]
            return (
                bool(layers)
                and set(ids.tolist()) <= set(chunk.item_ids)
                and all(data[name].shape[0] == len(ids) for name in layers)
            )
    except Exception:
        return False  # unreadable: embedded again


def _chunk_done(chunk: FeatureChunk, owner: str, *, seconds: float | None) -> None:
    FeatureChunk.objects.filter(pk=chunk.pk, claimed_by=owner).update(
        status=FeatureChunk.Status.DONE, done=F("size"), claimed_by="", seconds=seconds
    )


def run_progress(run: FeatureRun) -> float:
    """The share of the run's items embedded: the sum over its chunks."""
    sums = FeatureChunk.objects.filter(run=run).aggregate(done=Sum("done"), size=Sum("size"))
    return (sums["done"] or 0) / sums["size"] if sums["size"] else 1.0


def _publish(run: FeatureRun, progress: Progress | None) -> None:
    fraction = run_progress(run)
    siblings(run.feature_set).exclude(status=FeatureSet.Status.READY).update(progress=fraction)
    if progress:
        progress(run, fraction)


def run_fail(*, run: FeatureRun, message: str) -> None:
    """End a run that cannot finish: its chunks and their files go; its feature sets carry the message (those without
    usable files of an earlier revision are failed), for every build waiting on the run."""
    head = run.feature_set
    folder = private_path(run_dir(run))
    with transaction.atomic():
        if not FeatureRun.objects.filter(pk=run.pk).delete()[0]:
            return
        siblings(head).exclude(status=FeatureSet.Status.READY).update(status=FeatureSet.Status.FAILED, error=message)
        siblings(head).filter(status=FeatureSet.Status.READY).update(error=message)
    shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------- merge


def run_finish(*, feature_set: FeatureSet, run: FeatureRun | None, progress: Progress | None = None) -> None:
    """Embed every chunk of `run` not done yet, here and in order (a chunk a live process holds is waited for, one
    whose owner died is taken over), then merge. Raises FeaturizerError when the run failed, here or elsewhere."""
    while run is not None:
        for chunk_id in run.chunks.exclude(status=FeatureChunk.Status.DONE).values_list("pk", flat=True):
            chunk_featurize(chunk_id=chunk_id, progress=progress)
        if run_merge(run_id=run.pk) != Outcome.WAITING:
            break
        time.sleep(WAIT_SECONDS)
    feature_set.refresh_from_db()
    if feature_set.status != FeatureSet.Status.READY or feature_set.error:
        raise FeaturizerError(feature_set.error or f"Features {feature_set} are not ready ({feature_set.status}).")


def run_merge(*, run_id: int) -> str:
    """Write the next revision of the run's files and point its feature sets at it, once every chunk is done."""
    row = FeatureRun.objects.filter(pk=run_id).values("claimed_by", "heartbeat_at").first()
    if row is None:
        return Outcome.GONE
    if owner_alive(row["claimed_by"], row["heartbeat_at"]):
        return Outcome.WAITING  # another process is merging it
    owner = new_owner()
    if not FeatureRun.objects.filter(pk=run_id, claimed_by=row["claimed_by"]).update(
        claimed_by=owner, heartbeat_at=timezone.now()
    ):
        return Outcome.WAITING
    run = FeatureRun.objects.select_related("feature_set").get(pk=run_id)
    if run.chunks.exclude(status=FeatureChunk.Status.DONE).exists():
        FeatureRun.objects.filter(pk=run_id, claimed_by=owner).update(claimed_by="")
        return Outcome.WAITING
    try:
        _merge(run, owner)
    except OperationalError:
        FeatureRun.objects.filter(pk=run_id, claimed_by=owner).update(claimed_by="")
        raise
    except Exception as exc:
        if isinstance(exc, FeaturizerError):
            message = str(exc)
        else:
            log.exception("merging run %d failed", run_id)
            message = f"Unexpected error while merging features: {exc.__class__.__name__}: {exc}. See the worker log."
        run_fail(run=run, message=message)
        return Outcome.GONE
    return Outcome.MERGED


def _merge(run: FeatureRun, owner: str) -> None:
    head = run.feature_set
    folder = _files_dir(head, run.base_revision)
    chunks = list(run.chunks.order_by("number"))
    catalog = catalog_ids()

    base_ids = np.zeros(0, dtype=np.int64)
    layers: list[str] = []
    if run.base_revision is not None:
        base_ids = np.load(private_path(revision_file(folder, "ids", run.base_revision)))
        layers = _layers_at(folder, run.base_revision)
    keep = np.flatnonzero(np.isin(base_ids, catalog))  # rows of items deleted since are dropped
    chunk_ids = []
    for chunk in chunks:
        with np.load(private_path(chunk_path(run, chunk.number))) as data:
            chunk_ids.append(data["ids"])
            layers = layers or [name.removeprefix("layer_") for name in data.files if name.startswith("layer_")]
    chunk_keep = [np.flatnonzero(np.isin(ids, catalog)) for ids in chunk_ids]
    ids = np.concatenate([base_ids[keep], *(ids[k] for ids, k in zip(chunk_ids, chunk_keep, strict=True))])
    if not len(ids):
        raise FeaturizerError(EMPTY)

    current = siblings(head).aggregate(revision=Max("revision"), generation=Max("generation"))
    revision = max(current["revision"] or 0, run.base_revision or 0) + 1
    generation = (current["generation"] or 0) + (1 if run.base_revision is None else 0)
    dims = {}
    for layer in layers:
        dims[layer] = _write_layer(run, owner, folder, layer, revision, keep, chunks, chunk_keep, len(ids))
    with atomic_file(private_path(revision_file(folder, "ids", revision))) as tmp, tmp.open("wb") as fh:
        np.save(fh, ids)

    seconds = sum(chunk.seconds or 0.0 for chunk in chunks)
    with transaction.atomic():
        if not FeatureRun.objects.filter(pk=run.pk, claimed_by=owner).exists():
            return  # taken over (this process looked dead): the new owner writes the same files
        for layer, dim in dims.items():
            siblings(head).filter(layer=layer).update(
                status=FeatureSet.Status.READY,
                path=revision_file(folder, layer, revision),
                dim=dim,
                n_items=len(ids),
                progress=1.0,
                error="",
                revision=revision,
                generation=generation,
                seconds=seconds if run.base_revision is None else seconds + (head.seconds or 0.0),
            )
        FeatureRun.objects.filter(pk=run.pk).delete()
    log.info("%s: revision %d holds %d items (run %d merged)", head, revision, len(ids), run.pk)
    _prune(folder, keep_from=revision - 1)


def _files_dir(head: FeatureSet, revision: int | None) -> str:
    """Where the source's files are: beside those of the revision appended to (uploaded embeddings live in a folder
    of their own), else its featurizer's folder."""
    if revision is not None:
        current = siblings(head).filter(revision=revision).exclude(path="").values_list("path", flat=True).first()
        if current:
            return str(Path(current).parent)
    return feature_dir(head)


def _write_layer(run, owner, folder, layer, revision, keep, chunks, chunk_keep, n) -> int:
    """One layer's file of the new revision, streamed into place (never the whole array in memory)."""
    base = None
    if run.base_revision is not None:
        base = np.load(private_path(revision_file(folder, layer, run.base_revision)), mmap_mode="r")
    with atomic_file(private_path(revision_file(folder, layer, revision))) as tmp:
        out = None
        at = 0

        def put(block: np.ndarray) -> None:
            nonlocal out, at
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, block.shape[1]))
            out[at : at + len(block)] = block
            at += len(block)

        if base is not None:
            for start in range(0, len(keep), COPY_ROWS):
                put(np.asarray(base[keep[start : start + COPY_ROWS]]))
                FeatureRun.objects.filter(pk=run.pk, claimed_by=owner).update(heartbeat_at=timezone.now())
        for chunk, rows in zip(chunks, chunk_keep, strict=True):
            with np.load(private_path(chunk_path(run, chunk.number))) as data:
                put(data[f"layer_{layer}"][rows])
        if out is None:  # every row was dropped: nothing to size the file by (refused by the caller)
            raise FeaturizerError(EMPTY)
        if at != n:
            raise FeaturizerError(f"{run}: {at} rows were written for {layer} where {n} were expected.")
        dim = out.shape[1]
        out.flush()
        del out
    return dim


def _layers_at(folder: str, revision: int) -> list[str]:
    """The layers with a file of that revision in the folder (every layer the source computed)."""
    names = []
    for path in sorted(private_path(folder).glob("*.npy")):
        found = REVISION_FILE.match(path.name)
        if found and found["name"] != "ids" and int(found["revision"] or 0) == revision:
            names.append(found["name"])
    return names


def _prune(folder: str, *, keep_from: int) -> None:
    """Remove files of revisions before `keep_from` (the previous revision stays for readers that opened it just
    before the switch) and chunk folders of runs that no longer exist."""
    root = private_path(folder)
    if not root.exists():
        return
    live = {f"run-{pk}" for pk in FeatureRun.objects.values_list("pk", flat=True)}
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith("run-") and path.name not in live:
            shutil.rmtree(path, ignore_errors=True)
            continue
        found = REVISION_FILE.match(path.name)
        if found and int(found["revision"] or 0) < keep_from:
            Path(path).unlink(missing_ok=True)
