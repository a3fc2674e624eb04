"""Loading one CSV file into one table: stage, resolve duplicates, upsert in batches.

1. The file is read as lines, validated in Polars and streamed, good and bad rows
   alike, into an unlogged staging table with one ``COPY`` (ADBC ingest of a
   RecordBatchReader), each row tagged with its batch number; memory stays bounded.
2. Among the valid rows, each earlier row whose id comes again is marked ``duplicate_id``.
3. Each batch is one statement, hence one transaction: it records the batch's
   rejected rows, upserts its valid rows and writes its counts to ``load_batches``,
   so the ledger always agrees with the table. A few connections write batches
   side by side, since foreign-key checks keep one server process busy.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import adbc_driver_postgresql.dbapi as adbc
import polars as pl
import pyarrow as pa

from hrcore import _db, _ledger, _sources
from hrcore._db import Connection, connect, execute, first_line, small_query
from hrcore._duplicates import RepeatedIds
from hrcore._errors import HrcoreError, LoadFailedError, UsageError
from hrcore._report import LoadReport
from hrcore._schema import STAGING_SCHEMA, ensure_schema
from hrcore._specs import TABLES, TableSpec, get_table
from hrcore._validate import validate

MIN_BATCH_SIZE, MAX_BATCH_SIZE = 1, 1000
WRITERS = 2  # connections writing batches at once

_ARROW_TYPES = {"id": pa.int32(), "text": pa.string(), "datetime": pa.timestamp("us", tz="UTC")}


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a load is: phase ``read`` counts rows staged, ``write`` rows committed."""

    table: str
    phase: Literal["read", "write"]
    done: int
    total: int | None


ProgressCallback = Callable[[Progress], None]


def check_batch_size(batch_size: int) -> int:
    """The one place where the batch size is checked: an int from 1 to 1000."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise UsageError(f"batch_size must be an integer, not {batch_size!r}")
    if not MIN_BATCH_SIZE <= batch_size <= MAX_BATCH_SIZE:
        raise UsageError(
            f"batch_size must be between {MIN_BATCH_SIZE} and {MAX_BATCH_SIZE}, not {batch_size}"
        )
    return batch_size


def stage_table(load_id: int) -> str:
    return f"{STAGING_SCHEMA}.stage_{load_id:d}"


def _stage_schema(spec: TableSpec) -> pa.Schema:
    fields: list[pa.Field[Any]] = [
        pa.field("line", pa.int64()),
        pa.field("batch", pa.int32()),
        pa.field("raw", pa.string()),
        pa.field("reasons", pa.string()),
    ]
    fields += [pa.field(c.name, _ARROW_TYPES[c.kind]) for c in spec.columns]
    return pa.schema(fields)


def _stage_ddl(spec: TableSpec, stage: str) -> list[str]:
    """Make the staging table: unlogged, seen by every writer; or this session's, reused."""
    columns = (
        "(line bigint, batch integer, raw text, reasons text, "
        + ", ".join(f"{c.name} {c.sql_type}" for c in spec.columns)
        + ")"
    )
    if stage.startswith("pg_temp."):
        return [
            f"CREATE TEMP TABLE IF NOT EXISTS {stage.split('.')[1]} {columns}",
            f"TRUNCATE {stage}",
        ]
    return [f"CREATE UNLOGGED TABLE {stage} {columns}"]


def _batch_sql(spec: TableSpec, stage: str, load_id: int, batch: int) -> str:
    """One batch as one statement: rejected rows, upsert, ledger counts, atomically."""
    cols = ", ".join(spec.column_names)
    values = spec.value_columns
    assignments = ", ".join(f"{c} = excluded.{c}" for c in values)
    current = ", ".join(f"t.{c}" for c in values)
    incoming = ", ".join(f"excluded.{c}" for c in values)
    stored = ", ".join(f"s.{c}" for c in values)
    staged = ", ".join(f"b.{c}" for c in values)
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
    WHERE b.reasons IS NULL AND NOT EXISTS (  -- unchanged rows: not even locked
        SELECT FROM {spec.name} AS s
        WHERE s.{spec.key} = b.{spec.key} AND ({stored}, NULL) IS NOT DISTINCT FROM ({staged}, NULL)
    )
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
RETURNING rows_read"""


_RETRIED = {"40P01", "40001"}  # deadlock, serialization failure: nothing was committed
ATTEMPTS = 3


def _commit_batch(conn: Connection, sql: str) -> int:
    """Run one batch statement (its own transaction); retry it if it lost a deadlock."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                (count,) = cur.fetchone() or (0,)
                return int(count)
        except adbc.Error as exc:
            if getattr(exc, "sqlstate", None) not in _RETRIED or attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _mark_duplicates_sql(stage: str, ids: set[int]) -> str:
    """Of the valid staged rows with a repeated id, all but the last become duplicates."""
    id_list = ",".join(str(int(i)) for i in sorted(ids))
    return f"""
UPDATE {stage} AS s SET reasons = 'duplicate_id'
FROM (
    SELECT id, max(line) AS last_line FROM {stage}
    WHERE reasons IS NULL AND id IN ({id_list}) GROUP BY id
) AS d
WHERE s.id = d.id AND s.reasons IS NULL AND s.line < d.last_line"""


def _reference_ids(conn: Connection, spec: TableSpec) -> dict[str, pl.Series]:
    """The ids of each table that ``spec`` references (departments, jobs: small
    tables), as arrays in one round trip."""
    tables = [c.references for c in spec.references if c.references is not None]
    if not tables:
        return {}
    found = small_query(
        conn, "SELECT " + ", ".join(f"(SELECT array_agg(id) FROM {t})" for t in tables)
    )
    assert found is not None  # a SELECT without FROM has one row
    return {
        t: pl.Series("id", ids or [], dtype=pl.Int64) for t, ids in zip(tables, found, strict=True)
    }


class _Stager:
    """Turns chunks of lines into validated Arrow batches tagged with batch numbers."""

    def __init__(
        self,
        spec: TableSpec,
        lines: Iterable[pl.DataFrame],
        refs: dict[str, pl.Series],
        batch_size: int,
        progress: ProgressCallback | None,
    ) -> None:
        self.spec, self.lines, self.refs = spec, lines, refs
        self.batch_size, self.progress = batch_size, progress
        self.schema = _stage_schema(spec)
        self.rows = 0
        self.ids = RepeatedIds()
        self.error: BaseException | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for chunk in self.lines:
                if chunk.height == 0:
                    continue
                numbered = chunk.with_columns(
                    batch=pl.int_range(self.rows, self.rows + chunk.height) // self.batch_size
                )
                checked = validate(numbered, self.spec, self.refs)
                self.ids.add(checked.filter(pl.col("reasons").is_null())[self.spec.key])
                self.rows += chunk.height
                yield from (
                    checked.select(self.schema.names).to_arrow().cast(self.schema).to_batches()
                )
                if self.progress:
                    self.progress(Progress(self.spec.name, "read", self.rows, None))
        except BaseException as exc:  # kept: the driver would only see a failed stream
            self.error = exc
            raise

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())


def _stage(conn: Connection, stage: str, stager: _Stager) -> None:
    for statement in _stage_ddl(stager.spec, stage):
        execute(conn, statement)
    schema, table = stage.split(".")
    temporary = schema == "pg_temp"
    try:
        with conn.cursor() as cur:
            cur.adbc_ingest(
                table,
                stager.reader(),
                mode="append",
                db_schema_name=None if temporary else schema,
                temporary=temporary,
            )
    except adbc.Error:
        if stager.error is not None:
            raise stager.error from None
        raise
    if stager.ids.repeated:
        execute(conn, _mark_duplicates_sql(stage, stager.ids.repeated))
    if stager.rows > stager.batch_size:  # several batches: each is found by its number
        execute(conn, f"CREATE INDEX ON {stage} (batch)")
        execute(conn, f"ANALYZE {stage}")


def _write_batches(
    conn: Connection,
    url: str,
    spec: TableSpec,
    stage: str,
    load_id: int,
    rows: int,
    batch_size: int,
    writers: int,
    progress: ProgressCallback | None,
) -> None:
    """Commit every batch, each in its own transaction.

    Writer k takes every ``writers``-th batch from batch k; the first writer uses
    the loading connection, the others their own. The first error stops them all.
    """
    n_batches = -(-rows // batch_size)
    workers = max(1, min(writers, n_batches))
    stop = threading.Event()
    lock = threading.Lock()
    done = [0]

    def write(on: Connection, first: int) -> None:
        for batch in range(first, n_batches, workers):
            if stop.is_set():
                return
            count = _commit_batch(on, _batch_sql(spec, stage, load_id, batch))
            with lock:
                done[0] += count
                if progress:
                    progress(Progress(spec.name, "write", done[0], rows))

    def stopping_all_on_error(first: int, on: Connection | None) -> None:
        try:
            if on is not None:
                write(on, first)
            else:
                with connect(url, pooled=False) as own:  # a second one: never wait
                    write(own, first)
        except BaseException:
            stop.set()
            raise

    if workers == 1:
        write(conn, 0)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="hrcore-writer") as pool:
        futures = [pool.submit(stopping_all_on_error, 0, conn)]
        futures += [pool.submit(stopping_all_on_error, k, None) for k in range(1, workers)]
        for future in futures:
            future.result()


def load(
    source: str | os.PathLike[str] | None = None,
    *,
    table: str | None = None,
    batch_size: int = 1000,
    database_url: str | None = None,
    progress: ProgressCallback | None = None,
    writers: int = WRITERS,
) -> LoadReport:
    """Load one CSV file into its table: validated, upserted by id, one transaction per batch.

    ``source`` is a file, or a folder / ``s3://bucket/prefix/`` holding the table's
    file (default: ``s3://$S3_BUCKET_NAME/`` or the bundled samples). ``table`` may be
    omitted when the file name says it (``jobs.csv``). Raises :class:`LoadFailedError`
    (with the partial report) when the load stops before the end.
    """
    batch_size = check_batch_size(batch_size)
    location = _sources.default_source() if source is None else source
    spec = get_table(table) if table is not None else _sources.infer_table(location)
    if spec is None:
        raise UsageError(f"cannot tell which table {os.fspath(location)!r} is for: pass table=")
    src = _sources.resolve(location, spec)
    return run_load(
        spec,
        _sources.read_lines(src),
        source=src.uri,
        identity=src.identity,
        batch_size=batch_size,
        database_url=database_url,
        progress=progress,
        writers=writers,
    )


def run_load(
    spec: TableSpec,
    lines: Iterable[pl.DataFrame],
    *,
    source: str,
    identity: str | None,
    batch_size: int,
    database_url: str | None,
    progress: ProgressCallback | None = None,
    writers: int = WRITERS,
    in_session: bool = False,
) -> LoadReport:
    """Stage ``lines`` (chunks of ``line``, ``text``), then commit them batch by batch.

    A load with an ``identity`` (a file) holds a lock on its table and source, so
    two loaders of the same file take turns; the second then finds nothing to change.
    ``in_session`` stages one batch in the connection's own temporary table, kept
    for the next such load: the short path of the API's POSTs.
    """
    url = _db.database_url(database_url)
    started = time.perf_counter()
    # a file's load may wait for the same file's, then run for minutes: it takes a
    # connection of its own, not one of a server's pool, which reads need
    with connect(url, pooled=in_session) as conn:
        ensure_schema(conn, url)
        if not in_session:
            _ledger.reap_stale(conn)
        if identity is not None:
            execute(
                conn, "SELECT pg_advisory_lock(hashtextextended($1, 0))", (f"{spec.name}:{source}",)
            )
        load_id = _ledger.start(conn, spec.name, source, identity, batch_size)
        stage = f"pg_temp.hrcore_rows_{spec.name}" if in_session else stage_table(load_id)
        try:
            stager = _Stager(spec, lines, _reference_ids(conn, spec), batch_size, progress)
            _stage(conn, stage, stager)
            _write_batches(
                conn, url, spec, stage, load_id, stager.rows, batch_size, writers, progress
            )
            _ledger.finish(conn, load_id, staged=not in_session)
            report = _ledger.report(conn, load_id)
        except Exception as exc:
            try:
                report = _ledger.fail(url, load_id, first_line(exc))
            except HrcoreError:  # the database is gone too: the next load reaps this entry
                report = LoadReport(
                    table=spec.name, source=source, load_id=load_id, status="failed"
                )
            report.seconds = round(time.perf_counter() - started, 3)
            raise LoadFailedError(
                f"loading {spec.name} from {source} failed: {first_line(exc)}", report
            ) from exc
        if identity is not None:
            execute(conn, "SELECT pg_advisory_unlock_all()")
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def load_all(
    source: str | os.PathLike[str] | None = None,
    *,
    tables: list[str] | None = None,
    batch_size: int = 1000,
    database_url: str | None = None,
    progress: ProgressCallback | None = None,
) -> list[LoadReport]:
    """Load several tables' files from one folder or prefix, referenced tables first."""
    check_batch_size(batch_size)
    wanted = {get_table(t).name for t in tables} if tables else set(TABLES)
    return [
        load(
            source, table=name, batch_size=batch_size, database_url=database_url, progress=progress
        )
        for name in TABLES
        if name in wanted
    ]
