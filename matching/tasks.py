"""Celery adapters: take an id, call one pipeline step. Acknowledged late, so a killed worker's step is redelivered
(and claimed again only once its owner is gone: pipeline.claimed_stage, featurizing's chunk claims)."""

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


@shared_task(bind=True, name="matching.featurize", **STEP_OPTIONS)
def featurize(self, variant_id: int) -> None:
    """Plans the featurizing run; its chunks go to every worker as a group, and the step that finishes the run (the
    merge) takes this one's place in the build, followed by the rest of it."""
    run_id = pipeline.variant_featurize(variant_id=variant_id, distribute=True)
    if run_id is not None:
        queue = dispatch.queue_of(self.request)
        dispatch.featurize_chunks_send(run_id, queue=queue)
        return self.replace(dispatch.featurize_finish_signature(variant_id, run_id, queue=queue))


@shared_task(name="matching.featurize_chunk", **STEP_OPTIONS)
def featurize_chunk(chunk_id: int) -> None:
    pipeline.chunk_featurize(chunk_id=chunk_id)


@shared_task(name="matching.featurize_finish", **STEP_OPTIONS)
def featurize_finish(variant_id: int, run_id: int) -> None:
    pipeline.variant_featurize_finish(variant_id=variant_id, run_id=run_id)


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
