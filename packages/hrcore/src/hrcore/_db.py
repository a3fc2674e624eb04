"""Connections to PostgreSQL through ADBC, and where the database is."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import polars as pl
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
    """The text with any password in it replaced, fit for messages and logs.

    Covers ``user:password@`` in URLs and ``password=...`` in a URL's query or a
    libpq key/value string.
    """
    url = re.sub(r"(://[^:/@\s]*:)[^@\s]+@", r"\1***@", url)
    return re.sub(r"(password=)[^&\s]+", r"\1***", url, flags=re.IGNORECASE)


def _open(url: str, autocommit: bool) -> Connection:
    try:
        conn: Connection = adbc.connect(url, autocommit=autocommit)
        return conn
    except adbc.Error as exc:
        reason = " ".join(str(exc).split())
        raise DatabaseError(f"cannot connect to {redact(url)}: {reason}") from exc


class ConnectionPool:
    """Keeps up to ``size`` idle connections to one database for reuse.

    While a pool is open, :func:`connect` to its URL borrows from it instead of
    opening a connection per call (a server uses one; the CLI does not). A
    connection whose block raised is closed, not reused: its state is unknown.
    """

    def __init__(self, url: str | None = None, *, size: int = 4) -> None:
        self.url = database_url(url)
        self.size = size
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        _POOLS[self.url] = self

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = _open(self.url, autocommit=True)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if _POOLS.get(self.url) is self and len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections; :func:`connect` opens its own again."""
        with self._lock:
            if _POOLS.get(self.url) is self:
                del _POOLS[self.url]
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_POOLS: dict[str, ConnectionPool] = {}


@contextmanager
def connect(url: str | None = None, *, autocommit: bool = True) -> Iterator[Connection]:
    """An ADBC connection for a block; driver errors become :class:`DatabaseError`.

    Borrowed from the open :class:`ConnectionPool` of that URL if there is one
    (autocommit connections only), else opened here and closed on exit.
    """
    resolved = database_url(url)
    pool = _POOLS.get(resolved)
    if pool is not None and autocommit:
        with pool.connection() as pooled:
            yield pooled
        return
    conn = _open(resolved, autocommit)
    try:
        yield conn
    finally:
        conn.close()


def execute(
    conn: Connection, sql: str, params: tuple[Any, ...] | None = None
) -> list[tuple[Any, ...]]:
    """Run one statement; return its rows (empty for statements without a result).

    Driver errors become :class:`DatabaseError`, keeping the SQLSTATE.
    """
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            if cur.description is None:
                return []
            return list(cur.fetchall())
    except adbc.Error as exc:
        raise database_error(exc) from exc


def fetch_frame(conn: Connection, sql: str, params: tuple[Any, ...] | None = None) -> pl.DataFrame:
    """A query's result as a Polars frame (through Arrow); driver errors become
    :class:`DatabaseError`."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            frame = pl.from_arrow(cur.fetch_arrow_table())
    except adbc.Error as exc:
        raise database_error(exc) from exc
    assert isinstance(frame, pl.DataFrame)
    return frame


def first_line(exc: BaseException) -> str:
    """The error's first line, any password in it redacted (its type if it says nothing)."""
    text = str(exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__


def database_error(exc: Exception) -> DatabaseError:
    """A driver error as a one-line :class:`DatabaseError` with its SQLSTATE."""
    return DatabaseError(first_line(exc), sqlstate=getattr(exc, "sqlstate", None))


def scalar(conn: Connection, sql: str, params: tuple[Any, ...] | None = None) -> Any:
    """The first column of the first row of a query."""
    rows = execute(conn, sql, params)
    return rows[0][0] if rows else None
