"""Celery adapters: take an id, call one pipeline step. Acknowledged late, so a killed worker's step is redelivered."""

from __future__ import annotations

import logging

from celery import chain, shared_task
from celery.signals import worker_ready
from django.db import OperationalError

from matching import pipeline

log = logging.getLogger(__name__)

RESEND_EVERY = 60.0  # seconds between looks for builds that found the broker down

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


@worker_ready.connect
def _resend_when_a_worker_starts(sender=None, **kwargs) -> None:
    """Builds sent while the broker was down go out once a worker is up (and then every minute)."""
    import threading

    def loop() -> None:
        from django.db import close_old_connections

        from matching.dispatch import resend_pending as resend

        while True:
            try:
                resend()
            except Exception as exc:  # the database may be down for a while: keep trying
                log.warning("could not resend pending builds: %s", exc)
            finally:
                close_old_connections()
            threading.Event().wait(RESEND_EVERY)

    threading.Thread(target=loop, name="vsearch-resend", daemon=True).start()
