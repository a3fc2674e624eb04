"""Loads as jobs on procrastinate's queue, whose tables live in the load's own database.

- :func:`enqueue` records a ``queued`` load and defers its job; a file already queued
  or running answers that load instead.
- :func:`run_worker` runs the jobs, ``concurrency`` at a time. A job claims its load
  as its next attempt and runs it as :func:`hrcore.load` does.
- A worker that dies mid-load (``kill -9``, a lost host) stops sending heartbeats:
  once it is ``stalled_after`` seconds silent, any other worker puts its job back on
  the queue. The next attempt converges (upserts are idempotent); the dead attempt
  stays in the ledger (``load_attempts``) with what it had committed.
- A worker asked to stop (SIGTERM, Ctrl-C) lets its loads run ``grace`` seconds, then
  stops them at their next batch boundary; their jobs go back on the queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

import procrastinate
from procrastinate.exceptions import JobAborted

from hrcore import _db, _ledger, _parts, _storage
from hrcore._db import Connection, Limits, connect, execute
from hrcore._errors import BusyError, DatabaseError, HrcoreError, LoadCancelledError, UsageError
from hrcore._pipeline import check_batch_size, check_writers, load_found, spec_for
from hrcore._report import LoadReport
from hrcore._schema import ensure_schema
from hrcore._specs import TableSpec, get_table
from hrcore._stage import StopRequested
from hrcore._write import WRITERS

log = logging.getLogger("hrcore.worker")

TASK = "hrcore.load"
QUEUE = "hrcore_loads"
POOL_WAIT = 30.0  # seconds a job waits for one of the queue's connections
MAX_ATTEMPTS = 30
BUSY_WAIT = 10  # seconds before a load that found its file or table busy tries again


class _Retry(procrastinate.BaseRetryStrategy):
    """A job is tried again when its load was busy (the same file loading elsewhere, a
    restore): in 10 s; or when its worker stopped it to shut down: at once, by
    another worker. Any other failure is the load's own, and final."""

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        if job.attempts >= MAX_ATTEMPTS - 1:
            return None
        if isinstance(exception, JobAborted):
            return procrastinate.RetryDecision(retry_in={"seconds": 0})
        if isinstance(exception, BusyError):
            return procrastinate.RetryDecision(retry_in={"seconds": BUSY_WAIT})
        return None


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a worker runs: loads at once, writer connections per load, and its timings
    (seconds): heartbeat period, silence after which a worker counts as dead, and how
    long a stopping worker lets its loads run before it stops them."""

    concurrency: int = 2
    writers: int = WRITERS
    heartbeat: float = 10.0
    stalled_after: float = 30.0
    grace: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 64:
            raise UsageError(f"concurrency must be from 1 to 64, not {self.concurrency}")
        check_writers(self.writers)
        if not 0 < self.heartbeat < self.stalled_after:
            raise UsageError("the heartbeat must be positive and shorter than stalled_after")
        if self.grace < 0:
            raise UsageError(f"grace must be 0 or more seconds, not {self.grace}")


class _Abort(threading.Event):
    """Set when procrastinate asks the job to stop (its worker stops, or an abort)."""

    def __init__(self, context: procrastinate.JobContext) -> None:
        super().__init__()
        self._context = context

    def is_set(self) -> bool:
        return super().is_set() or self._context.should_abort()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _app(url: str, settings: WorkerSettings, connections: int) -> procrastinate.App:
    """A procrastinate app on ``url`` whose one task runs a queued load."""
    connector = procrastinate.PsycopgConnector(
        conninfo=_db.with_connect_timeout(url),
        min_size=1,
        max_size=connections,
        timeout=POOL_WAIT,
    )
    app = procrastinate.App(connector=connector)

    @app.task(name=TASK, queue=QUEUE, pass_context=True, retry=_Retry())
    def load_job(context: procrastinate.JobContext, load_id: int, verify: bool = False) -> None:
        run_queued(url, load_id, settings.writers, _Abort(context), verify=verify)

    @app.task(name=_parts.TASK, queue=QUEUE, pass_context=True, retry=_Retry())
    def part_job(
        context: procrastinate.JobContext,
        load_id: int,
        part: int,
        phase: str,
        verify: bool = False,
    ) -> None:
        def defer(load: int, next_phase: str, numbers: list[int]) -> None:
            for number in numbers:
                part_job.defer(load_id=load, part=number, phase=next_phase)

        try:
            wait = Limits.from_env().lock_timeout
            _parts.run_part_job(url, load_id, part, phase, _Abort(context), defer, wait,
                                worker_name(), verify)  # fmt: skip
        except StopRequested as exc:  # procrastinate asked: the part goes back on the queue
            raise JobAborted(str(exc)) from exc
        except BusyError:
            raise
        except Exception as exc:  # the part cannot be loaded: nor can the load
            _parts.fail(url, load_id, None if part < 0 else part, _db.first_line(exc))
            raise

    return app


def run_queued(
    url: str, load_id: int, writers: int, cancel: threading.Event, *, verify: bool = False
) -> LoadReport:
    """Run a queued load as its next attempt (the body of a job)."""
    with connect(url) as conn:
        ensure_schema(conn, url)
        table, source, batch_size = _ledger.queued_load(conn, load_id)
    spec = get_table(table)
    try:
        found = _storage.resolve(source, spec)
    except HrcoreError as exc:  # its file is gone: nothing a retry could change
        _ledger.fail_queued(url, load_id, _db.first_line(exc))
        raise
    try:
        return load_found(
            spec, found, batch_size=batch_size, url=url, writers=writers, cancel=cancel,
            verify=verify, queued=(load_id, worker_name()),
        )  # fmt: skip
    except LoadCancelledError as exc:
        if cancel.is_set():  # procrastinate asked: its job goes back on the queue
            raise JobAborted(str(exc)) from exc
        raise


def enqueue(
    source: str | os.PathLike[str] | None = None,
    *,
    table: str | None = None,
    batch_size: int = 1000,
    database_url: str | None = None,
    verify: bool = False,
) -> LoadReport:
    """Put a load of ``source`` on the queue and return its report (status ``queued``);
    :func:`run_worker` runs it. The file must exist now (else :class:`SourceNotFoundError`).
    A load of the same file into the same table that is queued or running already is
    answered instead (its report, with its status): no twin is queued."""
    batch_size = check_batch_size(batch_size)
    location = _storage.check_location(_storage.default_source() if source is None else source)
    spec = spec_for(location, table)
    parts = _storage.find_parts(location, spec)
    found = _storage.resolve(location, spec) if parts is None else None
    url = _db.database_url(database_url)
    with connect(url) as conn:
        ensure_schema(conn, url)
        _ledger.reap_stale(conn)
        if parts is not None:
            return _queue_parts(conn, url, spec, parts, batch_size, verify)
        assert found is not None
        load_id, new = _ledger.queue(conn, spec.name, found.uri, batch_size)
        if new:
            _ledger.queued_as(conn, load_id, _defer(url, load_id, verify))
        return _ledger.report(conn, load_id)


def _queue_parts(
    conn: Connection,
    url: str,
    spec: TableSpec,
    parts: _storage.Parts,
    batch_size: int,
    verify: bool,
) -> LoadReport:
    """A load of parts on the queue: its ledger entry and its plan job, which decides
    when it runs which parts to load (their content then, the table then)."""
    load_id, new = _ledger.queue(conn, spec.name, parts.source, batch_size)
    if not new:
        return _ledger.report(conn, load_id)
    try:
        execute(conn, "UPDATE load_runs SET phase = 'plan' WHERE id = $1", (load_id,))
        _make_job(url, _parts.TASK, load_id=load_id, part=-1, phase="plan", verify=verify)
    except Exception as exc:
        reason = f"its jobs could not be queued: {_db.first_line(exc)}"
        _parts.fail(url, load_id, None, reason)
        raise DatabaseError(f"load {load_id} failed: {reason}") from exc
    finally:  # the jobs (or the failure) answer for the load from now on
        execute(conn, "UPDATE load_runs SET owner_pid = NULL WHERE id = $1", (load_id,))
    return _ledger.report(conn, load_id)


def _make_job(url: str, task: str, **arguments: object) -> int:
    """Put one job of ``task`` on the queue, on a connection of its own; its id."""
    with _app(url, WorkerSettings(), connections=1).open() as app:
        return app.tasks[task].defer(**arguments)


def _defer(url: str, load_id: int, verify: bool) -> int:
    """Make the job of a queued load; if it cannot be made, the load fails."""
    try:
        return _make_job(url, TASK, load_id=load_id, verify=verify)
    except Exception as exc:
        reason = f"its job could not be queued: {_db.first_line(exc)}"
        _ledger.fail_queued(url, load_id, reason)
        raise DatabaseError(f"load {load_id} failed: {reason}") from exc


def run_worker(
    *,
    database_url: str | None = None,
    settings: WorkerSettings | None = None,
    until_empty: bool = False,
) -> None:
    """Run queued loads until stopped (SIGTERM, Ctrl-C), or, ``until_empty``, until the
    queue has none ready. Other workers, on this machine or others, share the queue."""
    settings = settings or WorkerSettings()
    url = _db.database_url(database_url)
    with connect(url) as conn:
        ensure_schema(conn, url)
    # a connection per running job, one to listen, one for heartbeats and polls
    app = _app(url, settings, connections=settings.concurrency + 3)

    async def work() -> None:
        async with app.open_async():
            await run()
            # a job may queue others as it ends (the next phase of a load of parts)
            while until_empty and await _ready_jobs(app):
                await run()

    async def run() -> None:
        running = asyncio.create_task(
            app.run_worker_async(
                queues=[QUEUE],
                name=f"hrcore worker {worker_name()}",
                concurrency=settings.concurrency,
                wait=not until_empty,
                update_heartbeat_interval=settings.heartbeat,
                stalled_worker_timeout=settings.stalled_after,
                shutdown_graceful_timeout=settings.grace,
                install_signal_handlers=not until_empty,
            )
        )
        watching = asyncio.create_task(_retry_stalled(app, settings))
        try:
            await running
        finally:
            watching.cancel()
            with suppress(asyncio.CancelledError):
                await watching

    asyncio.run(work())


async def _ready_jobs(app: procrastinate.App) -> bool:
    """Whether a job of the queue is ready to run now."""
    now = datetime.now(UTC)
    return any(
        job.scheduled_at is None or job.scheduled_at <= now
        for job in await app.job_manager.list_jobs_async(queue=QUEUE, status="todo")
    )


async def _retry_stalled(app: procrastinate.App, settings: WorkerSettings) -> None:
    """Every heartbeat, put back on the queue the jobs of workers gone silent."""
    while True:
        await asyncio.sleep(settings.heartbeat)
        try:
            stalled = await app.job_manager.get_stalled_jobs(
                queue=QUEUE, seconds_since_heartbeat=settings.stalled_after
            )
            for job in stalled:
                log.warning("job %s (%s) lost its worker: queued again", job.id, job.call_string)
                with suppress(Exception):  # another worker put it back first
                    await app.job_manager.retry_job(job)
        except Exception as exc:  # the database is away: try again at the next beat
            log.warning("could not look for stalled jobs: %s", _db.first_line(exc))
