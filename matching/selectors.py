"""Reads of the catalog, of variants and of their maps."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from django.db.models import Case, Count, F, IntegerField, Value, When

from matching import pipeline
from matching.models import FeatureSet, Item, Layout, Metric, Variant
from matching.storage import private_path
from matching.thumbnails import thumbnail_url


@dataclass(frozen=True)
class OfflineRow:
    name: str
    status: str
    queries: int
    p_at_1: float | None
    p_at_k: float | None
    recall_at_k: float | None
    search: str
    build_seconds: float | None


def offline_table() -> list[OfflineRow]:
    """Every variant with its offline metrics, the random control first, then best P@1 first."""
    variants = Variant.objects.annotate(
        queries=Count("pairs__query_item", distinct=True),
        control=Case(When(metric=Metric.RANDOM, then=Value(0)), default=Value(1), output_field=IntegerField()),
    ).order_by("control", F("p_at_1").desc(nulls_last=True), "name")
    return [
        OfflineRow(v.name, v.status, v.queries, v.p_at_1, v.p_at_k, v.recall_at_k, v.pairs_search, v.build_seconds)
        for v in variants
    ]


# ---------------------------------------------------------------------------------------- maps


@dataclass(frozen=True)
class MapSummary:
    feature_set: FeatureSet
    status: str  # a Layout status, or "none" (never asked for)
    current: bool
    variants: list[Variant]


def map_summaries() -> list[MapSummary]:
    """Every ready feature set with its map's state and the ready variants built on it."""
    feature_sets = FeatureSet.objects.filter(status=FeatureSet.Status.READY).select_related("layout").order_by("id")
    variants: dict[int, list[Variant]] = {}
    for v in Variant.objects.filter(status=Variant.Status.READY, feature_set__isnull=False).order_by("id"):
        variants.setdefault(v.feature_set_id, []).append(v)
    out = []
    for fs in feature_sets:
        layout = getattr(fs, "layout", None)
        status = layout.status if layout else "none"
        out.append(MapSummary(fs, status, bool(layout and pipeline.layout_current(layout)), variants.get(fs.pk, [])))
    return out


@dataclass(frozen=True)
class MapPoints:
    feature_set: FeatureSet
    layout: Layout | None
    current: bool
    categories: list[str] = field(default_factory=list)
    item: list[int] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    category: list[int] = field(default_factory=list)  # index into categories
    thumbnail: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=8)
def _layout_file(path: str, stamp: int) -> tuple[np.ndarray, np.ndarray]:
    """A map's file, read once per process and file version (the build replaces it by a rename)."""
    with np.load(path) as data:
        return data["ids"], data["xy"]


def map_points(*, feature_set: FeatureSet) -> MapPoints:
    """The feature set's map as columns, read from the file the build wrote (nothing recomputed): one point per
    item still in the catalog, coloured by category index, with its thumbnail's URL."""
    layout = Layout.objects.filter(feature_set=feature_set).select_related("feature_set").first()
    if layout is None or not layout.path or not private_path(layout.path).exists():
        return MapPoints(feature_set, layout, False)
    path = private_path(layout.path)
    ids, xy = _layout_file(str(path), path.stat().st_mtime_ns)
    wanted = set(ids.tolist())
    # The whole catalog, joined here: an IN list of 100k ids is more than SQLite takes in one query.
    rows = {
        pk: (category, sha, crop)
        for pk, category, sha, crop in Item.objects.values_list("id", "category", "sha256", "crop_key").iterator(
            chunk_size=5000
        )
        if pk in wanted
    }
    categories = sorted({category for category, _, _ in rows.values()})
    code = {c: i for i, c in enumerate(categories)}
    keep = [p for p, pk in enumerate(ids.tolist()) if pk in rows]
    kept_ids = ids[keep].tolist()
    return MapPoints(
        feature_set=feature_set,
        layout=layout,
        current=pipeline.layout_current(layout),
        categories=categories,
        item=kept_ids,
        x=np.round(xy[keep, 0].astype(np.float64), 5).tolist(),
        y=np.round(xy[keep, 1].astype(np.float64), 5).tolist(),
        category=[code[rows[pk][0]] for pk in kept_ids],
        thumbnail=[thumbnail_url(rows[pk][1], rows[pk][2]) for pk in kept_ids],
    )
