"""Connections to PostgreSQL through ADBC, and where the database is."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import polars as pl
from adbc_driver_manager.dbapi import Connection as Connection

from hrcore import _embedded
from hrcore._errors import DatabaseError, NotFoundError, UsageError


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
    """At most ``size`` connections to one database, reused from call to call.

    While a pool is open, :func:`connect` to its URL borrows from it instead of
    opening a connection per call (a server uses one; the CLI does not). When all
    ``size`` are in use, a borrower waits up to ``timeout`` seconds, then gets a
    :class:`DatabaseError`. A connection whose block raised is closed, not reused:
    its state is unknown; unless the error was a :class:`NotFoundError` or a
    :class:`UsageError`, which say something about the data asked for, not
    about the connection. One that sat idle for ``ping_after`` seconds is checked
    with ``SELECT 1`` before it is handed out, and replaced if the check fails.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        size: int = 8,
        timeout: float = 30.0,
        ping_after: float = 30.0,
    ) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one connection, not {size}")
        self.url = database_url(url)
        self.size, self.timeout, self.ping_after = size, timeout, ping_after
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[tuple[Connection, float]] = []  # with the time each was returned
        self._lock = threading.Lock()
        _POOLS[self.url] = self

    def _checkout(self) -> Connection:
        with self._lock:
            conn, since = self._idle.pop() if self._idle else (None, 0.0)
        if conn is not None and time.monotonic() - since >= self.ping_after:
            try:
                execute(conn, "SELECT 1")
            except DatabaseError:  # it died while idle (server restart, idle timeout)
                conn.close()
                conn = None
        return conn if conn is not None else _open(self.url, autocommit=True)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        if not self._slots.acquire(timeout=self.timeout):
            raise DatabaseError(
                f"no database connection free within {self.timeout:g} s "
                f"(all {self.size} of the pool are in use)"
            )
        try:
            conn = self._checkout()
            try:
                yield conn
            except (NotFoundError, UsageError):
                self._give_back(conn)  # an answer about the data, not about the connection
                raise
            except BaseException:
                conn.close()
                raise
            self._give_back(conn)
        finally:
            self._slots.release()

    def _give_back(self, conn: Connection) -> None:
        with self._lock:
            if _POOLS.get(self.url) is self:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections; :func:`connect` opens its own again."""
        with self._lock:
            if _POOLS.get(self.url) is self:
                del _POOLS[self.url]
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_POOLS: dict[str, ConnectionPool] = {}


@contextmanager
def connect(
    url: str | None = None, *, autocommit: bool = True, pooled: bool = True
) -> Iterator[Connection]:
    """An ADBC connection for a block; driver errors become :class:`DatabaseError`.

    Borrowed from the open :class:`ConnectionPool` of that URL if there is one
    (autocommit connections only, and unless ``pooled`` is false: a second
    connection taken while holding one must not wait on the pool), else opened
    here and closed on exit.
    """
    resolved = database_url(url)
    pool = _POOLS.get(resolved)
    if pool is not None and autocommit and pooled:
        with pool.connection() as borrowed:
            yield borrowed
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


def small_query(conn: Connection, sql: str) -> tuple[Any, ...] | None:
    """The first row of a query with a small result, or None.

    It skips the driver's ``COPY`` path and bound parameters, which cost more than
    a few rows do: callers put only checked integers into ``sql``.
    """
    try:
        with conn.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
            cur.execute(sql)
            return cur.fetchone()
    except adbc.Error as exc:
        raise database_error(exc) from exc


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
