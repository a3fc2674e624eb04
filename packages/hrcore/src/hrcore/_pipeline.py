"""A load from end to end: find the file, lock, open the ledger entry, stage, write, finish.

1. ``_storage`` finds the file and reads it as blocks; ``_lines`` cuts them into rows.
2. ``_locks``: the table is shared with other loads (not with a restore), the file
   is this load's alone; every wait is bounded.
3. ``_ledger`` opens a ``running`` entry; ``_stage`` validates the rows and streams
   them into a staging table; ``_write`` commits them batch by batch.
4. The entry ends ``succeeded``, or ``failed`` / ``cancelled`` with the counts of
   the batches that were committed and the error. On any error the loading
   connection is closed first, so that nothing of the load (a ``COPY`` in flight,
   a lock) can hold up the ledger's last word.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, suppress
from dataclasses import dataclass

import polars as pl

from hrcore import _changes, _db, _ledger, _locks, _parts, _stage, _storage, _summary
from hrcore._db import Connection, Limits, connect, scalar
from hrcore._duplicates import line_start_ids, repeated_ids
from hrcore._errors import (
    BusyError,
    DatabaseError,
    HrcoreError,
    LoadCancelledError,
    LoadFailedError,
    SourceFormatError,
    UsageError,
)
from hrcore._lines import RowReader, utf8_checked
from hrcore._pool import ConnectionPool
from hrcore._report import LoadReport, Status
from hrcore._schema import ensure_schema
from hrcore._specs import TABLES, TableSpec, get_table, table_for_file
from hrcore._stage import (
    ProgressCallback,
    Stager,
    StopRequested,
    reference_ids,
    session_stage_table,
    stage_table,
)
from hrcore._write import WRITERS, Tally, Target, Writers, write_request

MIN_BATCH_SIZE, MAX_BATCH_SIZE = 1, 1000
MAX_WRITERS = 16
SUMMARISED = "hired_employees"  # its loads leave deltas in the summary, folded in at the end
COMPACT_EVERY = 100  # loads of a request's rows: every 100th folds the deltas in


def check_batch_size(batch_size: int) -> int:
    """The one place where the batch size is checked: an int from 1 to 1000."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise UsageError(f"batch_size must be an integer, not {batch_size!r}")
    if not MIN_BATCH_SIZE <= batch_size <= MAX_BATCH_SIZE:
        raise UsageError(
            f"batch_size must be between {MIN_BATCH_SIZE} and {MAX_BATCH_SIZE}, not {batch_size}"
        )
    return batch_size


def check_writers(writers: int) -> int:
    """The number of writer connections: an int from 1 to 16."""
    if isinstance(writers, bool) or not isinstance(writers, int) or not 1 <= writers <= MAX_WRITERS:
        raise UsageError(f"writers must be an integer from 1 to {MAX_WRITERS}, not {writers!r}")
    return writers


def _file_name(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1]


def tables_for(
    source: str | os.PathLike[str] | None = None, tables: Iterable[str] | None = None
) -> list[str]:
    """The tables that :func:`load_all` loads from ``source``, in dependency order.

    A folder or prefix gives every table (or those of ``tables``); a file gives only
    the table its name is for. A file whose name fits no table, or a file with
    other ``tables`` asked for, is a :class:`UsageError`.
    """
    location = _storage.check_location(_storage.default_source() if source is None else source)
    wanted = [get_table(t).name for t in tables] if tables else list(TABLES)
    if not _storage.is_file(location):
        return [name for name in TABLES if name in wanted]
    named = table_for_file(_file_name(location))
    if named is None:
        expected = ", ".join(t.file_name for t in TABLES.values())
        raise UsageError(
            f"{location} is a file whose name fits no table ({expected}): name the table to load"
        )
    if named.name not in wanted:
        raise UsageError(f"{location} is the file of {named.name}, not of {', '.join(wanted)}")
    return [named.name]


def spec_for(location: str, table: str | None) -> TableSpec:
    """The table a load of ``location`` is for: ``table``, or the one its file name says."""
    spec = get_table(table) if table is not None else None
    named = table_for_file(_file_name(location)) if _storage.is_file(location) else None
    if spec is None:
        # a file named for its table; or a folder of part files named for it
        named = named or (
            None if _storage.is_file(location) else table_for_file(_file_name(location) + ".csv")
        )
        if named is None:
            raise UsageError(f"cannot tell which table {location!r} is for: pass table=")
        return named
    if named is not None and named.name != spec.name:
        raise UsageError(f"{location} is the file of {named.name}, not of {spec.name}")
    return spec


def load(
    source: str | os.PathLike[str] | None = None,
    *,
    table: str | None = None,
    batch_size: int = 1000,
    database_url: str | None = None,
    progress: ProgressCallback | None = None,
    writers: int = WRITERS,
    lock_timeout: float | None = None,
    cancel: threading.Event | None = None,
    verify: bool = False,
) -> LoadReport:
    """Load one CSV file into its table: validated, upserted by id, one transaction per batch.

    ``source`` is a file, or a folder / ``s3://bucket/prefix/`` holding the table's
    file (default: ``s3://$S3_BUCKET_NAME/`` or the bundled samples); or, without
    it, the table's part files (``<table>/*.csv``, ``<table>-*.csv``: see ``_parts``),
    loaded as one load, ``writers`` parts at a time. ``table`` may be
    omitted when the file name says it (``jobs.csv``); a file named for another
    table is refused. Waits for locks (another load of the same file, a restore)
    at most ``lock_timeout`` seconds, then raises :class:`BusyError`. Setting
    ``cancel`` (or Ctrl-C) stops the load at the next batch boundary. Raises
    :class:`LoadFailedError` (with the partial report) when the load stops before
    the end, :class:`LoadCancelledError` when it was cancelled.

    When the file's identity (S3 ETag, or size and mtime) is that of the table's
    last load, and nothing changed the table or its references since, the load is
    recorded ``skipped`` and returns at once; ``verify=True`` reads and compares
    anyway.
    """
    batch_size = check_batch_size(batch_size)
    writers = check_writers(writers)
    limits = Limits.from_env(lock_timeout)
    location = _storage.check_location(_storage.default_source() if source is None else source)
    spec = spec_for(location, table)
    url = _db.database_url(database_url)
    parts = _storage.find_parts(location, spec)
    if parts is not None:
        return _parts.run_here(
            url, spec, parts.source, parts.files, batch_size=batch_size,
            threads=writers, limits=limits, cancel=cancel, verify=verify,
        )  # fmt: skip
    return load_found(
        spec,
        _storage.resolve(location, spec),
        batch_size=batch_size,
        url=url,
        progress=progress,
        writers=writers,
        limits=limits,
        cancel=cancel,
        verify=verify,
    )


def load_found(
    spec: TableSpec,
    found: _storage.SourceFile,
    *,
    batch_size: int,
    url: str,
    progress: ProgressCallback | None = None,
    writers: int = WRITERS,
    limits: Limits | None = None,
    cancel: threading.Event | None = None,
    verify: bool = False,
    queued: tuple[int, str] | None = None,
) -> LoadReport:
    """:func:`load` of a file already found; ``queued``: the id of a queued load to run
    (see ``_queue``) and the worker that runs it."""

    @contextmanager
    def read() -> Iterator[Iterable[pl.DataFrame]]:
        """The file's rows, read from the start."""
        with closing(_storage.read_blocks(found.uri)) as blocks:
            yield RowReader().rows(utf8_checked(blocks, found.uri))

    @contextmanager
    def first_pass() -> Iterator[Iterable[pl.Series]]:
        """The ids the file's lines start with, read from the start."""
        with closing(_storage.read_blocks(found.uri)) as blocks:
            yield line_start_ids(utf8_checked(blocks, found.uri))

    return run(
        spec,
        read,
        first_pass=first_pass,
        source=found.uri,
        identity=found.identity,
        batch_size=batch_size,
        url=url,
        progress=progress,
        writers=writers,
        limits=limits,
        cancel=cancel,
        verify=verify,
        queued=queued,
    )


def load_all(
    source: str | os.PathLike[str] | None = None,
    *,
    tables: list[str] | None = None,
    batch_size: int = 1000,
    database_url: str | None = None,
    progress: ProgressCallback | None = None,
    writers: int = WRITERS,
    lock_timeout: float | None = None,
    cancel: threading.Event | None = None,
    verify: bool = False,
) -> list[LoadReport]:
    """Load the tables' files from a folder or prefix, referenced tables first; from a
    file, only the table it is for (see :func:`tables_for`)."""
    check_batch_size(batch_size)
    return [
        load(
            source,
            table=name,
            batch_size=batch_size,
            database_url=database_url,
            progress=progress,
            writers=writers,
            lock_timeout=lock_timeout,
            cancel=cancel,
            verify=verify,
        )
        for name in tables_for(source, tables)
    ]


Rows = Callable[[], AbstractContextManager[Iterable[pl.DataFrame]]]
Ids = Callable[[], AbstractContextManager[Iterable[pl.Series]]]


def run(
    spec: TableSpec,
    read: Rows,
    *,
    first_pass: Ids | None = None,
    source: str,
    identity: str | None,
    batch_size: int,
    url: str,
    progress: ProgressCallback | None = None,
    writers: int = WRITERS,
    limits: Limits | None = None,
    cancel: threading.Event | None = None,
    session: bool = False,
    verify: bool = False,
    pool: ConnectionPool | None = None,
    queued: tuple[int, str] | None = None,
    outcomes: dict[int, str] | None = None,
) -> LoadReport:
    """Stage the rows ``read`` gives (chunks of ``line``, ``text``...) and commit them
    batch by batch: a file's batches as soon as they are staged (after a
    ``first_pass`` over its ids has found those that come back), a request's rows
    at once.

    A load with an ``identity`` (a file) has that file to itself, so two loaders of
    the same file take turns; and it is ``skipped`` when the table is as the last
    load of the same content left it (unless ``verify``). ``session`` stages in the
    connection's own temporary table, kept for the next such load, on a connection
    of ``pool`` if one is given: the short path of the API's requests; ``outcomes``
    is then filled with what became of each valid row, by line.
    """
    limits = limits or Limits.from_env()
    started = time.perf_counter()
    tally = Tally()
    load_id: int | None = None

    def should_stop() -> bool:
        return cancel is not None and cancel.is_set()

    try:
        # a file's load may wait for the same file's, then run for minutes: it takes a
        # connection of its own, not one of a server's pool, which reads need
        with connect(url, pool=pool if session else None) as conn:
            ensure_schema(conn, url)
            if not session:
                _ledger.reap_stale(conn)
            _locks.hold_for_load(
                conn, spec, source if identity is not None else None, limits.lock_timeout
            )
            if queued is None:
                load_id = _ledger.start(conn, spec.name, source, identity, batch_size)
            else:
                was = _ledger.claim(conn, *queued, identity)
                if was not in ("queued", "failed", "cancelled"):  # not this worker's to run
                    _locks.release_all(conn)
                    if was == "running":
                        raise BusyError(f"load {queued[0]} is running on another worker")
                    return _ledger.report(conn, queued[0])
                load_id = queued[0]
            # only a load of content with an identity (a file) can be repeated later, so
            # only it notes the state it leaves its tables in (a request does not)
            before = _changes.read(conn, _changes.watched(spec)) if identity is not None else {}
            same = (
                _ledger.same_work(conn, load_id, spec, identity, _changes.state(before))
                if identity is not None and not verify
                else None
            )
            if same is not None:  # the table is as that load left it: nothing to do
                _ledger.skip(conn, load_id, same)
                report = _ledger.report(conn, load_id)
                _locks.release_all(conn)
                report.seconds = round(time.perf_counter() - started, 3)
                return report
            staged = session_stage_table(spec) if session else stage_table(load_id)
            # a request's rows are looked up anyway (see write_request), its stage made
            # only when it needs one
            empty = not session and not scalar(conn, f"SELECT EXISTS (SELECT FROM {spec.name})")
            target = Target(spec, staged, load_id, probe=not empty, outcomes=outcomes)
            if not session:
                _stage.create(conn, spec, staged)
            loading = Loading(
                spec, read, first_pass, reference_ids(conn, spec), batch_size, progress
            )
            if session:
                loading.request(conn, target, tally)
            else:
                loading.file(conn, url, target, writers, tally, should_stop)
            _ledger.finish(
                conn,
                load_id,
                staged=not session,
                table_state=_changes.left(conn, spec, before, tally.bumps) if before else None,
            )
            report = _ledger.report(conn, load_id)
            _locks.release_all(conn)
            if spec.name == SUMMARISED and (not session or load_id % COMPACT_EVERY == 0):
                with suppress(DatabaseError):  # done: the next load folds them in
                    _summary.compact(conn)
    except BaseException as exc:
        if load_id is None:
            raise
        stopped = _stopped(exc, spec, source, load_id, url, tally, started, session)
        if isinstance(exc, SourceFormatError):  # the ledger says so; the caller gets it as is
            raise
        raise stopped from exc
    report.seconds = round(time.perf_counter() - started, 3)
    return report


@dataclass(frozen=True, slots=True)
class Loading:
    """What a load stages and writes: rows of ``spec`` as ``read`` gives them."""

    spec: TableSpec
    read: Rows
    first_pass: Ids | None  # a file's: the ids its lines start with
    refs: dict[str, pl.Series]
    batch_size: int
    progress: ProgressCallback | None

    def request(self, conn: Connection, target: Target, tally: Tally) -> None:
        """A request's rows (one batch): validated, then written on this connection."""
        with self.read() as rows:
            stager = Stager(self.spec, rows, self.refs, self.batch_size, self.progress)
            (chunk,) = stager.split_chunks()
        write_request(conn, target, chunk, tally, self.progress)

    def file(
        self,
        conn: Connection,
        url: str,
        target: Target,
        writers: int,
        tally: Tally,
        should_stop: Callable[[], bool],
    ) -> None:
        """A file's rows: its repeated ids first, then each chunk read on this
        connection (its rejected and set-aside rows staged) while ``writers``
        connections write the batches of the chunks read before."""
        assert self.first_pass is not None, "a file's load reads its ids first"
        counted = _Counted()
        with self.first_pass() as ids:
            set_aside = repeated_ids(counted(_stopping(ids, should_stop)))
        _ledger.expect(conn, target.load_id, counted.rows)
        pool = Writers(url, target, writers, tally, self.progress, should_stop)
        try:
            with self.read() as rows:
                stager = Stager(
                    self.spec, rows, self.refs, self.batch_size, self.progress, should_stop,
                    set_aside,
                )  # fmt: skip
                for chunk in stager.split_chunks(valid_raw=False):
                    if chunk.staged.num_rows:
                        _stage.copy_in(conn, target.stage, chunk.staged)
                    pool.give_chunk(chunk)
            last = _stage.settle_set_aside(conn, target.stage, stager.batches, self.batch_size)
            pool.give(last)
            pool.finish()
        except BaseException:
            pool.abandon()  # their batches in flight end before the ledger's last word
            raise
        if tally.batches < last.stop:  # the writers were asked to stop
            raise StopRequested


class _Counted:
    """Counts the ids of the chunks that pass through it."""

    def __init__(self) -> None:
        self.rows = 0

    def __call__(self, chunks: Iterable[pl.Series]) -> Iterator[pl.Series]:
        for chunk in chunks:
            self.rows += len(chunk)
            yield chunk


def _stopping(chunks: Iterable[pl.Series], should_stop: Callable[[], bool]) -> Iterator[pl.Series]:
    for chunk in chunks:
        if should_stop():
            raise StopRequested
        yield chunk


def _cancelled_by_user(exc: BaseException) -> bool:
    """A statement cancelled on request: Ctrl-C while the driver was waiting (it cancels
    the statement in flight), or ``pg_cancel_backend``; not a statement timeout."""
    return getattr(exc, "sqlstate", None) == "57014" and "user request" in str(exc)


def _stopped(
    exc: BaseException,
    spec: TableSpec,
    source: str,
    load_id: int,
    url: str,
    tally: Tally,
    started: float,
    session: bool,
) -> LoadFailedError:
    """The error to raise for a load that stopped, after its ledger entry is closed.

    The loading connection is closed by now. The report is the ledger's; if the
    database cannot be reached, it is made of the counts the committed batches
    returned, and the next load marks the entry failed.
    """
    cancelled = isinstance(exc, StopRequested | KeyboardInterrupt) or _cancelled_by_user(exc)
    status: Status = "cancelled" if cancelled else "failed"
    reason = "cancelled: the load was asked to stop" if cancelled else _db.first_line(exc)
    try:
        report = _ledger.stop(url, load_id, status, reason, staged=not session)
    except HrcoreError:  # the database is gone too: say what this process saw committed
        report = LoadReport(
            table=spec.name,
            source=source,
            load_id=load_id,
            status=status,
            batches=tally.batches,
            error=reason,
            rows_read=tally.counts["rows_read"],
            rows_inserted=tally.counts["rows_inserted"],
            rows_updated=tally.counts["rows_updated"],
            rows_unchanged=tally.counts["rows_unchanged"],
            rows_rejected=tally.counts["rows_rejected"],
        )
    report.seconds = round(time.perf_counter() - started, 3)
    kind = LoadCancelledError if cancelled else LoadFailedError
    verb = "was cancelled" if cancelled else "failed"
    return kind(
        f"loading {spec.name} from {source} {verb} after {report.batches} committed batches "
        f"({report.rows_read:,} rows): {reason}",
        report,
    )
