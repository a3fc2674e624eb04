"""The API token: required on every route not marked public, when one is configured."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

PUBLIC = {"public": True}  # opt of the routes anyone may call

# RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ];
# the field value itself has no leading or trailing whitespace (§5.5)
_CREDENTIALS = re.compile(r"[ \t]*(?P<scheme>[^ \t]+)(?:[ \t]+(?P<rest>.*?))?[ \t]*", re.DOTALL)


def _is_schema(path: str) -> bool:
    """The OpenAPI document and its viewers (/schema, /schema/openapi.json, ...)."""
    return path == "/schema" or path.startswith("/schema/")


def bearer_token(authorization: str) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` value, as the bytes sent; else None.

    The scheme is case-insensitive (RFC 9110 §11.1); it is separated from the token by
    the first run of whitespace. Anything after the token stays part of it, so a
    value with trailing junk never equals the configured token.
    """
    match = _CREDENTIALS.fullmatch(authorization)
    if match is None or not match["rest"]:
        return None
    scheme = match["scheme"]
    if not scheme.isascii() or scheme.lower() != "bearer":
        return None
    try:
        return match["rest"].encode("latin-1")  # the bytes sent: header values are latin-1
    except UnicodeEncodeError:
        return None


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def make_guard(token: str | None) -> Guard:
    """A guard comparing the token of ``Authorization: Bearer <token>`` in constant time."""
    expected = token.encode() if token else None

    def require_token(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if expected is None or handler.opt.get("public") or _is_schema(connection.scope["path"]):
            return
        given = bearer_token(connection.headers.get("authorization", ""))
        # b"" (nothing usable sent) never equals the non-empty expected token
        if not hmac.compare_digest(given or b"", expected):
            raise NotAuthorizedException(
                "a valid 'Authorization: Bearer <token>' header is required"
            )

    return require_token
