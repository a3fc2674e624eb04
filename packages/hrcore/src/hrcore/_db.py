"""Connections to PostgreSQL through ADBC, and where the database is."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import adbc_driver_postgresql.dbapi as adbc
import polars as pl
import pyarrow as pa
from adbc_driver_manager.dbapi import Connection as Connection

from hrcore import _embedded
from hrcore._errors import DatabaseError, UsageError

if TYPE_CHECKING:
    from hrcore._pool import ConnectionPool

DEFAULT_LOCK_TIMEOUT = 30.0  # seconds a statement or a load waits for a lock
DEFAULT_STATEMENT_TIMEOUT = 900.0  # seconds a statement may run
CONNECT_TIMEOUT = 10  # seconds to reach the server


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds on every wait in the database, from the environment when not given.

    ``HRCORE_LOCK_TIMEOUT`` (seconds, default 30) bounds each wait for a lock: another
    load of the same file, a restore, a row another writer holds.
    ``HRCORE_STATEMENT_TIMEOUT`` (seconds, default 900) bounds each statement.
    """

    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT

    @classmethod
    def from_env(cls, lock_timeout: float | None = None) -> Limits:
        return cls(
            lock_timeout=_seconds("HRCORE_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)
            if lock_timeout is None
            else check_timeout(lock_timeout, "lock_timeout"),
            statement_timeout=_seconds("HRCORE_STATEMENT_TIMEOUT", DEFAULT_STATEMENT_TIMEOUT),
        )


def check_timeout(value: object, name: str) -> float:
    """A number of seconds, more than 0 (and at most a day)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise UsageError(
            f"{name} must be a number of seconds above 0 and at most 86400, not {value!r}"
        )
    return float(value)


def _seconds(variable: str, default: float) -> float:
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        return check_timeout(float(text), variable)
    except ValueError as exc:
        raise UsageError(f"{variable} must be a number of seconds, not {text!r}") from exc


def database_url(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``DATABASE_URL``, else the embedded server's.

    A password holding ``@``, ``:``, ``/`` or a space unencoded is encoded here, so
    that libpq reads the URL as it was meant (and never shows a piece of it as a host).
    """
    url = explicit or os.environ.get("DATABASE_URL")
    if not url:
        return _embedded.start()
    # accept SQLAlchemy-style URLs such as postgresql+psycopg://
    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url.strip())
    return _encode_userinfo(url)


def _split_url(url: str) -> tuple[str, str, str] | None:
    """``(scheme://, userinfo, host and the rest)`` of a URL with credentials.

    The userinfo runs to the last ``@`` before the query, so a password may hold
    ``@``, ``:``, ``/`` or spaces unencoded (libpq would stop at the first ``@``).
    """
    scheme, sep, after = url.partition("://")
    if not sep:
        return None
    at = after.partition("?")[0].rfind("@")
    if at < 0:
        return None
    return scheme + "://", after[:at], after[at + 1 :]


def _encode_userinfo(url: str) -> str:
    parts = _split_url(url)
    if parts is None:
        return url
    scheme, userinfo, rest = parts
    user, colon, password = userinfo.partition(":")
    encoded = quote(unquote(user), safe="") + (
        colon + quote(unquote(password), safe="") if colon else ""
    )
    return f"{scheme}{encoded}@{rest}"


def _password(url: str) -> str | None:
    """The password of a URL: between the user's ``:`` and the last ``@`` before the
    query or, failing that, the last ``@`` at all (a password may hold ``?``; taking
    too much here only hides more)."""
    parts = _split_url(url)
    if parts is None:
        scheme, sep, after = url.partition("://")
        at = after.rfind("@")
        if not sep or at < 0:
            return None
        parts = (scheme, after[:at], after[at + 1 :])
    _, userinfo, _ = parts
    _, colon, password = userinfo.partition(":")
    return password if colon and password else None


def redact(text: str, url: str | None = None) -> str:
    """``text`` with the password of ``url`` (or of the URL it is) replaced by ``***``.

    The password is found from the URL's structure (everything between the user's
    ``:`` and the last ``@`` of the authority), then removed from the text in every
    form it may take there (as written, percent-encoded, decoded); ``password=`` in
    a query or a key/value string is removed too.
    """
    secrets: set[str] = set()
    for candidate in (url, text):
        password = _password(candidate) if candidate else None
        if password:
            plain = unquote(password)
            secrets |= {password, plain, quote(plain, safe="")}
            # and its pieces, in case something split it where libpq would
            secrets |= {p for p in re.split(r"[@:/ ]", plain) if len(p) >= 4}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return re.sub(r"(password=)[^&\s]+", r"\1***", text, flags=re.IGNORECASE)


def with_connect_timeout(url: str) -> str:
    if "connect_timeout=" in url:
        return url
    return url + ("&" if "?" in url else "?") + f"connect_timeout={CONNECT_TIMEOUT}"


def open_connection(url: str, autocommit: bool) -> Connection:
    limits = Limits.from_env()
    try:
        conn: Connection = adbc.connect(with_connect_timeout(url), autocommit=autocommit)
    except adbc.Error as exc:
        raise DatabaseError(
            f"cannot connect to {redact(url)}: {redact(message_of(exc), url)}",
            sqlstate=getattr(exc, "sqlstate", None),
        ) from exc
    try:
        with conn.cursor() as cur:
            # a client that died (kill -9) has its statement stopped within seconds,
            # even while it waits for a lock (PostgreSQL 14 and later)
            cur.execute(
                "SELECT set_config('lock_timeout', $1, false), "
                "set_config('statement_timeout', $2, false), "
                "set_config('application_name', 'hrcore', false), "
                "CASE WHEN current_setting('server_version_num')::int >= 140000 THEN "
                "set_config('client_connection_check_interval', '1s', false) END",
                (
                    f"{int(limits.lock_timeout * 1000)}ms",
                    f"{int(limits.statement_timeout * 1000)}ms",
                ),
            )
            cur.fetchall()
        if not autocommit:
            conn.commit()
    except adbc.Error as exc:
        conn.close()
        raise database_error(exc) from exc
    return conn


@contextmanager
def connect(
    url: str | None = None, *, autocommit: bool = True, pool: ConnectionPool | None = None
) -> Iterator[Connection]:
    """An ADBC connection for a block; driver errors become :class:`DatabaseError`.

    Borrowed from ``pool`` when one is given (autocommit connections only), else
    opened here (to ``url``) and closed on exit.
    """
    if pool is not None and autocommit:
        with pool.connection() as borrowed:
            yield borrowed
        return
    conn = open_connection(database_url(url), autocommit)
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


def ingest(conn: Connection, table: str, rows: pa.Table) -> None:
    """Append ``rows`` to ``table`` in one ``COPY`` (its columns named by the rows')."""
    try:
        with conn.cursor() as cur:
            cur.adbc_ingest(table, rows, mode="append")
    except adbc.Error as exc:
        raise database_error(exc) from exc


def run_script(conn: Connection, sql: str) -> None:
    """Statements without results, ``;``-separated, in one round trip (PostgreSQL's
    simple protocol: nothing prepared, no parameters, so callers put only checked
    integers into ``sql``)."""
    try:
        with conn.cursor() as cur:
            cur.adbc_statement.set_sql_query(sql)
            cur.adbc_statement.execute_update()
    except adbc.Error as exc:
        raise database_error(exc) from exc


def first_line(exc: BaseException) -> str:
    """The error's first line, any password in it redacted (its type if it says nothing)."""
    text = str(exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__


def message_of(exc: BaseException) -> str:
    """What PostgreSQL (or libpq) said, without the driver's wrapping or the SQL text.

    ``[libpq] Failed to execute query: ... ERROR:  division by zero\nQuery was: ...``
    becomes ``division by zero``.
    """
    text = str(exc)
    for marker in ("ERROR:  ", "FATAL:  "):
        if marker in text:
            text = text.split(marker, 1)[1]
            break
    else:
        text = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", text.strip())
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return redact(re.sub(r"\. SQLSTATE: \w+$", "", line).rstrip(". "))


def database_error(exc: Exception) -> DatabaseError:
    """A driver error as a one-line :class:`DatabaseError` with its SQLSTATE (no SQL text)."""
    return DatabaseError(message_of(exc), sqlstate=getattr(exc, "sqlstate", None))


def scalar(conn: Connection, sql: str, params: tuple[Any, ...] | None = None) -> Any:
    """The first column of the first row of a query."""
    rows = execute(conn, sql, params)
    return rows[0][0] if rows else None
