"""Reads of the catalog and of variants."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, Count, F, IntegerField, Value, When

from matching.models import Metric, Variant


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
