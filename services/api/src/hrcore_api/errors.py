"""Every error as JSON ``{"error", "detail"}`` with its status, in one place.

A detail is what the library said, cleaned at this boundary once more: the database
URL's password is redacted, and a database message is cut where PostgreSQL or the
driver starts quoting the statement (``LINE 1: SELECT ...``, ``Query was: ...``), so
neither a password nor SQL text reaches a caller, whatever a library message holds.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

import hrcore
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

log = logging.getLogger("hrcore_api")

# library errors by status; the first class that matches wins
_STATUS: list[tuple[type[Exception], int, str]] = [
    (hrcore.UsageError, 400, "bad_request"),
    (hrcore.SourceNotFoundError, 404, "not_found"),
    (hrcore.NotFoundError, 404, "not_found"),
    (hrcore.RestoreError, 409, "conflict"),
    (hrcore.BusyError, 409, "busy"),
    (hrcore.SourceFormatError, 422, "unprocessable"),
    (hrcore.DatabaseError, 503, "database_unavailable"),
    (hrcore.SourceUnavailableError, 503, "source_unavailable"),
    (hrcore.LoadCancelledError, 503, "load_cancelled"),
    (hrcore.LoadFailedError, 503, "load_failed"),
]
_HTTP_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    503: "unavailable",
}
# where PostgreSQL's or the ADBC driver's text starts quoting a statement: the
# position (LINE n:), an internal query, the context (SQL statement "..."), the statement
_QUOTED_SQL = re.compile(
    r"\s*(\bLINE \d+:|\bQuery was:|\bQUERY:|\bCONTEXT:|\bSTATEMENT:).*", re.DOTALL
)


def error(
    status: int, name: str, detail: str, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    return Response({"error": name, "detail": detail}, status_code=status, headers=headers)


def clean(text: str, database_url: str | None) -> str:
    """``text`` with the database password redacted and no quoted SQL statement."""
    return _QUOTED_SQL.sub("", hrcore.redact(text, database_url)).strip()


def _problems(extra: Any) -> str:
    """Litestar's validation problems as ``name: message; ...`` (not a list's repr)."""
    if isinstance(extra, list) and all(isinstance(p, dict) for p in extra):
        return "; ".join(f"{p.get('key', '?')}: {p.get('message', '')}" for p in extra)
    return str(extra)


def error_handlers(database_url: str | None) -> ExceptionHandlersMap:
    """The app's exception handlers; details are cleaned with ``database_url``'s password."""

    def library_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
        for kind, status, name in _STATUS:
            if isinstance(exc, kind):
                return error(status, name, clean(str(exc), database_url))
        return unexpected_error(request, exc)

    def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
        detail = exc.detail
        if isinstance(exc, ValidationException) and exc.extra:
            detail = f"{detail}: {_problems(exc.extra)}"
        name = _HTTP_NAMES.get(exc.status_code, "error")
        return error(exc.status_code, name, clean(str(detail), database_url), headers=exc.headers)

    def unexpected_error(
        request: Request[Any, Any, Any], exc: Exception
    ) -> Response[dict[str, str]]:
        # the traceback is logged as text, redacted: an exception's message may quote a URL
        trace = "".join(traceback.format_exception(exc))
        log.error(
            "unexpected error on %s %s\n%s",
            request.method,
            request.url.path,
            hrcore.redact(trace, database_url),
        )
        return error(500, "internal_error", "an unexpected error happened; it was logged")

    return {
        HTTPException: http_error,
        hrcore.HrcoreError: library_error,
        Exception: unexpected_error,
    }
