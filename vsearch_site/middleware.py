"""Site-wide middleware: the Content-Security-Policy header, JSON errors everywhere under /api/, and 503 (not 500)
while the database is unreachable."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import JsonResponse
from django.http.multipartparser import MultiPartParserError

from vsearch_site.errors import bad_request_detail, database_unavailable, database_unavailable_logged
from vsearch_site.views import database_down

API_PREFIX = "/api/"
# Headers an error response keeps when it is rewritten as JSON: they tell a client what to do next.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Vary")


class ContentSecurityPolicyMiddleware:
    """Send settings.VSEARCH_CSP as every response's Content-Security-Policy (none when it is empty).

    Read on each response, so a test can change it. Django 6 has this built in; 5.2 does not.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.VSEARCH_CSP
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


class ApiJsonErrorsMiddleware:
    """Every error under /api/ is a JSON body with a `detail`, including those Django raises before DRF sees them.

    A body over DATA_UPLOAD_MAX_MEMORY_SIZE, more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS or an unreadable
    multipart body raise inside the view (or the CSRF check) as Django exceptions, not DRF ones; Django would answer
    its HTML 400 page. Those become a JSON 400 naming the problem; any other error page left under /api/ (debug
    pages, errors raised in middleware) is rewritten as JSON with its status's reason.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400 or response.streaming:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        rewritten = JsonResponse({"detail": f"{response.reason_phrase}."}, status=response.status_code)
        for header in KEPT_HEADERS:
            if header in response:
                rewritten[header] = response[header]
        return rewritten

    def process_exception(self, request, exception):
        if not request.path.startswith(API_PREFIX):
            return None
        if not isinstance(exception, SuspiciousOperation | BadRequest | MultiPartParserError):
            return None
        logging.getLogger(f"django.security.{exception.__class__.__name__}").warning(
            "Bad request to %s: %s", request.path, exception
        )
        return JsonResponse({"detail": bad_request_detail(exception)}, status=400)


class DatabaseUnavailableMiddleware:
    """A view that loses the database answers 503 with Retry-After (vsearch_site.views.database_down), not 500.

    API views get it from the DRF exception handler; this covers the rest (pages, the admin). Errors raised in a
    middleware reach handler500, which answers the same."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not database_unavailable(exception):
            return None
        database_unavailable_logged(request, exception)
        return database_down(request)
