"""Celery adapters: take an id, call one pipeline step. Acknowledged late, so a killed worker's step is redelivered."""

from __future__ import annotations

from celery import chain, shared_task
from django.db import OperationalError

from matching import pipeline

STEP_OPTIONS = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
)


@shared_task(name="matching.featurize", **STEP_OPTIONS)
def featurize(variant_id: int) -> None:
    pipeline.variant_featurize(variant_id=variant_id)


@shared_task(name="matching.index", **STEP_OPTIONS)
def build_index(variant_id: int) -> None:
    pipeline.variant_index(variant_id=variant_id)


@shared_task(name="matching.pairs", **STEP_OPTIONS)
def compute_pairs(variant_id: int) -> None:
    pipeline.variant_pairs(variant_id=variant_id)


@shared_task(name="matching.evaluate", **STEP_OPTIONS)
def evaluate(variant_id: int) -> None:
    pipeline.variant_evaluate(variant_id=variant_id)


def build_chain(variant_id: int):
    return chain(
        featurize.si(variant_id), build_index.si(variant_id), compute_pairs.si(variant_id), evaluate.si(variant_id)
    )
