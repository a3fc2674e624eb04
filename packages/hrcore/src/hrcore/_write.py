"""Writing staged rows: each batch one statement, hence one transaction.

A batch's statement records its rejected rows, upserts its valid rows (unchanged
rows are not even locked) and writes its counts to ``load_batches``, so the ledger
always agrees with the table. A few connections write batches side by side; they
all stop at the next batch boundary on the first error or when asked to stop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import adbc_driver_postgresql.dbapi as adbc

from hrcore._db import Connection, connect, database_error
from hrcore._ledger import COUNTS
from hrcore._specs import TableSpec
from hrcore._stage import Progress, ProgressCallback

WRITERS = 2  # connections writing batches at once
ATTEMPTS = 3
_RETRIED = {"40P01", "40001"}  # deadlock, serialization failure: nothing was committed


@dataclass
class Tally:
    """The counts of the batches committed so far, as their statements returned them."""

    batches: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, counts: tuple[int, ...]) -> int:
        """Count one committed batch; return the rows committed so far."""
        with self.lock:
            self.batches += 1
            for name, n in zip(COUNTS, counts, strict=True):
                self.counts[name] += int(n)
            return self.counts["rows_read"]


def batch_sql(spec: TableSpec, stage: str, load_id: int, batch: int, *, probe: bool = True) -> str:
    """One batch as one statement: rejected rows, upsert, ledger counts, atomically.

    ``probe`` first looks each row up, so that an unchanged row is not even locked
    (what makes a reload cheap); a load into an empty table skips it.
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
    SELECT {load_id:d}, line, raw, string_to_array(reasons, ',') FROM batch
    WHERE reasons IS NOT NULL
    RETURNING 1
), written AS (
    INSERT INTO {spec.name} AS t ({cols})
    SELECT {cols} FROM batch AS b
    WHERE b.reasons IS NULL {unchanged if probe else ""}
    ORDER BY {spec.key}
    ON CONFLICT ({spec.key}) DO UPDATE SET {assignments}
    WHERE ({current}, NULL) IS DISTINCT FROM ({incoming}, NULL)
    RETURNING (xmax = 0) AS inserted
)
INSERT INTO load_batches
    (load_id, batch, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected)
SELECT {load_id:d}, {batch:d}, (SELECT count(*) FROM batch),
    (SELECT count(*) FROM written WHERE inserted),
    (SELECT count(*) FROM written WHERE NOT inserted),
    (SELECT count(*) FROM batch WHERE reasons IS NULL) - (SELECT count(*) FROM written),
    (SELECT count(*) FROM rejected)
RETURNING rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected"""


def commit_batch(conn: Connection, sql: str) -> tuple[int, ...]:
    """Run one batch statement (its own transaction); retry it if it lost a deadlock.

    Returns the batch's counts in :data:`hrcore._ledger.COUNTS` order.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone()
                assert row is not None  # INSERT ... SELECT of one row, RETURNING
                return tuple(int(n) for n in row)
        except adbc.Error as exc:
            if getattr(exc, "sqlstate", None) not in _RETRIED or attempt == ATTEMPTS:
                raise database_error(exc) from exc
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class Batches:
    """What the writers write: ``count`` batches of a staged load."""

    spec: TableSpec
    stage: str
    load_id: int
    rows: int
    count: int
    probe: bool = True  # look rows up first (see batch_sql); not into an empty table


def write_batches(
    conn: Connection,
    url: str,
    batches: Batches,
    *,
    writers: int,
    tally: Tally,
    progress: ProgressCallback | None,
    should_stop: Callable[[], bool],
) -> bool:
    """Commit every batch, each in its own transaction; False if stopped before the end.

    Writer k takes every ``writers``-th batch from batch k; the first writer uses
    the loading connection, the others their own. Each checks ``should_stop``
    before every batch; the first error stops them all at their next boundary.
    """
    workers = max(1, min(writers, batches.count))
    stop = threading.Event()
    reporting = threading.Lock()  # one progress call at a time, counts in order

    def stopping() -> bool:
        return stop.is_set() or should_stop()

    def write(on: Connection, first: int) -> None:
        for batch in range(first, batches.count, workers):
            if stopping():
                return
            sql = batch_sql(
                batches.spec, batches.stage, batches.load_id, batch, probe=batches.probe
            )
            counts = commit_batch(on, sql)
            with reporting:
                done = tally.add(counts)
                if progress:
                    progress(Progress(batches.spec.name, "write", done, batches.rows))

    def writer(first: int) -> None:
        try:
            if first == 0:
                write(conn, first)
            else:
                with connect(url) as own:  # a connection of its own
                    write(own, first)
        except BaseException:
            stop.set()
            raise

    # even one writer runs in a thread of its own: this thread only waits, so Ctrl-C
    # reaches Python here (not the driver, which would cancel the batch in flight) and
    # the writers stop after the batch they are in
    with ThreadPoolExecutor(workers, thread_name_prefix="hrcore-writer") as pool:
        futures = [pool.submit(writer, k) for k in range(workers)]
        try:
            for future in futures:
                future.result()
        except BaseException:  # an error, or Ctrl-C while waiting: all stop at a boundary
            stop.set()
            raise
    return tally.batches == batches.count
