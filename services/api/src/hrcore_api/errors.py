"""Every error as JSON ``{"error", "detail"}`` with its status, in one place."""

from __future__ import annotations

import logging
from typing import Any

import hrcore
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

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


def error(
    status: int, name: str, detail: str, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    return Response({"error": name, "detail": detail}, status_code=status, headers=headers)


def library_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    for kind, status, name in _STATUS:
        if isinstance(exc, kind):
            return error(status, name, str(exc))
    return unexpected_error(request, exc)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    detail = exc.detail
    if isinstance(exc, ValidationException) and exc.extra:
        detail = f"{detail}: {exc.extra}"
    name = _HTTP_NAMES.get(exc.status_code, "error")
    return error(exc.status_code, name, str(detail), headers=exc.headers)  # a 405's Allow


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error(500, "internal_error", "an unexpected error happened; it was logged")
