"""The Litestar application, built by :func:`create_app` from the environment."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import hrcore
from litestar import Litestar, Response, route
from litestar.enums import HttpMethod, MediaType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router

from hrcore_api.errors import error_handlers
from hrcore_api.logs import request_log
from hrcore_api.routes import service_routes, table_routes
from hrcore_api.security import PUBLIC, make_guard
from hrcore_api.settings import Settings
from hrcore_api.types import TABLE_PATHS

log = logging.getLogger("hrcore_api")
CONSOLE = Path(__file__).parent / "console"  # the console's page, script and style
# the console loads nothing but its own files and talks to nothing but this API; its
# charts are inline SVG; no other site may frame it
CONSOLE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _console_headers(response: Response[Any]) -> Response[Any]:
    response.headers.update(CONSOLE_HEADERS)
    return response


def options_handlers(handlers: list[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """An ``OPTIONS`` handler for each path served by more than one handler.

    Litestar 2 makes the OPTIONS handler of a path when the path's first handler is
    registered and keeps it when more come, so its ``Allow`` lists only the first
    one's methods (litestar-org/litestar#4169, fixed in 3.0). When a path's first
    handler serves OPTIONS, Litestar makes none of its own: so these handlers must be
    registered before the others.
    """
    methods: defaultdict[str, set[str]] = defaultdict(set)
    for handler in handlers:
        for path in handler.paths:
            methods[path] |= set(handler.http_methods)
    return [
        _options(path, served | {HttpMethod.OPTIONS})
        for path, served in methods.items()
        if len(served) > 1 and HttpMethod.OPTIONS not in served
    ]


def _options(path: str, methods: set[str]) -> HTTPRouteHandler:
    allow = ", ".join(sorted(methods))

    def options() -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": allow}, media_type=MediaType.TEXT)

    return route(
        path, http_method=HttpMethod.OPTIONS, include_in_schema=False, sync_to_thread=False
    )(options)


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the app; settings come from the environment unless given."""
    settings = settings or Settings.from_env()
    if not settings.api_token:
        log.warning(
            "HRCORE_API_TOKEN is not set: every endpoint is open to anyone who can reach it"
        )
    # the reads' connections, reused from request to request, held by the app
    pool = hrcore.ConnectionPool(settings.database_url, size=settings.pool_size)
    # reads that need not see the caller's own writes: on the replica when there is one
    reads = (
        hrcore.ReplicaPool(
            settings.read_database_url,
            pool,
            size=settings.pool_size,
            max_lag=settings.read_max_lag,
        )
        if settings.read_database_url
        else pool
    )

    def stop() -> None:
        reads.close()
        pool.close()

    handlers = service_routes(settings, pool, reads)
    for path, table in TABLE_PATHS.items():
        handlers += table_routes(settings, pool, reads, path, table)
    handlers = options_handlers(handlers) + handlers  # registered first: see options_handlers

    # the page itself is public: it asks for the token before it reads anything else
    console = create_static_files_router(
        "/console",
        directories=[CONSOLE],
        html_mode=True,
        name="console",
        opt=PUBLIC,
        after_request=_console_headers,
    )
    return Litestar(
        route_handlers=[*handlers, console],
        guards=[make_guard(settings.api_token)],
        middleware=[request_log],
        exception_handlers=error_handlers(settings.database_url),
        openapi_config=OpenAPIConfig(
            title="hrcore",
            version="0.1.0",
            description="Load HR CSV files and rows into PostgreSQL; the metrics; backups.",
            path="/schema",
        ),
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,  # hrcore-api sets up plain JSON lines; a host app keeps its own
        on_shutdown=[stop],
    )
