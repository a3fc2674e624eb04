"""Connections to PostgreSQL through ADBC, and where the database is."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
from adbc_driver_manager.dbapi import Connection as Connection

from hrcore import _embedded
from hrcore._errors import DatabaseError


def database_url(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``DATABASE_URL``, else the embedded server's."""
    url = explicit or os.environ.get("DATABASE_URL")
    if not url:
        return _embedded.start()
    # accept SQLAlchemy-style URLs such as postgresql+psycopg://
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def redact(url: str) -> str:
    """The URL with its password replaced, fit for messages and logs."""
    return re.sub(r"(://[^:/@]*:)[^@]+@", r"\1***@", url)


@contextmanager
def connect(url: str | None = None, *, autocommit: bool = True) -> Iterator[Connection]:
    """An ADBC connection, closed on exit; driver errors become :class:`DatabaseError`."""
    resolved = database_url(url)
    try:
        conn = adbc.connect(resolved, autocommit=autocommit)
    except adbc.Error as exc:
        reason = " ".join(str(exc).split())
        raise DatabaseError(f"cannot connect to {redact(resolved)}: {reason}") from exc
    try:
        yield conn
    finally:
        conn.close()


def execute(
    conn: Connection, sql: str, params: tuple[Any, ...] | None = None
) -> list[tuple[Any, ...]]:
    """Run one statement; return its rows (empty for statements without a result)."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        if cur.description is None:
            return []
        return list(cur.fetchall())


def scalar(conn: Connection, sql: str, params: tuple[Any, ...] | None = None) -> Any:
    """The first column of the first row of a query."""
    rows = execute(conn, sql, params)
    return rows[0][0] if rows else None
