"""Domain errors and the one place that turns them into HTTP.

Services raise these (never an HTTP status); the DRF exception handler below maps each kind to its status,
so views carry no try/except. Every API error is a JSON body with a `detail` message, including the ones
DRF does not raise itself.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http.multipartparser import MultiPartParserError
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class DomainError(Exception):
    """Something a person asked for cannot be done; the message says why, for that person."""


class InvalidInput(DomainError):
    """The request itself is wrong: fix it before trying again."""


class Forbidden(DomainError):
    """This user may not do that (others may)."""


class NotFound(DomainError):
    """What the request refers to does not exist (or no longer does)."""


class Conflict(DomainError):
    """The request is well formed but clashes with what is stored (a second vote, an undo too late)."""


class Unavailable(DomainError):
    """Not possible right now; try again after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int = 30):
        super().__init__(message)
        self.retry_after = retry_after


STATUS = {
    InvalidInput: status.HTTP_400_BAD_REQUEST,
    Forbidden: status.HTTP_403_FORBIDDEN,
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


class ErrorOut(serializers.Serializer):
    """The error envelope of every API response that is not a success."""

    detail = serializers.CharField()


def status_of(exc: DomainError) -> int:
    for kind, code in STATUS.items():
        if isinstance(exc, kind):
            return code
    return status.HTTP_400_BAD_REQUEST


# The database unreachable (refused, restarting, a connection it closed) is a wait, not a fault: 503 with Retry-After.
# A PostgreSQL restart took 0.9 s; clients retry after this many seconds (the swipe page's outbox does).
DATABASE_RETRY_AFTER = 2
DATABASE_DOWN = "The database is unavailable for a moment; nothing was lost. Try again in a few seconds."
log = logging.getLogger(__name__)


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether an exception means the database could not be reached (or dropped the connection), as Django reports
    it: OperationalError (refused, shutting down, starting up, terminated) or InterfaceError (connection closed)."""
    return isinstance(exc, OperationalError | InterfaceError)


def database_unavailable_logged(request, exc: BaseException) -> None:
    log.warning("database unavailable during %s %s: %s", request.method, request.path, str(exc).strip()[:200])


def exception_handler(exc, context):
    if database_unavailable(exc):
        database_unavailable_logged(context["request"], exc)
        return Response({"detail": DATABASE_DOWN}, status=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
    if isinstance(exc, DomainError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else None
        return Response({"detail": str(exc)}, status=status_of(exc), headers=headers)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, (list, dict)) and "detail" not in response.data:
        response.data = {"detail": "The request was not valid.", "errors": response.data}
    return response


def bad_request_detail(exc: Exception) -> str:
    """The `detail` of a 400 for a request Django itself refused (too big, too many fields, unreadable multipart).

    Other suspicious requests (a disallowed host, say) get no echo of what was sent.
    """
    if isinstance(exc, RequestDataTooBig):
        return f"The request body is over the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes."
    if isinstance(exc, TooManyFieldsSent):
        return f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields."
    if isinstance(exc, TooManyFilesSent):
        return f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES:,} files."
    if isinstance(exc, MultiPartParserError):
        return f"The multipart body cannot be read: {exc}"
    if isinstance(exc, BadRequest) and str(exc):
        return str(exc)
    return "The request was not valid."
