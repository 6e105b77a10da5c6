"""Celery adapters: take an id, call one pipeline step. Acknowledged late, so a killed worker's step is redelivered
(and claimed again only once its owner is gone: pipeline.claimed_stage)."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready
from django.db import OperationalError

from matching import dispatch, pipeline

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


@shared_task(name="matching.layout", **STEP_OPTIONS)
def layout(variant_id: int) -> None:
    pipeline.variant_layout(variant_id=variant_id)


@shared_task(name="matching.feature_set_layout", **STEP_OPTIONS)
def feature_set_layout(feature_set_id: int) -> None:
    pipeline.feature_set_layout(feature_set_id=feature_set_id)


@shared_task(name="matching.resend_pending", ignore_result=True)
def resend_pending() -> int:
    """Builds sent while the broker was down; on Celery beat's schedule (CELERY_BEAT_SCHEDULE)."""
    return dispatch.resend_pending()


@worker_ready.connect
def _resend_when_a_worker_starts(sender=None, **kwargs) -> None:
    """A worker that starts sends what waited for it at once, not at beat's next tick."""
    resend_pending.delay()
