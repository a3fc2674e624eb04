"""Writing staged rows: each batch one statement, hence one transaction.

A batch's statement records its rejected rows, upserts its valid rows (unchanged
rows are not even locked) and writes its counts to ``load_batches``, so the ledger
always agrees with the table. Into a table that was empty when the load began, a
batch is instead one transaction of a ``COPY`` of its valid rows straight into the
table, its rejected rows and its counts: no staging, no upsert; should one of its
ids be there by then (another writer's), the batch is staged and upserted instead.
A few connections write batches side by side, as soon as they are staged; they all
stop at the next batch boundary on the first error or when asked to stop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, cast

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
import pyarrow.compute as pc

from hrcore import _stage
from hrcore._changes import BUMPS_PER_BATCH
from hrcore._db import (
    Connection,
    connect,
    database_error,
    execute,
    ingest,
    run_script,
    small_query,
)
from hrcore._errors import DatabaseError
from hrcore._ledger import COUNTS
from hrcore._specs import TableSpec
from hrcore._stage import Batch, Chunk, Progress, ProgressCallback, StopRequested

WRITERS = 2  # connections writing batches at once
ATTEMPTS = 3
_RETRIED = {"40P01", "40001"}  # deadlock, serialization failure: nothing was committed
_TAKEN = "23505"  # unique violation: an id of a copied batch is in the table already
QUEUED = 256  # batches handed out and not yet taken by a writer: bounds a load's memory
DENSE = 4  # ids filling a quarter of their range: compared by range (see dense_ids)
QUEUED_CHUNKS = 2  # the same for whole chunks (about 90,000 rows each), per writer


@dataclass
class Tally:
    """The counts of the batches committed so far, as their statements returned them."""

    batches: int = 0
    bumps: int = 0  # the table's change counter, moved by the statements of these batches
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, counts: tuple[int, ...], bumps: int = 0) -> int:
        """Count one committed batch, and the ``bumps`` of the table's change counter
        its statements made; return the rows committed so far."""
        with self.lock:
            self.batches += 1
            self.bumps += bumps
            for name, n in zip(COUNTS, counts, strict=True):
                self.counts[name] += int(n)
            return self.counts["rows_read"]


def batch_sql(
    spec: TableSpec,
    stage: str,
    load_id: int,
    batch: int,
    *,
    probe: bool = True,
    line_offset: int = 0,
    batch_offset: int = 0,
    outcomes: bool = False,
) -> str:
    """One batch as one statement: rejected rows, upsert, ledger counts, atomically.

    ``probe`` first looks each row up, so that an unchanged row is not even locked
    (what makes a reload cheap); a load into an empty table skips it. The ledger
    numbers the batch and its lines after ``batch_offset`` and ``line_offset`` (a
    part of a many-part load comes after the parts before it). With ``outcomes``, the
    statement also returns what became of each valid row (a request's rows: see
    :func:`outcomes_of`).
    """
    cols = ", ".join(spec.column_names)
    values = spec.value_columns
    assignments = ", ".join(f"{c} = excluded.{c}" for c in values)
    current = ", ".join(f"t.{c}" for c in values)
    incoming = ", ".join(f"excluded.{c}" for c in values)
    stored = ", ".join(f"s.{c}" for c in values)
    staged = ", ".join(f"b.{c}" for c in values)
    unchanged = f"""AND NOT EXISTS (  -- unchanged rows: not even locked
        SELECT FROM {spec.name} AS s
        WHERE s.{spec.key} = b.{spec.key} AND ({stored}, NULL) IS NOT DISTINCT FROM ({staged}, NULL)
    )"""
    return f"""
WITH batch AS MATERIALIZED (
    SELECT * FROM {stage} WHERE batch = {batch:d}
), rejected AS (
    INSERT INTO rejected_rows (load_id, line_number, raw, reasons)
    SELECT {load_id:d}, line + {line_offset:d}, raw, string_to_array(reasons, ',') FROM batch
    WHERE reasons IS NOT NULL
    RETURNING 1
), written AS (
    INSERT INTO {spec.name} AS t ({cols})
    SELECT {cols} FROM batch AS b
    WHERE b.reasons IS NULL {unchanged if probe else ""}
    ORDER BY {spec.key}
    ON CONFLICT ({spec.key}) DO UPDATE SET {assignments}
    WHERE ({current}, NULL) IS DISTINCT FROM ({incoming}, NULL)
    RETURNING (xmax = 0) AS inserted, {spec.key} AS key
)
INSERT INTO load_batches
    (load_id, batch, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected)
SELECT {load_id:d}, {batch + batch_offset:d}, (SELECT count(*) FROM batch),
    (SELECT count(*) FROM written WHERE inserted),
    (SELECT count(*) FROM written WHERE NOT inserted),
    (SELECT count(*) FROM batch WHERE reasons IS NULL) - (SELECT count(*) FROM written),
    (SELECT count(*) FROM rejected)
RETURNING rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected{
        _OUTCOMES.format(key=spec.key) if outcomes else ""
    }"""


# the ids inserted, the ids updated, and the lines and ids of the valid rows: matched
# by the caller (a join of the two here runs as a nested loop: twice a request's time)
_OUTCOMES = """,
    (SELECT array_agg(key) FROM written WHERE inserted),
    (SELECT array_agg(key) FROM written WHERE NOT inserted),
    (SELECT array_agg(line ORDER BY line) FROM batch WHERE reasons IS NULL),
    (SELECT array_agg({key} ORDER BY line) FROM batch WHERE reasons IS NULL)"""


def dense_ids(rows: pa.Table, key: str) -> tuple[int, int] | None:
    """The least and the greatest id of ``rows`` when they fill at least a quarter
    of the ids between (a file in id order, or nearly): see :func:`record_unchanged`."""
    if rows.num_rows == 0:
        return None
    least, greatest = (int(v.as_py()) for v in pc.min_max(rows[key]).values())
    return (least, greatest) if greatest - least < DENSE * rows.num_rows else None


def record_unchanged(
    conn: Connection, target: Target, batches: range, ids: tuple[int, int] | None = None
) -> dict[int, tuple[int, ...]]:
    """In one statement (one snapshot): record in the ledger, with their rejected rows,
    the batches among ``batches`` whose valid rows are all stored as they are (a
    reload), and return their counts by batch; the others are left to the writers.

    With ``ids`` (see :func:`dense_ids`: the batches' valid ids lie between these two,
    and fill much of the range), the table's rows in that range are read in one
    index range scan and matched by a hash join, instead of being looked up id by id:
    68 ms instead of 163 for 92,000 rows here. The planner is told so for this
    statement alone: the staged rows have no statistics, so it would pick lookups.
    """
    if ids is None:
        rows = execute(conn, _unchanged_sql(target, batches, ""))
    else:
        run_script(conn, "BEGIN; SET LOCAL enable_nestloop = off")
        try:
            in_range = f"AND t.{target.spec.key} BETWEEN {ids[0]:d} AND {ids[1]:d}"
            rows = execute(conn, _unchanged_sql(target, batches, in_range))
            run_script(conn, "COMMIT")
        except BaseException:
            with suppress(DatabaseError):
                run_script(conn, "ROLLBACK")
            raise
    return {int(r[0]): tuple(int(n) for n in r[1:]) for r in rows}


def _unchanged_sql(target: Target, batches: range, in_range: str) -> str:
    spec, stage = target.spec, target.stage
    stored = ", ".join(f"t.{c}" for c in spec.value_columns)
    staged = ", ".join(f"s.{c}" for c in spec.value_columns)
    return f"""WITH span AS MATERIALIZED (
            SELECT * FROM {stage} WHERE batch BETWEEN {batches.start:d} AND {batches.stop - 1:d}
        ), counted AS (
            SELECT batch, count(*) AS n, count(*) FILTER (WHERE reasons IS NULL) AS valid
            FROM span GROUP BY batch
        ), quiet AS (
            SELECT * FROM counted WHERE batch NOT IN (
                SELECT s.batch FROM span AS s WHERE s.reasons IS NULL AND NOT EXISTS (
                    SELECT FROM {spec.name} AS t WHERE t.{spec.key} = s.{spec.key} {in_range}
                    AND ({stored}, NULL) IS NOT DISTINCT FROM ({staged}, NULL)))
        ), rejected AS (
            INSERT INTO rejected_rows (load_id, line_number, raw, reasons)
            SELECT {target.load_id:d}, line, raw, string_to_array(reasons, ',') FROM span
            WHERE reasons IS NOT NULL AND batch IN (SELECT batch FROM quiet)
        )
        INSERT INTO load_batches
            (load_id, batch, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected)
        SELECT {target.load_id:d}, batch, n, 0, 0, valid, n - valid FROM quiet
        RETURNING batch, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected"""


def commit_batch(conn: Connection, sql: str) -> tuple[Any, ...]:
    """Run one batch statement (its own transaction); retry it if it lost a deadlock.

    Returns the batch's counts in :data:`hrcore._ledger.COUNTS` order, and after
    them what else the statement returns.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone()
                assert row is not None  # INSERT ... SELECT of one row, RETURNING
                return tuple(row)
        except adbc.Error as exc:
            if getattr(exc, "sqlstate", None) not in _RETRIED or attempt == ATTEMPTS:
                raise database_error(exc) from exc
    raise AssertionError("unreachable")


def copy_batch(conn: Connection, target: Target, batch: Batch) -> tuple[int, ...] | None:
    """One batch into a table that was empty, its own transaction in three round trips:
    its counts into ``load_batches`` and its rejected rows (staged) into
    ``rejected_rows``; its valid rows in one ``COPY``; the commit.

    Returns its counts, or None (nothing written) if one of its ids is in the table
    already: someone else wrote it since the load began.
    """
    spec, load_id = target.spec, target.load_id
    counts = (batch.read, batch.rows.num_rows, 0, 0, batch.rejected)
    first = [
        "BEGIN",
        "INSERT INTO load_batches (load_id, batch, rows_read, rows_inserted, rows_updated, "
        f"rows_unchanged, rows_rejected) VALUES ({load_id:d}, {batch.number:d}, "
        + ", ".join(f"{n:d}" for n in counts)
        + ")",
    ]
    if batch.rejected:
        first.append(
            "INSERT INTO rejected_rows (load_id, line_number, raw, reasons) "
            f"SELECT {load_id:d}, line, raw, string_to_array(reasons, ',') FROM {target.stage} "
            f"WHERE batch = {batch.number:d} AND reasons IS NOT NULL"
        )
    for attempt in range(1, ATTEMPTS + 1):
        try:
            run_script(conn, "; ".join(first))
            if batch.rows.num_rows:
                ingest(conn, spec.name, batch.rows.select(spec.column_names))
            run_script(conn, "COMMIT")
            return counts
        except DatabaseError as exc:
            with suppress(DatabaseError):
                run_script(conn, "ROLLBACK")
            if exc.sqlstate == _TAKEN:
                return None
            if exc.sqlstate not in _RETRIED or attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class Target:
    """Where batches go: the staged load they belong to."""

    spec: TableSpec
    stage: str
    load_id: int
    probe: bool = True  # look rows up first (see batch_sql); not into an empty table
    # a request's rows: filled with what became of each valid row, by line
    outcomes: dict[int, str] | None = None
    line_offset: int = 0  # a part of a many-part load: the lines and batches of the
    batch_offset: int = 0  # parts before it, after which the ledger numbers its own


def _write_one(
    conn: Connection,
    target: Target,
    batch: int,
    tally: Tally,
    progress: ProgressCallback | None,
    reporting: threading.Lock,
) -> None:
    sql = batch_sql(
        target.spec, target.stage, target.load_id, batch, probe=target.probe,
        line_offset=target.line_offset, batch_offset=target.batch_offset,
        outcomes=target.outcomes is not None,
    )  # fmt: skip
    row = commit_batch(conn, sql)
    if target.outcomes is not None:
        target.outcomes.update(outcomes_of(*row[len(COUNTS) :]))
    _report(_counts(row), BUMPS_PER_BATCH, target, tally, progress, reporting)


def outcomes_of(
    inserted: list[int] | None,
    updated: list[int] | None,
    lines: list[int] | None,
    ids: list[int] | None,
) -> dict[int, str]:
    """What became of each valid row, by line, from what ``batch_sql(outcomes=True)``
    returns (an aggregate of no rows is null)."""
    new, changed = set(inserted or ()), set(updated or ())
    return {
        int(line): "inserted" if i in new else "updated" if i in changed else "unchanged"
        for line, i in zip(lines or (), ids or (), strict=True)
    }


def _counts(row: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(int(n) for n in row[: len(COUNTS)])


def _copy_one(
    conn: Connection,
    target: Target,
    batch: Batch,
    tally: Tally,
    progress: ProgressCallback | None,
    reporting: threading.Lock,
) -> None:
    counts = copy_batch(conn, target, batch)
    if counts is None:  # written meanwhile by someone else: staged and upserted instead
        _stage.copy_in(conn, target.stage, batch.rows)
        sql = batch_sql(target.spec, target.stage, target.load_id, batch.number)
        counts, bumps = _counts(commit_batch(conn, sql)), BUMPS_PER_BATCH
    else:  # a COPY fires the INSERT triggers only; none without rows
        bumps = 1 if batch.rows.num_rows else 0
    _report(counts, bumps, target, tally, progress, reporting)


def _report(
    counts: tuple[int, ...],
    bumps: int,
    target: Target,
    tally: Tally,
    progress: ProgressCallback | None,
    reporting: threading.Lock,
) -> None:
    with reporting:  # one progress call at a time, counts in order
        done = tally.add(counts, bumps)
        if progress:
            progress(Progress(target.spec.name, "write", done, None))


def write_here(
    conn: Connection,
    target: Target,
    batches: range,
    tally: Tally,
    progress: ProgressCallback | None,
) -> None:
    """Commit staged batches on this connection, in this thread."""
    reporting = threading.Lock()
    for batch in batches:
        _write_one(conn, target, batch, tally, progress, reporting)


def write_request(
    conn: Connection, target: Target, chunk: Chunk, tally: Tally, progress: ProgressCallback | None
) -> None:
    """A request's rows (one chunk of one batch), on this connection, in this thread.

    Its rejected rows are staged, in the session's table (made or emptied first).
    When its valid rows' ids are distinct and the table holds none between the least
    and the greatest of them (a request of new rows, the usual kind), the batch is
    copied straight in (:func:`copy_batch`): no staging of valid rows, no upsert.
    Otherwise, or should one of those ids be written meanwhile, its valid rows are
    staged too, repeated ids marked, and the batch statement upserts them.
    """
    (batch,) = chunk.batches
    reporting = threading.Lock()
    if chunk.staged.num_rows:
        _stage.create(conn, target.spec, target.stage)
        _stage.copy_in(conn, target.stage, chunk.staged)
    if _all_new(conn, target, batch):
        counts = copy_batch(conn, target, batch)
        if counts is not None:
            if target.outcomes is not None:
                lines = cast(list[int], batch.rows.column("line").to_pylist())
                target.outcomes.update(dict.fromkeys(lines, "inserted"))
            bumps = 1 if batch.rows.num_rows else 0  # a COPY fires the INSERT triggers only
            _report(counts, bumps, target, tally, progress, reporting)
            return
    if not chunk.staged.num_rows:
        _stage.create(conn, target.spec, target.stage)
    if batch.rows.num_rows:
        _stage.copy_in(conn, target.stage, batch.rows)
        _stage.mark_duplicates(conn, target.stage)
    _write_one(conn, target, batch.number, tally, progress, reporting)


def _all_new(conn: Connection, target: Target, batch: Batch) -> bool:
    """Whether the batch's valid rows have distinct ids and the table holds no id
    between their least and greatest: one index probe (none into a table that was
    empty when the load began). New ids among stored ones take the upsert instead."""
    ids = batch.rows.column(target.spec.key)
    if pc.count_distinct(ids).as_py() < len(ids):
        return False
    if not len(ids) or not target.probe:
        return True
    low, high = pc.min_max(ids).values()
    found = small_query(
        conn,
        f"SELECT EXISTS (SELECT FROM {target.spec.name} "
        f"WHERE {target.spec.key} BETWEEN {int(low.as_py()):d} AND {int(high.as_py()):d})",
    )
    return found is not None and not found[0]


class Writers:
    """``count`` threads, each with a connection of its own, committing the batches
    they are given as soon as they are given them, each batch in its own transaction.

    Into a table that had rows, a writer first records at once the batches of a
    chunk that would change nothing (:func:`record_unchanged`), then writes the
    others (a chunk's valid rows are staged by the writer that takes it); into an
    empty one, the writers share out the batches one by one, each copied straight
    in (:func:`copy_batch`). At most :data:`QUEUED` batches (or
    :data:`QUEUED_CHUNKS` chunks per writer) wait for a writer: the loading thread
    waits for room, so memory stays bounded.

    The first error, or :meth:`stop`, or ``should_stop``, stops every writer at
    its next batch boundary; :meth:`finish` waits for them and raises that error.
    The loading thread only hands out batches and waits, so Ctrl-C reaches it,
    not a driver call (which would cancel the batch in flight).
    """

    def __init__(
        self,
        url: str,
        target: Target,
        count: int,
        tally: Tally,
        progress: ProgressCallback | None,
        should_stop: Callable[[], bool],
    ) -> None:
        self.url, self.target, self.tally, self.progress = url, target, tally, progress
        self.should_stop = should_stop
        self.todo: queue.Queue[range | Batch | Chunk | None] = queue.Queue(
            QUEUED_CHUNKS * count if target.probe else QUEUED
        )
        self.stopped = threading.Event()
        self.errors: list[BaseException] = []
        self.reporting = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, name=f"hrcore-writer-{k}", daemon=True)
            for k in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        try:
            with connect(self.url) as conn:
                name = f"hrcore writer of load {self.target.load_id:d}"
                execute(conn, f"SET application_name = '{name}'")  # seen in pg_stat_activity
                while not self.stopped.is_set():
                    try:
                        job = self.todo.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    if job is None:
                        return
                    if self.should_stop():
                        self.stopped.set()  # the loading thread waits for room no more
                        return
                    self._do(conn, job)
        except BaseException as exc:
            self.errors.append(exc)
            self.stopped.set()

    def _do(self, conn: Connection, job: range | Batch | Chunk) -> None:
        if isinstance(job, Batch):
            _copy_one(conn, self.target, job, self.tally, self.progress, self.reporting)
            return
        ids = None
        if isinstance(job, Chunk):  # its valid rows staged first, then its batches written
            if job.valid.num_rows:
                _stage.copy_in(conn, self.target.stage, job.valid)
            ids = dense_ids(job.valid, self.target.spec.key)
            job = job.numbers
        unchanged = record_unchanged(conn, self.target, job, ids) if self.target.probe else {}
        if unchanged:
            with self.reporting:
                for counts in unchanged.values():
                    done = self.tally.add(counts)
                if self.progress:
                    self.progress(Progress(self.target.spec.name, "write", done, None))
        for batch in (b for b in job if b not in unchanged):
            if self.stopped.is_set() or self.should_stop():
                return
            _write_one(conn, self.target, batch, self.tally, self.progress, self.reporting)

    def give(self, batches: range) -> None:
        """Hand out staged (committed) batches; raise a writer's error, if any."""
        if self.target.probe:  # one job: check them, then write what changes
            self._put(batches)
            return
        for batch in batches:
            self._put(range(batch, batch + 1))

    def give_chunk(self, chunk: Chunk) -> None:
        """Hand out a chunk whose rejected and set-aside rows are staged (committed):
        into an empty table, its batches one by one, copied straight in; else the
        chunk as one job, its valid rows staged by the writer that takes it."""
        if self.target.probe:
            self._put(chunk)
            return
        for batch in chunk.batches:
            self._put(batch)

    def _put(self, job: range | Batch | Chunk | None) -> None:
        """Queue a job once there is room (raising a writer's error meanwhile); not
        once the writers have stopped; raise :class:`StopRequested` if the load is
        asked to stop while it waits."""
        while not self.stopped.is_set():
            try:
                self.todo.put(job, timeout=0.5)
                return
            except queue.Full:
                if self.should_stop():
                    raise StopRequested from None
        self.check()

    def check(self) -> None:
        if self.errors:
            raise self.errors[0]

    def stop(self) -> None:
        """Stop every writer at its next batch boundary."""
        self.stopped.set()

    def abandon(self) -> None:
        """Stop every writer at its next batch boundary and wait for them: a batch in
        flight commits (or fails) before this returns. Each wait is bounded by the
        statement and lock timeouts of the batch's statements."""
        self.stop()
        for thread in self.threads:
            thread.join()

    def finish(self) -> None:
        """No more batches: wait for the writers to commit those given (or to stop)."""
        for _ in self.threads:
            self._put(None)
        try:
            for thread in self.threads:
                thread.join()
        except BaseException:  # Ctrl-C while waiting: they stop after their batch
            self.stop()
            for thread in self.threads:
                thread.join()
            raise
        self.check()
