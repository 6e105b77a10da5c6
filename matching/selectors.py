"""Reads of the catalog, of variants and of their maps: the offline table, the staff comparison of every model's
matches, how ready models cover the catalog, and the maps of the feature spaces."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

import numpy as np
from django.db.models import Case, Count, F, IntegerField, Max, Min, Sum, Value, When

from matching import pipeline
from matching.features import catalog_ids, features_read, file_fingerprint, fingerprint, items_path, items_read
from matching.models import FeatureSet, Item, Layout, MatchPair, Metric, Variant
from matching.storage import private_path
from matching.thumbnails import thumbnail_url
from vsearch_site.errors import InvalidInput, NotFound


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


# ---------------------------------------------------------------------------------------- compare (staff)


@dataclass(frozen=True)
class ItemRef:
    id: int
    category: str
    image: str


@dataclass(frozen=True)
class Match:
    pair_id: int
    rank: int
    distance: float
    item: ItemRef
    shared_with: tuple[int, ...]  # the other ready variants whose top-k holds the same card


@dataclass(frozen=True)
class Column:
    variant_id: int
    name: str
    rotation: str
    metric: str
    search: str  # how its pairs were found: exact, annoy or random
    matches: list[Match]


@dataclass(frozen=True)
class Comparison:
    query: ItemRef
    category: str | None  # the scope previous/next and random move in (None: every query)
    previous: int | None
    next: int | None
    columns: list[Column]


class QueryNotFound(NotFound):
    """No such query item, or none in the asked category."""


def _queries(category: str | None):
    """Query items of ready variants (a variant built on a sample has pairs for its sample only)."""
    match_pairs = MatchPair.objects.filter(variant__status=Variant.Status.READY)
    if category is not None:
        match_pairs = match_pairs.filter(query_item__category=category)
    return match_pairs


def item_ref(item: Item) -> ItemRef:
    return ItemRef(item.pk, item.category, item.image_url)


def compare_query(*, item_id: int | None = None, category: str | None = None, pick_random: bool = False,
                  rng: random.Random | None = None) -> Item:  # fmt: skip
    """The query to compare on: the item asked for, a random query (in the category), or the category's first."""
    if item_id is not None:
        item = Item.objects.filter(pk=item_id).first()
        if item is None:
            raise QueryNotFound(f"There is no catalog item #{item_id}.")
        if category is not None and item.category != category:
            raise InvalidInput(f"Item #{item_id} is a {item.category}, not a {category}.")
        return item
    queries = _queries(category)
    low = queries.aggregate(low=Min("query_item_id"))["low"]
    if low is None:
        where = f" in the category {category!r}" if category is not None else ""
        raise QueryNotFound(f"No model has matches for any item{where} yet.")
    first = low
    if pick_random:
        # A random item id in the range, then the first query at or after it: two indexed reads at any size (each
        # query's chance is the gap before it, close to uniform for a catalog whose queries are most of its items).
        high = queries.aggregate(high=Max("query_item_id"))["high"]
        start = (rng or random.Random()).randint(low, high)
        first = queries.filter(query_item_id__gte=start).aggregate(at=Min("query_item_id"))["at"]
    return Item.objects.get(pk=first)


def compare_columns(*, query: Item, category: str | None = None) -> Comparison:
    """Every ready variant's stored top-k for one query, side by side, each match saying which other variants
    hold the same card; and the queries before and after it (in `category`, if given) for stepping through."""
    variants = list(Variant.objects.filter(status=Variant.Status.READY).order_by("id"))
    rows = list(
        MatchPair.objects.filter(query_item_id=query.pk, variant__status=Variant.Status.READY)
        .select_related("pair__match_item")
        .order_by("variant_id", "rank")
    )
    makers: dict[int, set[int]] = {}
    for row in rows:
        makers.setdefault(row.pair_id, set()).add(row.variant_id)
    by_variant: dict[int, list[Match]] = {}
    for row in rows:
        match = row.pair.match_item
        by_variant.setdefault(row.variant_id, []).append(
            Match(
                pair_id=row.pair_id,
                rank=row.rank,
                distance=row.distance,
                item=item_ref(match),
                shared_with=tuple(sorted(makers[row.pair_id] - {row.variant_id})),
            )
        )
    columns = [
        Column(v.pk, v.name, v.rotation, v.metric, v.pairs_search or "random", by_variant.get(v.pk, []))
        for v in variants
    ]
    queries = _queries(category)
    previous = queries.filter(query_item_id__lt=query.pk).aggregate(at=Max("query_item_id"))["at"]
    following = queries.filter(query_item_id__gt=query.pk).aggregate(at=Min("query_item_id"))["at"]
    return Comparison(item_ref(query), category, previous, following, columns)


def query_categories() -> list[str]:
    """The catalog's categories, for choosing a query."""
    return list(Item.objects.order_by("category").values_list("category", flat=True).distinct())


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


# ---------------------------------------------------------------------------------------- coverage


@dataclass(frozen=True)
class Coverage:
    """How a ready model's pairs cover the catalog as it is now."""

    added: int  # catalog items its pairs do not cover yet: a refresh adds them
    removed: int  # items its pairs were computed over that are gone from the catalog: a refresh repairs
    unembedded: int = 0  # catalog items its uploaded embeddings lack: a refresh cannot add them (upload again)
    features_changed: bool = False  # its features were computed anew (new weights) after its pairs

    @property
    def stale(self) -> bool:
        return bool(self.added or self.removed or self.features_changed)


class CatalogNow:
    """The catalog's fingerprint (one aggregate query) and, only once some comparison needs them, its ids."""

    def __init__(self):
        row = Item.objects.aggregate(n=Count("id"), top=Max("id"), total=Sum("id"))
        self.fingerprint = (row["n"], row["top"] or 0, int(row["total"] or 0))
        self._ids: np.ndarray | None = None

    @property
    def ids(self) -> np.ndarray:
        if self._ids is None:
            self._ids = catalog_ids()
        return self._ids


def variant_coverage(variant: Variant, catalog: CatalogNow | None = None) -> Coverage | None:
    """What a ready model's pairs miss of the catalog, and what they hold that is gone (None unless ready: a build
    under way covers the catalog as it is when it featurizes). Costs a read of every catalog id only when the
    catalog's fingerprint differs from that of the model's items file."""
    if variant.status != Variant.Status.READY:
        return None
    catalog = catalog or CatalogNow()
    fs = variant.feature_set
    changed = fs is not None and variant.features_generation != fs.generation
    items = None
    known = file_fingerprint(items_path(variant.pk))
    if known is None:  # built before items files were kept: the items its pairs name
        items = _items_of_pairs(variant.pk)
        known = fingerprint(items)
    if known == catalog.fingerprint:
        return Coverage(added=0, removed=0, features_changed=changed)
    items = items if items is not None else items_read(variant.pk)
    added = np.setdiff1d(catalog.ids, items)
    removed = len(np.setdiff1d(items, catalog.ids))
    unembedded = 0
    if fs is not None and fs.featurizer == "embeddings" and fs.path:
        embedded = np.isin(added, features_read(fs)[0])
        unembedded = int((~embedded).sum())
        added = added[embedded]
    return Coverage(added=len(added), removed=removed, unembedded=unembedded, features_changed=changed)


def _items_of_pairs(variant_id: int) -> np.ndarray:
    rows = MatchPair.objects.filter(variant_id=variant_id)
    queries = rows.values_list("query_item_id", flat=True).distinct()
    matches = rows.values_list("pair__match_item_id", flat=True).distinct()
    return np.union1d(np.fromiter(queries, dtype=np.int64), np.fromiter(matches, dtype=np.int64))


def coverage_of(variants) -> dict[int, Coverage | None]:
    """variant id -> its coverage, the catalog read once for all."""
    catalog = CatalogNow()
    return {variant.pk: variant_coverage(variant, catalog) for variant in variants}


def stale_variants() -> list[tuple[Variant, Coverage]]:
    """Every ready model whose pairs do not cover the catalog as it is (or whose features changed), oldest first."""
    variants = Variant.objects.filter(status=Variant.Status.READY).select_related("feature_set").order_by("id")
    found = coverage_of(variants)
    return [(variant, found[variant.pk]) for variant in variants if found[variant.pk] and found[variant.pk].stale]
