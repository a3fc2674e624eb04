"""Loading one CSV file into one table: stage, resolve duplicates, upsert in batches.

1. The file is read as lines, validated in Polars and streamed, good and bad rows
   alike, into a temporary staging table with one ``COPY`` (ADBC ingest of a
   RecordBatchReader), each row tagged with its batch number; memory stays bounded.
2. Among the valid rows, earlier rows whose id comes again are marked ``duplicate_id``.
3. Each batch is one statement, hence one transaction: it records the batch's
   rejected rows, upserts its valid rows, and adds its counts to the ledger, so
   the ledger always agrees with the table.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import adbc_driver_postgresql.dbapi as adbc
import polars as pl
import pyarrow as pa

from hrcore import _ledger, _sources
from hrcore._db import Connection, connect, execute, redact
from hrcore._errors import DatabaseError, LoadFailedError, UsageError
from hrcore._report import LoadReport
from hrcore._schema import init_schema
from hrcore._specs import TABLES, TableSpec, get_table
from hrcore._validate import validate

MIN_BATCH_SIZE, MAX_BATCH_SIZE = 1, 1000
READ_CHUNK_LINES = 100_000  # lines validated at a time while staging
STAGE = "pg_temp.hrcore_stage"

_ARROW_TYPES = {"id": pa.int32(), "text": pa.string(), "datetime": pa.timestamp("us", tz="UTC")}


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a load is: ``phase`` ``read`` counts rows staged, ``write`` rows committed."""

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


def _stage_schema(spec: TableSpec) -> pa.Schema:
    fields = [
        pa.field("line", pa.int64()),
        pa.field("batch", pa.int32()),
        pa.field("raw", pa.string()),
        pa.field("reasons", pa.string()),
    ]
    fields += [pa.field(c.name, _ARROW_TYPES[c.kind]) for c in spec.columns]
    return pa.schema(fields)


def _stage_ddl(spec: TableSpec) -> str:
    columns = ", ".join(f"{c.name} {c.sql_type}" for c in spec.columns)
    return (
        f"CREATE TEMP TABLE hrcore_stage (line bigint, batch integer, raw text, reasons text, "
        f"{columns})"
    )


def _batch_sql(spec: TableSpec, load_id: int, batch: int) -> str:
    """One batch as one statement: rejected rows, upsert, ledger counts, atomically."""
    cols = ", ".join(spec.column_names)
    values = spec.value_columns
    assignments = ", ".join(f"{c} = excluded.{c}" for c in values)
    current = ", ".join(f"t.{c}" for c in values)
    incoming = ", ".join(f"excluded.{c}" for c in values)
    return f"""
WITH batch AS MATERIALIZED (
    SELECT * FROM {STAGE} WHERE batch = {batch:d}
), rejected AS (
    INSERT INTO rejected_rows (load_id, line_number, raw, reasons)
    SELECT {load_id:d}, line, raw, string_to_array(reasons, ',') FROM batch
    WHERE reasons IS NOT NULL
    RETURNING 1
), written AS (
    INSERT INTO {spec.name} AS t ({cols})
    SELECT {cols} FROM batch WHERE reasons IS NULL ORDER BY {spec.key}
    ON CONFLICT ({spec.key}) DO UPDATE SET {assignments}
    WHERE ({current}, NULL) IS DISTINCT FROM ({incoming}, NULL)
    RETURNING (xmax = 0) AS inserted
)
UPDATE load_runs SET
    rows_read = rows_read + (SELECT count(*) FROM batch),
    rows_rejected = rows_rejected + (SELECT count(*) FROM rejected),
    rows_inserted = rows_inserted + (SELECT count(*) FROM written WHERE inserted),
    rows_updated = rows_updated + (SELECT count(*) FROM written WHERE NOT inserted),
    rows_unchanged = rows_unchanged
        + (SELECT count(*) FROM batch WHERE reasons IS NULL) - (SELECT count(*) FROM written),
    batches = batches + 1
WHERE id = {load_id:d}
RETURNING rows_read"""


def _mark_duplicates_sql() -> str:
    """Among valid staged rows, every row whose id comes again later is a duplicate."""
    return f"""
UPDATE {STAGE} AS s SET reasons = 'duplicate_id'
FROM (
    SELECT id, max(line) AS last_line FROM {STAGE}
    WHERE reasons IS NULL GROUP BY id HAVING count(*) > 1
) AS d
WHERE s.id = d.id AND s.reasons IS NULL AND s.line < d.last_line"""


def _reference_ids(conn: Connection, spec: TableSpec) -> dict[str, pl.Series]:
    refs: dict[str, pl.Series] = {}
    for column in spec.references:
        assert column.references is not None
        with conn.cursor() as cur:
            cur.execute(f"SELECT id FROM {column.references}")
            refs[column.references] = pl.from_arrow(cur.fetch_arrow_table())["id"]  # type: ignore[index]
    return refs


class _Stager:
    """Turns the file into validated Arrow batches tagged with batch numbers."""

    def __init__(
        self,
        spec: TableSpec,
        source: _sources.SourceFile,
        refs: dict[str, pl.Series],
        batch_size: int,
        progress: ProgressCallback | None,
    ) -> None:
        self.spec, self.source, self.refs = spec, source, refs
        self.batch_size, self.progress = batch_size, progress
        self.schema = _stage_schema(spec)
        self.rows = 0
        self.error: BaseException | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            lines = _sources.scan_lines(self.source)
            for chunk in lines.collect_batches(chunk_size=READ_CHUNK_LINES):
                if chunk.height == 0:
                    continue
                checked = validate(chunk, self.spec, self.refs).with_columns(
                    batch=(pl.int_range(self.rows, self.rows + chunk.height) // self.batch_size)
                )
                self.rows += chunk.height
                table = checked.select(self.schema.names).to_arrow().cast(self.schema)
                yield from table.to_batches()
                if self.progress:
                    self.progress(Progress(self.spec.name, "read", self.rows, None))
        except BaseException as exc:  # kept: the driver would only see a failed stream
            self.error = exc
            raise

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())


def _stage(conn: Connection, stager: _Stager) -> None:
    execute(conn, f"DROP TABLE IF EXISTS {STAGE}")
    execute(conn, _stage_ddl(stager.spec))
    try:
        with conn.cursor() as cur:
            cur.adbc_ingest("hrcore_stage", stager.reader(), mode="append", temporary=True)
    except adbc.Error:
        if stager.error is not None:
            raise stager.error from None
        raise
    execute(conn, _mark_duplicates_sql())
    execute(conn, f"CREATE INDEX ON {STAGE} (batch)")
    execute(conn, f"ANALYZE {STAGE}")


def _source_label(source: _sources.SourceFile) -> str:
    return source.uri


def _run(
    conn: Connection,
    spec: TableSpec,
    source: _sources.SourceFile,
    load_id: int,
    batch_size: int,
    progress: ProgressCallback | None,
) -> None:
    stager = _Stager(spec, source, _reference_ids(conn, spec), batch_size, progress)
    _stage(conn, stager)
    n_batches = -(-stager.rows // batch_size)
    for batch in range(n_batches):
        with conn.cursor() as cur:
            cur.execute(_batch_sql(spec, load_id, batch))
            (done,) = cur.fetchone() or (0,)
        if progress:
            progress(Progress(spec.name, "write", int(done), stager.rows))
    execute(conn, f"DROP TABLE IF EXISTS {STAGE}")


def _fail(url: str, load_id: int, error: str) -> LoadReport:
    """Mark a load failed on a fresh connection (the loading one may be dead)."""
    with connect(url) as conn:
        _ledger.finish(conn, load_id, error)
        return _ledger.report(conn, load_id)


def load(
    source: str | os.PathLike[str] | None = None,
    *,
    table: str | None = None,
    batch_size: int = 1000,
    database_url: str | None = None,
    progress: ProgressCallback | None = None,
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
    from hrcore._db import database_url as resolve_url

    url = resolve_url(database_url)
    started = time.perf_counter()
    with connect(url) as conn:
        init_schema(conn)
        _ledger.reap_stale(conn)
        # two loaders of the same file take turns; the second then finds nothing to change
        execute(conn, "SELECT pg_advisory_lock(hashtextextended($1, 0))", (f"{spec.name}:{src.uri}",))
        load_id = _ledger.start(conn, spec.name, _source_label(src), src.identity, batch_size)
        try:
            _run(conn, spec, src, load_id, batch_size, progress)
            _ledger.finish(conn, load_id)
            report = _ledger.report(conn, load_id)
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            try:
                report = _fail(url, load_id, message)
            except DatabaseError:
                report = LoadReport(table=spec.name, source=src.uri, load_id=load_id, status="failed")
            report.seconds = round(time.perf_counter() - started, 3)
            raise LoadFailedError(
                f"loading {spec.name} from {src.uri} failed: {redact(message)}", report
            ) from exc
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
        load(source, table=name, batch_size=batch_size, database_url=database_url, progress=progress)
        for name in TABLES
        if name in wanted
    ]
