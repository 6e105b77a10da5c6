"""POST /api/search through Django and DRF in this process (a staff client: no throttle), engine in memory:
p50/p95 of a search by item id, and of a search by photo beside the featurizer's own single-image time on the
same photo (decode and preprocessing included in both, or the bare network on a ready tensor).

The catalog is N synthetic items (rows only, no image files) whose ResNet-18 penultimate features (512-d) are a
Gaussian mixture (bench.index.synthetic); the query photo goes through the real, untrained ResNet-18, so the
forward time is the real one. Targets: by item p50 <= 20 ms; by photo p50 <= 2x the single-image forward.

    nice -n 10 .venv/bin/python -m bench.search [--quick] [--items 10000] [--runs 200]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch

from bench.common import django_setup, emit, fmt_seconds, heading, load_average, scratch_dir, table
from bench.index import synthetic

K = 10


def photo(width: int, height: int, *, seed: int = 0) -> bytes:
    """A photo-like JPEG: smooth gradients, a few shapes, sensor noise (noise-free JPEGs are unrealistically small)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200 + 30, y / height * 180 + 40, (x + y) / (width + height) * 150 + 60], axis=-1)
    image = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        x1, y1 = x0 + rng.integers(width // 20, width // 3), y0 + rng.integers(height // 20, height // 3)
        draw.ellipse((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    image = image.filter(ImageFilter.GaussianBlur(2))
    noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def timed(fn, runs: int) -> list[float]:
    fn()  # warm: engine, featurizer, caches
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def interleaved(fns, runs: int) -> list[list[float]]:
    """Wall times of each of `fns`, called in turn `runs` times (after one warm-up round)."""
    for fn in fns:
        fn()
    out = [[] for _ in fns]
    for _ in range(runs):
        for times, fn in zip(out, fns, strict=True):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return out


def pct(times: list[float], q: float) -> float:
    return float(np.percentile(times, q))


def world(n: int):
    """N catalog rows, a ready ResNet-18 feature set of synthetic vectors, and a cosine model built on it."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from matching import pipeline
    from matching.features import array_save
    from matching.models import FeatureSet, Item, Variant
    from matching.services import variant_create

    rng = np.random.default_rng(0)
    categories = [f"category-{c}" for c in range(20)]
    Item.objects.bulk_create(
        [
            Item(
                sha256=f"{i:064x}",
                image=f"items/bench/{i}.png",
                category=categories[int(rng.integers(0, 20))],
                width=64,
                height=64,
            )
            for i in range(n)
        ],
        batch_size=2000,
    )
    ids = np.array(Item.objects.order_by("id").values_list("id", flat=True), dtype=np.int64)
    fs = FeatureSet.objects.create(featurizer="resnet18", layer="penultimate", weights="none")
    folder = "features/resnet18/none"
    array_save(f"{folder}/ids.npy", ids)
    array_save(f"{folder}/penultimate.npy", synthetic(n, 512, like=None, seed=1))
    FeatureSet.objects.filter(pk=fs.pk).update(
        status=FeatureSet.Status.READY, path=f"{folder}/penultimate.npy", dim=512, n_items=n, progress=1.0
    )
    variant = variant_create(
        featurizer="resnet18", layer="penultimate", weights="none", metric="cosine", k=K, sample_size=200, build=False
    )
    for step in (pipeline.variant_featurize, pipeline.variant_index, pipeline.variant_pairs, pipeline.variant_evaluate):
        step(variant_id=variant.pk)  # the map (layout) step is bench.layout's business
    variant.refresh_from_db()
    assert variant.status == Variant.Status.READY, variant.error
    return variant, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 items, 30 runs")
    parser.add_argument("--items", type=int, help="catalog size (default 10000; quick 2000)")
    parser.add_argument("--runs", type=int, help="timed requests per row (default 200 by item, 40 by photo)")
    args = parser.parse_args()
    n = args.items or (2000 if args.quick else 10_000)
    item_runs = args.runs or (30 if args.quick else 200)
    photo_runs = args.runs or (10 if args.quick else 40)

    django_setup(data_dir=scratch_dir("search"))
    from django.contrib.auth.models import User
    from PIL import Image
    from rest_framework.test import APIClient

    from matching import featurizers
    from matching.models import MatchPair
    from matching.search import engine_for

    t0 = time.perf_counter()
    variant, ids = world(n)
    emit(f"<!-- world: {n:,} items built in {time.perf_counter() - t0:.1f} s; load {load_average()} -->")
    client = APIClient(SERVER_NAME="127.0.0.1")  # a host ALLOWED_HOSTS has
    client.force_authenticate(User.objects.create_user("bench", is_staff=True))
    t0 = time.perf_counter()
    engine = engine_for(variant)
    load = time.perf_counter() - t0
    searcher = type(engine.searcher).__name__
    rng = np.random.default_rng(1)

    stored = np.array(sorted(set(MatchPair.objects.filter(variant=variant).values_list("query_item_id", flat=True))))

    def by_item(k: int, pool: np.ndarray):
        item = int(pool[rng.integers(0, len(pool))])
        response = client.post("/api/search", {"item": item, "model": variant.pk, "k": k}, format="json")
        assert response.status_code == 200, response.content

    heading(f"Search: {n:,} items, ResNet-18 penultimate (512-d), cosine, k={K}, {searcher}")
    emit(f"Engine load (features, copy groups, searcher), once per process: {fmt_seconds(load)}.\n")
    from_pairs = timed(lambda: by_item(K, stored), item_runs)
    from_searcher = timed(lambda: by_item(2 * K, ids), item_runs)

    featurizer = featurizers.get("resnet18", "none")
    with Image.open(io.BytesIO(photo(640, 480))) as image:
        tensor = featurizer.transform(image.convert("RGB"))[None]
    photo_rows, ratio_rows = [], []
    for label, (w, h) in (("640x480 JPEG", (640, 480)), ("4000x3000 JPEG (phone)", (4000, 3000))):
        data = photo(w, h)

        def by_photo(data=data):
            upload = io.BytesIO(data)
            upload.name = "photo.jpg"
            response = client.post("/api/search", {"image": upload, "model": variant.pk, "k": K}, format="multipart")
            assert response.status_code == 200, response.content

        def alone(data=data):
            with Image.open(io.BytesIO(data)) as image:
                featurizer.embed([image.convert("RGB")])

        # Interleaved, so that the load of a shared machine weighs on all three alike.
        api, whole, bare = interleaved([by_photo, alone, lambda: featurizer.embed_batch(tensor)], photo_runs)
        photo_rows.append((f"by photo, {label} ({len(data) / 1e6:.1f} MB)", photo_runs, pct(api, 50), pct(api, 95), ""))
        ratio_rows.append(
            (
                label,
                fmt_seconds(pct(bare, 50)),
                fmt_seconds(pct(whole, 50)),
                fmt_seconds(pct(api, 50)),
                f"{pct(api, 50) / pct(bare, 50):.2f}x",
                f"{pct(api, 50) / pct(whole, 50):.2f}x",
            )
        )

    rows = [
        (f"by item id, k={K}: its stored pairs", item_runs, pct(from_pairs, 50), pct(from_pairs, 95), "≤ 20 ms"),
        (f"by item id, k={2 * K}: the {searcher}", item_runs, pct(from_searcher, 50), pct(from_searcher, 95), ""),
    ] + photo_rows
    emit(
        table(
            ["POST /api/search", "runs", "p50", "p95", "target"],
            [(what, runs, fmt_seconds(p50), fmt_seconds(p95), target) for what, runs, p50, p95, target in rows],
        )
    )
    emit("")
    emit(
        table(
            [
                "photo",
                "forward (224x224 tensor), p50",
                "featurizer alone (decode + preprocess + forward), p50",
                "by photo through the API, p50",
                "API / forward",
                "API / featurizer alone",
            ],
            ratio_rows,
        )
    )
    emit(
        f"\nBy item: up to the model's k (what voters are shown) the answer is the model's stored pairs, one indexed "
        "read; beyond it, the model's searcher (exact here, up to VSEARCH_EXACT_MAX_ITEMS). "
        f"Torch threads: {torch.get_num_threads()}. Target: by photo p50 ≤ 2x the single-image forward. The API "
        "decodes a JPEG at the smallest 1/2^n scale that keeps twice the side the transform resizes to (512 px here: "
        "matching.search.draft_side); the "
        "featurizer-alone column decodes it whole, as the build does a catalog image."
    )


if __name__ == "__main__":
    main()
