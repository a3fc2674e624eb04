"""A bounded pool of database connections, held by whoever serves many calls (the API)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from hrcore._db import Connection, database_url, execute, open_connection
from hrcore._errors import DatabaseError, NotFoundError, UsageError


class ConnectionPool:
    """At most ``size`` connections to one database, reused from call to call.

    A server holds one and passes it to the library's calls (``pool=``); a call
    without one opens a connection of its own (the CLI does that). When all
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
        self._closed = False

    def _checkout(self) -> Connection:
        with self._lock:
            conn, since = self._idle.pop() if self._idle else (None, 0.0)
        if conn is not None and time.monotonic() - since >= self.ping_after:
            try:
                execute(conn, "SELECT 1")
            except DatabaseError:  # it died while idle (server restart, idle timeout)
                conn.close()
                conn = None
        return conn if conn is not None else open_connection(self.url, autocommit=True)

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
            if not self._closed:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections, and each borrowed one when it comes back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
