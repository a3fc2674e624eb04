"""Reads on a read replica (a streaming standby, an Aurora reader), with the writer as
the fallback when the replica is down or too far behind."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Literal

import msgspec

from hrcore._db import Connection, execute, first_line, scalar
from hrcore._errors import DatabaseError
from hrcore._pool import ConnectionPool

ReplicaStatus = Literal["ok", "lagging", "down"]


class ReplicaState(msgspec.Struct, kw_only=True):
    """What the last check of the replica found: ``ok`` (reads go to it), ``lagging``
    (more than ``max_lag`` seconds behind the writer) or ``down``; ``lag_seconds``
    is None where it is not measured (a replica that is no streaming standby, such
    as an Aurora reader, whose lag Aurora keeps to milliseconds)."""

    status: ReplicaStatus
    lag_seconds: float | None = None
    error: str | None = None

    @property
    def reads_go_to(self) -> Literal["replica", "writer"]:
        return "replica" if self.status == "ok" else "writer"


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


class ReplicaPool(ConnectionPool):
    """A pool of connections to a read replica at ``url`` that lends the ``writer``'s
    connections instead while the replica is down or more than ``max_lag`` seconds
    behind; give it to the library's reads as ``pool=``.

    The replica is checked at most every ``recheck`` seconds (a borrower between two
    checks gets the last verdict); a replica that refuses a connection, or lends one
    that fails its ``SELECT 1``, is taken for down at once. Its lag is how long ago
    it replayed its last transaction, when it has not yet replayed all that the
    writer has written; 0 when it has.
    """

    def __init__(
        self,
        url: str,
        writer: ConnectionPool,
        *,
        size: int = 8,
        timeout: float = 30.0,
        max_lag: float = 30.0,
        recheck: float = 1.0,
    ) -> None:
        # each connection is checked as it is lent (a replica can vanish: a restart, an
        # Aurora reader scaled in), so that a read finds a dead one before it runs
        super().__init__(url, size=size, timeout=timeout, ping_after=0.0)
        self.writer, self.max_lag, self.recheck = writer, max_lag, recheck
        self._state = ReplicaState(status="down", error="not checked yet")
        self._checked = -math.inf
        self._checking = threading.Lock()

    def state(self) -> ReplicaState:
        """The replica's state, checked again if the last check is ``recheck`` s old."""
        if time.monotonic() - self._checked >= self.recheck and self._checking.acquire(
            blocking=False
        ):
            try:
                self._state = self._check()
                self._checked = time.monotonic()
            finally:
                self._checking.release()
        return self._state

    def _check(self) -> ReplicaState:
        try:
            with super().connection() as conn:
                recovering, replayed, since = execute(
                    conn,
                    """SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
                              extract(epoch FROM now() - pg_last_xact_replay_timestamp())""",
                )[0]
        except DatabaseError as exc:
            return ReplicaState(status="down", error=first_line(exc))
        if not recovering or replayed is None:  # no streaming standby: nothing to measure
            return ReplicaState(status="ok")
        lag = self._lag(_lsn(replayed), since)
        if lag is None:  # the writer does not answer: the replica is what there is
            return ReplicaState(status="ok")
        return ReplicaState(status="ok" if lag <= self.max_lag else "lagging", lag_seconds=lag)

    def _lag(self, replayed: int, since: float | None) -> float | None:
        try:
            with self.writer.connection() as conn:
                written = _lsn(str(scalar(conn, "SELECT pg_current_wal_lsn()::text")))
        except DatabaseError:
            return None
        if replayed >= written:
            return 0.0
        return math.inf if since is None else max(float(since), 0.0)

    def _taken_down(self, exc: DatabaseError) -> None:
        self._state = ReplicaState(status="down", error=first_line(exc))
        self._checked = time.monotonic()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        with ExitStack() as stack:
            conn = None
            if self.state().status == "ok":
                try:
                    conn = stack.enter_context(super().connection())
                except DatabaseError as exc:  # it went down since the last check
                    self._taken_down(exc)
            if conn is None:
                conn = stack.enter_context(self.writer.connection())
            yield conn

    def read_url(self) -> str:
        """The URL that a read opening a connection of its own (a backup) should use."""
        return self.url if self.state().status == "ok" else self.writer.url
