"""Featurizing across workers: one Celery worker against several on this machine (each given its share of the
cores), the features they write compared with the one-process path, the cost of a chunk, and what the per-image cost
projects for a catalog of 1M images on N workers.

    nice -n 10 .venv/bin/python -m bench.chunks [--quick] [--n 600] [--featurizer resnet18] [--workers 1,1x1,2]

Needs PostgreSQL and Redis on 127.0.0.1 (a scratch database, Redis db 14, a private queue). The catalog is the demo
catalog's images (128 px, cached under /tmp), imported into the scratch database.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from bench.common import (
    REDIS_BENCH_URL,
    REPO,
    django_setup,
    emit,
    heading,
    load_average,
    postgres_available,
    postgres_create,
    postgres_drop,
    redis_available,
    scratch_dir,
    table,
)
from bench.data import demo_png_dir

DB_NAME = "vsearch_bench_chunks"
PROJECT_ITEMS = 1_000_000
PROJECT_WORKERS = (1, 2, 4, 8, 16, 32)


def start_workers(
    count: int, *, queue: str, database_url: str, data_dir: Path, env: dict, log: Path, threads: int | None = None
) -> list:
    """`count` solo-pool workers on one queue; torch threads each: `threads`, else the cores shared out."""
    from django.conf import settings

    threads = threads or max(1, (os.cpu_count() or 1) // count)
    environment = dict(
        os.environ,
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_BENCH_URL,
        VSEARCH_TASKS="celery",
        VSEARCH_DATA_DIR=str(data_dir),
        VSEARCH_MEDIA_ROOT=str(settings.MEDIA_ROOT),
        VSEARCH_PRIVATE_ROOT=str(settings.VSEARCH_PRIVATE_ROOT),
        VSEARCH_ALLOW_DOWNLOADS="0",
        DJANGO_SECRET_KEY="bench",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        **env,
    )
    processes = []
    for n in range(count):
        command = [sys.executable, "-m", "celery", "-A", "vsearch_site", "worker", "-P", "solo", "-c", "1",
                   "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", queue,
                   "-n", f"w{n}-{queue}@%h", "-l", "info"]  # fmt: skip
        out = log.with_suffix(f".{count}.{n}.log")
        processes.append((subprocess.Popen(command, cwd=REPO, env=environment, stdout=out.open("w"),
                                           stderr=subprocess.STDOUT), out))  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if all("ready." in path.read_text() for _, path in processes):
            return processes
        if any(p.poll() is not None for p, _ in processes):
            break
        time.sleep(0.2)
    stop_workers(processes)
    raise SystemExit(f"workers did not start; see {log.parent}")


def stop_workers(processes) -> None:
    for process, _ in processes:
        if process.poll() is None:
            process.terminate()
    for process, _ in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def featurize_anew(variant, *, send) -> float:
    """Seconds from sending the featurize step until the merged features are ready (every item from scratch)."""
    from matching.models import FeatureSet, Variant

    fs = FeatureSet.objects.get(pk=variant.feature_set_id)
    FeatureSet.objects.filter(pk=fs.pk).update(status=FeatureSet.Status.QUEUED, error="")
    Variant.objects.filter(pk=variant.pk).update(
        status=Variant.Status.QUEUED, stage=Variant.Stage.QUEUED, claimed_by="", error=""
    )
    started = time.perf_counter()
    send()
    while True:
        fs.refresh_from_db()
        if fs.status == FeatureSet.Status.FAILED:
            raise SystemExit(f"featurizing failed: {fs.error}")
        if fs.status == FeatureSet.Status.READY:
            return time.perf_counter() - started
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="120 items")
    parser.add_argument("--n", type=int, help="catalog items (default 600, the demo catalog; quick 120)")
    parser.add_argument("--featurizer", default="resnet18", help="a registered featurizer without a weights file")
    parser.add_argument(
        "--workers",
        default="1,1x1,2",
        help="configurations to compare: N workers with the cores shared out, or NxT: N workers of T torch threads",
    )
    parser.add_argument(
        "--chunk", type=int, help="items per chunk (default: a twelfth of the catalog, so that workers can share it)"
    )
    args = parser.parse_args()
    n = args.n or (120 if args.quick else 600)
    counts = [_config(c) for c in args.workers.split(",")]
    why = postgres_available()
    if why or not redis_available():
        raise SystemExit(f"bench.chunks needs PostgreSQL and Redis on 127.0.0.1 ({why or 'Redis unreachable'})")

    data_dir = scratch_dir("chunks")
    database_url = postgres_create(DB_NAME)
    try:
        django_setup(data_dir=data_dir, database_url=database_url, redis_url=REDIS_BENCH_URL)
        _run(n=n, counts=counts, featurizer=args.featurizer, chunk=args.chunk, data_dir=data_dir, db=database_url)
    finally:
        from django.db import connections

        connections.close_all()
        postgres_drop(DB_NAME)


def _config(text: str) -> tuple[int, int]:
    """`N` (workers, the cores shared out) or `NxT` (workers x torch threads each)."""
    count, _, threads = text.partition("x")
    return int(count), int(threads) if threads else max(1, (os.cpu_count() or 1) // int(count))


def _run(*, n: int, counts: list[tuple[int, int]], featurizer: str, chunk: int | None, data_dir: Path, db: str) -> None:
    import torch
    from celery import signature
    from django.conf import settings
    from django.core.management import call_command

    from matching import featurizers, pipeline
    from matching.catalog import Entry
    from matching.features import features_read
    from matching.models import FeatureSet
    from matching.services import item_add, variant_create
    from vsearch_site.celery import app

    app.conf.task_always_eager = False
    default_chunk = settings.VSEARCH_FEATURIZE_CHUNK  # what the projection assumes
    chunk = chunk or -(-n // 12)
    settings.VSEARCH_FEATURIZE_CHUNK = chunk
    call_command("migrate", verbosity=0)
    for i, path in enumerate(demo_png_dir(n)):
        item_add(entry=Entry(path=path, category=f"c{i % 10}", source=f"bench #{i}"), data=path.read_bytes())
    spec = featurizers.spec_for(featurizer)
    variant = variant_create(featurizer=featurizer, layer=spec.layer_names[0], weights="none", metric="l2", build=False)
    dims = featurizers.get(featurizer, "none").dims()

    heading(f"Featurizing {n} demo images with {featurizer} ({', '.join(f'{k} {v}-d' for k, v in dims.items())})")
    # The one-process path (what eager and thread modes run): the reference the workers' features must equal.
    one = featurize_anew(variant, send=lambda: pipeline.variant_featurize(variant_id=variant.pk))
    fs = FeatureSet.objects.get(pk=variant.feature_set_id)
    ref_ids, ref_vectors = (np.array(a) for a in features_read(fs))
    load_before = load_average()
    rows = [["one process, inline", "—", torch.get_num_threads(), f"{one:.1f}", f"{n / one:.2f}", "—", "reference"]]

    queue = f"bench-chunks-{uuid.uuid4().hex[:8]}"
    walls = {}
    for count, threads in counts:
        workers = start_workers(
            count, queue=queue, database_url=db, data_dir=data_dir, env={"VSEARCH_FEATURIZE_CHUNK": str(chunk)},
            log=data_dir / "worker", threads=threads,
        )  # fmt: skip
        try:
            send = signature("matching.featurize", args=(variant.pk,), queue=queue).apply_async
            walls[count, threads] = featurize_anew(variant, send=send)
        finally:
            stop_workers(workers)
        fs.refresh_from_db()
        ids, vectors = features_read(fs)
        same = np.array_equal(ids, ref_ids) and np.array_equal(vectors, ref_vectors)
        difference = "identical" if same else f"differ (max |Δ| {np.abs(np.asarray(vectors) - ref_vectors).max():.2g})"
        wall = walls[count, threads]
        rows.append([f"{count} worker{'s' if count > 1 else ''}", count, threads, f"{wall:.1f}", f"{n / wall:.2f}",
                     f"{walls[counts[0]] / wall:.2f}×", difference])  # fmt: skip
    first = f"{counts[0][0]} worker{'s' if counts[0][0] > 1 else ''} × {counts[0][1]} threads"
    headers = ["path", "workers", "torch threads each", "wall s", "img/s", f"vs {first}", "features"]
    emit(table(headers, rows))
    emit(
        f"\n{n} items in chunks of {chunk} ({-(-n // chunk)} chunks). Wall time: from sending the featurize step to "
        "the merged features being ready (workers already started, the network built in each worker's first chunk). "
        f"Load average before: {load_before}, after: {load_average()}."
    )

    # The cost one worker pays per image: the fastest one-worker configuration measured.
    base = min((config for config in walls if config[0] == 1), key=walls.get, default=counts[0])
    per_image = walls[base] / n
    heading(f"Projection: {PROJECT_ITEMS:,} images with {featurizer}")
    bytes_per_item = 4 * sum(dims.values())
    merge = _copy_rate(data_dir)
    merge_seconds = PROJECT_ITEMS * bytes_per_item / merge
    projection = [
        [workers, f"{PROJECT_ITEMS * per_image / workers / 3600:.1f}", -(-PROJECT_ITEMS // default_chunk // workers)]
        for workers in PROJECT_WORKERS
    ]
    emit(table(["workers (machines like this one)", "hours featurizing", "chunks per worker"], projection))
    emit(
        f"\nPer-image cost: {per_image * 1000:.0f} ms on one worker with this machine's {os.cpu_count()} cores "
        f"(the 1 worker × {base[1]} threads row above, the fastest single worker). Chunks are independent, "
        "so hours = items × cost / workers; in chunks of "
        f"{default_chunk} (the default) the tail adds at most one chunk ({default_chunk * per_image:.0f} s). "
        "The merge then copies every row once: "
        f"{PROJECT_ITEMS * bytes_per_item / 1e9:.1f} GB at the {merge / 1e6:.0f} MB/s this disk took for a 256 MB "
        f"copy, about {merge_seconds:.0f} s. Every worker must read the images and write its chunks to the same "
        "storage (README: workers on more machines)."
    )
    _chunk_overhead(data_dir=data_dir, db=db, queue=queue)


def _copy_rate(data_dir: Path, megabytes: int = 256) -> float:
    """Bytes per second the merge's copy reaches here: rows streamed into a memory-mapped .npy through atomic_file
    (fsync, rename), as featurizing._write_layer writes them."""
    from matching.storage import atomic_file

    rows = megabytes * 2**20 // (512 * 4)
    block = np.random.default_rng(0).standard_normal((4096, 512)).astype(np.float32)
    started = time.perf_counter()
    with atomic_file(data_dir / "copy-probe.npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, 512))
        for at in range(0, rows, len(block)):
            out[at : at + len(block)] = block[: rows - at]
        out.flush()
        del out
    seconds = time.perf_counter() - started
    (data_dir / "copy-probe.npy").unlink()
    return rows * 512 * 4 / seconds


def _chunk_overhead(*, data_dir: Path, db: str, queue: str) -> None:
    """What a chunk costs beyond its images: the colour histogram (almost free per image) in chunks of 8 and in one."""
    from celery import signature
    from django.conf import settings

    from matching.models import Item
    from matching.services import variant_create

    heading("The cost of a chunk (colour histogram: almost nothing per image)")
    n = Item.objects.count()
    variant = variant_create(featurizer="colour-histogram", metric="l2", build=False)
    rows = []
    walls = {}
    for chunk in (n, 8):
        workers = start_workers(
            1, queue=queue, database_url=db, data_dir=data_dir, env={"VSEARCH_FEATURIZE_CHUNK": str(chunk)},
            log=data_dir / f"overhead-{chunk}",
        )  # fmt: skip
        try:
            settings.VSEARCH_FEATURIZE_CHUNK = chunk
            send = signature("matching.featurize", args=(variant.pk,), queue=queue).apply_async
            walls[chunk] = featurize_anew(variant, send=send)
        finally:
            stop_workers(workers)
        rows.append([chunk, -(-n // chunk), f"{walls[chunk]:.2f}"])
    per_chunk = (walls[8] - walls[n]) / (-(-n // 8) - 1)
    emit(table(["items per chunk", "chunks", "wall s (1 worker)"], rows))
    per_chunk = max(per_chunk, 0.0)
    emit(f"\nEach extra chunk cost {per_chunk * 1000:.0f} ms (a task, a claim, progress rows, a file, a merge read).")


if __name__ == "__main__":
    main()
