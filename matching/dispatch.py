"""Where background work runs: a Celery worker (REDIS_URL), a thread of this process (no broker), or inline."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, transaction

from matching import pipeline

log = logging.getLogger(__name__)

# One build at a time: featurizing already uses every core, and SQLite has one writer.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vsearch-build")
_futures: list[Future] = []


def _run_in_thread(variant_id: int) -> None:
    close_old_connections()
    try:
        pipeline.variant_build_inline(variant_id=variant_id)
    except Exception:
        log.exception("build of variant %s failed", variant_id)
    finally:
        close_old_connections()


def enqueue_build(variant_id: int) -> None:
    """Start the variant's build after the current transaction commits (inline in eager mode)."""
    mode = settings.VSEARCH_TASKS
    if mode == "eager":
        pipeline.variant_build_inline(variant_id=variant_id)
        return

    def send() -> None:
        if mode == "celery":
            from matching.tasks import build_chain

            build_chain(variant_id).apply_async()
        else:
            _futures.append(_executor.submit(_run_in_thread, variant_id))

    transaction.on_commit(send)


def wait_for_threads(timeout: float | None = None) -> None:
    """Block until thread-mode builds finish (management commands and tests)."""
    while _futures:
        _futures.pop(0).result(timeout=timeout)
