"""Site-wide views: catalog images (content-addressed, so cached forever) and the health check."""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import cache_control
from django.views.defaults import bad_request as django_bad_request
from django.views.defaults import page_not_found
from django.views.defaults import server_error as django_server_error
from django.views.static import serve

from vsearch_site.errors import (
    DATABASE_DOWN,
    DATABASE_RETRY_AFTER,
    bad_request_detail,
    database_unavailable,
    database_unavailable_logged,
)

# No template, no static file, no database: this page must render while the database is down.
DATABASE_DOWN_PAGE = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>Back in a moment · vsearch</title></head>"
    "<body><h1>Back in a moment</h1><p>The database is unavailable for a moment. Reload the page in a few seconds; "
    "votes you made before this are safe.</p></body></html>"
)


@cache_control(public=True, max_age=31536000, immutable=True)
def media(request, path: str):
    """Catalog images only: anything else under the media root (a build file left by an old install) is 404."""
    if path.split("/", 1)[0] not in settings.VSEARCH_PUBLIC_MEDIA_FOLDERS:
        raise Http404("No such image.")
    return serve(request, path, document_root=settings.MEDIA_ROOT)


def health(request):
    """Database, cache/broker and worker status: "ok"; "degraded" (200) when Redis is down (voting goes on,
    throttled per process, builds wait); "error" (503) when the database is down."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    if settings.REDIS_URL:
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {exc.__class__.__name__}"
        if settings.VSEARCH_TASKS == "celery" and checks["redis"] == "ok":
            checks["workers"] = _workers_online()
    else:
        checks["redis"] = "not configured"
        checks["workers"] = f"in-process ({settings.VSEARCH_TASKS})"
    healthy = checks["database"] == "ok"
    degraded = checks["redis"].startswith("error") or checks.get("workers") == "none online"
    status = "error" if not healthy else "degraded" if degraded else "ok"
    return JsonResponse({"status": status, "checks": checks}, status=200 if healthy else 503)


def not_found(request, exception=None):
    """API paths answer JSON, pages the usual HTML."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"No API endpoint at {request.path}."}, status=404)
    return page_not_found(request, exception)


def bad_request(request, exception=None):
    """A request Django refused before any view (or in middleware): JSON under /api/, as every API error is."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": bad_request_detail(exception)}, status=400)
    return django_bad_request(request, exception)


def database_down(request) -> HttpResponse:
    """503 with Retry-After while the database is unreachable: JSON with a `detail` under /api/, a plain page
    elsewhere."""
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": DATABASE_DOWN}, status=503)
    else:
        response = HttpResponse(DATABASE_DOWN_PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    response["Cache-Control"] = "no-store"
    return response


def server_error(request):
    """An uncaught error: a lost database is a 503 wherever it happened (a middleware included); anything else 500."""
    error = sys.exc_info()[1]
    if database_unavailable(error):
        database_unavailable_logged(request, error)
        return database_down(request)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal error; it has been logged."}, status=500)
    return django_server_error(request)


def _workers_online() -> str:
    """Celery workers answering a ping; cached, since the ping waits a second for replies."""
    status = cache.get("health:workers")
    if status is None:
        from vsearch_site.celery import app

        try:
            replies = app.control.inspect(timeout=1.0).ping() or {}
        except Exception:
            replies = {}
        status = f"{len(replies)} online" if replies else "none online"
        cache.set("health:workers", status, 30)
    return status
