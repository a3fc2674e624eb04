"""The API token: required on every route not marked public, when one is configured."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

PUBLIC = {"public": True}  # opt of the routes anyone may call


def _is_schema(path: str) -> bool:
    """The OpenAPI document and its viewers (/schema, /schema/openapi.json, ...)."""
    return path == "/schema" or path.startswith("/schema/")


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def make_guard(token: str | None) -> Guard:
    """A guard comparing ``Authorization: Bearer <token>`` in constant time."""
    expected = f"Bearer {token}".encode() if token else None

    def require_token(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if expected is None or handler.opt.get("public") or _is_schema(connection.scope["path"]):
            return
        given = connection.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise NotAuthorizedException(
                "a valid 'Authorization: Bearer <token>' header is required"
            )

    return require_token
