"""Reads of the catalog and of variants: the offline table, and how ready models cover the catalog."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db.models import Case, Count, F, IntegerField, Max, Sum, Value, When

from matching.features import catalog_ids, features_read, file_fingerprint, fingerprint, items_path, items_read
from matching.models import Item, MatchPair, Metric, Variant


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
