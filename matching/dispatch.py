"""Where background work runs: a Celery worker (REDIS_URL), a thread of this process (no broker), or inline.

With Celery, a build sent while the broker is down is not lost: the variant is marked
`dispatch_pending` with a message, and `resend_pending()` sends it once the broker answers again
(the `matching.resend_pending` task runs it when a worker starts and then on Celery beat's schedule;
so does `manage.py build_variants`).

Tasks are sent by name, so this module does not import the task adapters (which import it).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from celery import chain, group, signature
from django.conf import settings
from django.db import close_old_connections, transaction

from matching import pipeline
from matching.models import FeatureChunk, Variant
from vsearch_site.errors import Unavailable

log = logging.getLogger(__name__)

# The map (matching.layout) comes last: the variant is ready for voters before its features are laid out.
STEP_TASKS = ("matching.featurize", "matching.index", "matching.pairs", "matching.evaluate", "matching.layout")
LAYOUT_TASK = "matching.feature_set_layout"
# One build at a time: featurizing already uses every core, and SQLite has one writer.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vsearch-build")
_futures: list[Future] = []
BROKER_DOWN = "Waiting for the task broker (Redis is unreachable): the build starts when it is back."


def build_signature(variant_id: int, *, queue: str | None = None):
    """The Celery chain of a variant's build steps (each an idempotent task claiming its step)."""
    options = {"queue": queue} if queue else {}
    return chain(*(signature(name, args=(variant_id,), immutable=True, **options) for name in STEP_TASKS))


def featurize_chunks_send(run_id: int, *, queue: str | None = None) -> int:
    """Spread a featurizing run over the workers: one task per chunk not done yet (a group, sent now). Returns how
    many went out. Any process may embed any chunk: each is claimed once (matching.featurizing)."""
    options = {"queue": queue} if queue else {}
    chunks = FeatureChunk.objects.filter(run_id=run_id).exclude(status=FeatureChunk.Status.DONE).order_by("number")
    tasks = [
        signature("matching.featurize_chunk", args=(pk,), immutable=True, **options)
        for pk in chunks.values_list("pk", flat=True)
    ]
    if tasks:
        group(tasks).apply_async()
    return len(tasks)


def featurize_finish_signature(variant_id: int, run_id: int, *, queue: str | None = None):
    """The step that finishes a run for a variant's build (it replaces the featurize step, so the rest of the build
    follows it): it embeds chunks no task has taken yet, takes over those of dead workers at once, waits for those
    live workers hold, then merges. It does not wait on the broker to redeliver a killed worker's chunk."""
    options = {"queue": queue} if queue else {}
    return signature("matching.featurize_finish", args=(variant_id, run_id), immutable=True, **options)


def queue_of(request) -> str | None:
    """The queue a task came from, so that the tasks it spawns go to the same workers."""
    return (request.delivery_info or {}).get("routing_key") or None


def _run_in_thread(variant_id: int) -> None:
    close_old_connections()
    try:
        pipeline.variant_build_inline(variant_id=variant_id)
    except Exception:
        log.exception("build of variant %s failed", variant_id)
    finally:
        close_old_connections()


def _send_to_celery(variant_id: int) -> bool:
    from kombu.exceptions import OperationalError as BrokerError

    try:
        # No publish retries: a web request must not wait on a dead broker.
        build_signature(variant_id).apply_async(retry=False)
    except (BrokerError, ConnectionError, OSError) as exc:
        log.warning("broker unreachable, build of variant %s is pending: %s", variant_id, exc)
        Variant.objects.filter(pk=variant_id).update(dispatch_pending=True, error=BROKER_DOWN)
        return False
    Variant.objects.filter(pk=variant_id, dispatch_pending=True).update(dispatch_pending=False, error="")
    return True


def enqueue_build(variant_id: int) -> None:
    """Start the variant's build after the current transaction commits (inline in eager mode)."""
    mode = settings.VSEARCH_TASKS
    if mode == "eager":
        pipeline.variant_build_inline(variant_id=variant_id)
        return

    def send() -> None:
        if mode == "celery":
            _send_to_celery(variant_id)
        else:
            _futures[:] = [f for f in _futures if not f.done()]  # a long-running server keeps only live ones
            _futures.append(_executor.submit(_run_in_thread, variant_id))

    transaction.on_commit(send)


def enqueue_layout(feature_set_id: int) -> None:
    """Lay out a feature set's map (inline in eager mode). Nothing waits on a map, so with the broker down this
    says so (Unavailable) rather than remembering it: staff can simply ask again."""
    mode = settings.VSEARCH_TASKS
    if mode == "eager":
        pipeline.feature_set_layout(feature_set_id=feature_set_id)
    elif mode == "celery":
        from kombu.exceptions import OperationalError as BrokerError

        try:
            signature(LAYOUT_TASK, args=(feature_set_id,), immutable=True).apply_async(retry=False)
        except (BrokerError, ConnectionError, OSError):
            raise Unavailable("The task broker (Redis) is unreachable: ask for the map again later.") from None
    else:
        _futures[:] = [f for f in _futures if not f.done()]
        _futures.append(_executor.submit(_layout_in_thread, feature_set_id))


def _layout_in_thread(feature_set_id: int) -> None:
    close_old_connections()
    try:
        pipeline.feature_set_layout(feature_set_id=feature_set_id)
    except Exception:
        log.exception("map of feature set %s failed", feature_set_id)
    finally:
        close_old_connections()


def resend_pending() -> int:
    """Send again every build that found the broker down; returns how many went out."""
    sent = 0
    for variant_id in Variant.objects.filter(dispatch_pending=True).values_list("pk", flat=True):
        if not _send_to_celery(variant_id):
            break  # still down: try again later
        sent += 1
    return sent
