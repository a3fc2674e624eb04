"""Table backups as AVRO object container files, and restores from them.

A backup streams the table out of PostgreSQL (ADBC ``COPY`` as Arrow batches, in
one snapshot) into fastavro, so memory stays bounded. It is written under a
temporary name and appears under its own only when complete; its metadata holds
the table and the number of rows, which a restore checks.

A restore reads the whole file first and validates every row by the rules of a
load; then it replaces the table's content in one transaction, holding the table
alone (no load of it runs meanwhile, no other writer changes it): all or nothing,
foreign keys checked at commit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import adbc_driver_manager
import msgspec
import polars as pl
import pyarrow as pa

from hrcore import _db, _ledger, _locks, _storage
from hrcore._db import Connection, Limits, connect, execute, first_line, scalar
from hrcore._errors import DatabaseError, HrcoreError, RestoreError, SourceNotFoundError
from hrcore._schema import ensure_schema
from hrcore._specs import TABLES, TableSpec, get_table
from hrcore._stage import reference_ids
from hrcore._storage import StoredFile
from hrcore._validate import validate

RESTORE_CHUNK_ROWS = 50_000
TABLE_KEY, ROWS_KEY = "hrcore.table", "hrcore.rows"  # the backup's own metadata
_AVRO_TYPES: dict[str, Any] = {
    "id": "int",
    "text": "string",
    "datetime": {"type": "long", "logicalType": "timestamp-micros"},
}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "id": pa.int32(),
    "text": pa.string(),
    "datetime": pa.timestamp("us", tz="UTC"),
}


def _arrow_schema(spec: TableSpec) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.kind]) for c in spec.columns])


class Backup(msgspec.Struct, kw_only=True):
    """One backup file: which table, where it is, how many rows it holds."""

    table: str
    uri: str
    rows: int


def avro_schema(spec: TableSpec) -> dict[str, Any]:
    """The AVRO record schema of a table: ids as int, datetimes as UTC timestamp-micros."""
    fields = [{"name": c.name, "type": _AVRO_TYPES[c.kind]} for c in spec.columns]
    return {"type": "record", "name": spec.name, "namespace": "hrcore", "fields": fields}


def default_destination() -> str:
    """``s3://$S3_BUCKET_NAME/backups/`` when that is set, else ``backups/`` here."""
    bucket = os.environ.get("S3_BUCKET_NAME")
    return f"s3://{bucket}/backups/" if bucket else "backups"


def _file_uri(spec: TableSpec, to: str) -> str:
    if to.endswith(".avro"):
        return to
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return _storage.check_location(f"{to.rstrip('/')}/{spec.name}-{stamp}.avro")


def _records(conn: Connection, spec: TableSpec) -> Iterator[dict[str, Any]]:
    """The table's rows in id order, streamed; datetimes as UTC microseconds."""
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(spec.column_names)} FROM {spec.name} ORDER BY {spec.key}"
            )
            for batch in cur.fetch_record_batch():
                columns = {
                    name: batch.column(name).cast(pa.int64())
                    if c.kind == "datetime"
                    else batch.column(name)
                    for name, c in zip(spec.column_names, spec.columns, strict=True)
                }
                yield from pa.RecordBatch.from_pydict(columns).to_pylist()
    except (adbc_driver_manager.Error, OSError) as exc:  # the stream broke: the database's fault
        raise _db.database_error(exc) from exc


def backup(
    table: str,
    *,
    to: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
) -> Backup:
    """Write ``table`` to ``<to>/<table>-<UTC time>.avro``, or to ``to`` if it ends in .avro.

    The rows are read in one snapshot; the file appears under its name only once it
    is complete (an error or a kill leaves nothing there).
    """
    spec = get_table(table)
    uri = _file_uri(spec, _storage.check_location(to if to is not None else default_destination()))
    url = _db.database_url(database_url)
    with connect(url) as conn:  # held for the whole backup: not a pool's
        ensure_schema(conn, url)
        execute(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        rows = int(scalar(conn, f"SELECT count(*) FROM {spec.name}"))
        written = 0

        def counting() -> Iterator[dict[str, Any]]:
            nonlocal written
            for written, record in enumerate(_records(conn, spec), start=1):  # noqa: B007
                yield record

        import fastavro  # here, not at start: a load needs none of it

        with _storage.atomic_write(uri) as file:
            fastavro.writer(
                file,
                fastavro.parse_schema(avro_schema(spec)),
                counting(),
                codec="deflate",
                metadata={TABLE_KEY: spec.name, ROWS_KEY: str(rows)},
            )
            if written != rows:  # cannot happen in one snapshot; never leave such a file
                raise DatabaseError(f"read {written} rows of {spec.name}, expected {rows}")
        execute(conn, "COMMIT")
    return Backup(table=spec.name, uri=uri, rows=rows)


def backup_all(
    *, to: str | os.PathLike[str] | None = None, database_url: str | None = None
) -> list[Backup]:
    """Back up every table, one file each."""
    return [backup(name, to=to, database_url=database_url) for name in TABLES]


def _check_header(spec: TableSpec, reader: Any, uri: str) -> int:
    """The number of rows the file says it holds, if it is a complete backup of ``spec``."""
    expected = avro_schema(spec)
    schema = reader.writer_schema
    name = str(schema.get("name", "")) if isinstance(schema, dict) else ""
    fields = schema.get("fields") if isinstance(schema, dict) else None
    found = [(f.get("name"), f.get("type")) for f in fields or []]
    wanted = [(f["name"], f["type"]) for f in expected["fields"]]
    if name.rsplit(".", 1)[-1] != spec.name or found != wanted:
        raise RestoreError(f"{uri} is not an AVRO backup of table {spec.name}")
    metadata = reader.metadata or {}
    if metadata.get(TABLE_KEY) != spec.name or not str(metadata.get(ROWS_KEY, "")).isdigit():
        raise RestoreError(
            f"{uri} does not say it is a complete backup of {spec.name} "
            f"(no {TABLE_KEY} / {ROWS_KEY} in its metadata); nothing was changed"
        )
    return int(metadata[ROWS_KEY])


def _as_fields(spec: TableSpec, chunk: list[dict[str, Any]], start: int) -> pl.DataFrame:
    """Records as the fields a CSV row would hold, for the load's validation."""
    frame = pl.DataFrame(chunk, schema=_arrow_schema_polars(spec), orient="row")
    fields = []
    for i, column in enumerate(spec.columns):
        value = pl.col(column.name)
        if column.kind == "datetime":
            text = (
                pl.when(value.dt.microsecond() == 0)
                .then(value.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
                .otherwise(value.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
            )
        else:
            text = value.cast(pl.String)
        fields.append(text.alias(f"f{i}"))
    return frame.select(
        pl.int_range(start + 1, start + 1 + frame.height, dtype=pl.Int64).alias("line"),
        pl.concat_str(fields, separator=",").alias("text"),
        *fields,
        pl.lit(len(spec.columns), dtype=pl.Int32).alias("n_fields"),
    )


def _arrow_schema_polars(spec: TableSpec) -> dict[str, pl.DataType]:
    kinds: dict[str, pl.DataType] = {
        "id": pl.Int64(),
        "text": pl.String(),
        "datetime": pl.Datetime("us", "UTC"),
    }
    return {c.name: kinds[c.kind] for c in spec.columns}


class _Checked:
    """The backup's records, validated by the rules of a load, as Arrow batches.

    A row that breaks a rule stops the stream: the restore is refused. The count of
    rows is kept, and so is the first error, for the message (the driver would only
    report a failed stream).
    """

    def __init__(self, spec: TableSpec, records: Iterator[Any], refs: dict[str, pl.Series]) -> None:
        self.spec, self.records, self.refs = spec, records, refs
        self.rows = 0
        self.error: Exception | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        schema = _arrow_schema(self.spec)
        try:
            while chunk := list(islice(self.records, RESTORE_CHUNK_ROWS)):
                checked = validate(_as_fields(self.spec, chunk, self.rows), self.spec, self.refs)
                bad = checked.filter(pl.col("reasons").is_not_null())
                if bad.height:
                    raise RestoreError(_broken_rows(self.spec, bad))
                self.rows += checked.height
                yield from (
                    checked.select(self.spec.column_names).to_arrow().cast(schema).to_batches()
                )
        except Exception as exc:
            self.error = exc
            raise


def _broken_rows(spec: TableSpec, bad: pl.DataFrame) -> str:
    shown = "; ".join(
        f"record {line} ({raw[:60]}): {reasons}"
        for line, raw, reasons in bad.select("line", "raw", "reasons").head(3).iter_rows()
    )
    more = f" and {bad.height - 3} more" if bad.height > 3 else ""
    return f"rows that break the rules of {spec.name}: {shown}{more}"


def _replace_sql(spec: TableSpec, load_id: int) -> str:
    """The delete and the upsert as one statement (one snapshot), with its counts
    written to the ledger in the same transaction."""
    cols = ", ".join(spec.column_names)
    values = spec.value_columns
    assignments = ", ".join(f"{c} = excluded.{c}" for c in values)
    current = ", ".join(f"t.{c}" for c in values)
    incoming = ", ".join(f"excluded.{c}" for c in values)
    return f"""
WITH deleted AS (
    DELETE FROM {spec.name} AS t
    WHERE NOT EXISTS (SELECT FROM hrcore_restore AS r WHERE r.{spec.key} = t.{spec.key})
    RETURNING 1
), written AS (
    INSERT INTO {spec.name} AS t ({cols}) SELECT {cols} FROM hrcore_restore
    ON CONFLICT ({spec.key}) DO UPDATE SET {assignments}
    WHERE ({current}, NULL) IS DISTINCT FROM ({incoming}, NULL)
    RETURNING (xmax = 0) AS inserted
)
INSERT INTO load_batches
    (load_id, batch, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected)
SELECT {load_id:d}, 0, (SELECT count(*) FROM hrcore_restore),
    (SELECT count(*) FROM written WHERE inserted),
    (SELECT count(*) FROM written WHERE NOT inserted),
    (SELECT count(*) FROM hrcore_restore) - (SELECT count(*) FROM written), 0
RETURNING (SELECT count(*) FROM deleted)"""


def restore(
    table: str,
    *,
    from_: str | os.PathLike[str],
    database_url: str | None = None,
    lock_timeout: float | None = None,
) -> Backup:
    """Make ``table`` hold exactly the rows of a backup, in one transaction.

    The restore has the table alone: it waits (at most ``lock_timeout`` seconds,
    then :class:`BusyError`) for the loads of it to end, and loads wait for it.
    Fails with :class:`RestoreError`, changing nothing, when the file is not a
    complete backup of that table, when a row breaks a rule of a load, or when
    other tables' rows need rows the backup lacks.
    """
    spec = get_table(table)
    uri = _storage.check_location(from_)
    limits = Limits.from_env(lock_timeout)
    url = _db.database_url(database_url)
    import fastavro  # here, not at start: a load needs none of it

    with _storage.open_read(uri) as file:
        try:
            reader = fastavro.reader(file)
        except (ValueError, fastavro.read.SchemaResolutionError) as exc:
            raise RestoreError(f"{uri} is not an AVRO backup of table {spec.name}: {exc}") from exc
        except Exception as exc:
            raise _storage.storage_error(exc, f"cannot read {uri}") from exc
        promised = _check_header(spec, reader, uri)
        load_id: int | None = None
        try:
            # a connection of its own, closed at the end: an error rolls everything
            # back and lets the table's lock go with it
            with connect(url) as conn:
                ensure_schema(conn, url)
                _locks.hold_for_restore(conn, spec.name, limits.lock_timeout)
                load_id = _ledger.start(conn, spec.name, uri, None, 0, kind="restore")
                _replace(conn, spec, reader, uri, promised, load_id)
                _ledger.finish(conn, load_id, staged=False)
        except BaseException as exc:
            if load_id is not None:  # the ledger says it failed, on a fresh connection
                with suppress(HrcoreError):
                    _ledger.stop(url, load_id, "failed", _db.first_line(exc), staged=False)
            raise
    return Backup(table=spec.name, uri=uri, rows=promised)


def _replace(
    conn: Connection, spec: TableSpec, reader: Any, uri: str, promised: int, load_id: int
) -> None:
    """The restore's transaction: the table locked against writers, the file checked
    and copied, then the table made equal to it."""
    execute(conn, "BEGIN")
    # no other writer between the delete and the upsert; readers go on
    execute(conn, f"LOCK TABLE {spec.name} IN EXCLUSIVE MODE")
    checked = _Checked(spec, iter(reader), reference_ids(conn, spec))
    _copy_into_temporary(conn, spec, checked, uri)
    if checked.rows != promised:
        raise RestoreError(
            f"{uri} holds {checked.rows} rows but says {promised}: it is not complete "
            "(nothing was changed)"
        )
    try:
        execute(conn, _replace_sql(spec, load_id))
        execute(conn, "COMMIT")
    except DatabaseError as exc:
        raise RestoreError(_explain(spec, uri, exc)) from exc


def _copy_into_temporary(conn: Connection, spec: TableSpec, checked: _Checked, uri: str) -> None:
    """Stream the checked rows into ``hrcore_restore``, a temporary table of the transaction."""
    execute(conn, f"CREATE TEMP TABLE hrcore_restore (LIKE {spec.name}) ON COMMIT DROP")
    stream = pa.RecordBatchReader.from_batches(_arrow_schema(spec), iter(checked))
    try:
        with conn.cursor() as cur:
            cur.adbc_ingest("hrcore_restore", stream, mode="append", temporary=True)
    except adbc_driver_manager.Error as exc:
        if isinstance(checked.error, RestoreError):
            raise RestoreError(
                f"{uri} holds {checked.error} (nothing was changed)"
            ) from checked.error
        if checked.error is not None:
            raise RestoreError(
                f"{uri} is not a readable AVRO backup of table {spec.name} "
                f"(nothing was changed): {_first_line(checked.error)}"
            ) from checked.error
        raise RestoreError(_explain(spec, uri, exc)) from exc


def _first_line(exc: BaseException) -> str:
    """The error's first line, before any driver detail or traceback."""
    return first_line(exc).split(" Detail:")[0]


def _explain(spec: TableSpec, uri: str, exc: Exception) -> str:
    state = getattr(exc, "sqlstate", None)
    detail = _db.message_of(exc)
    if state == "23503":
        return (
            f"restoring {spec.name} from {uri} would break references from other rows "
            f"(nothing was changed): {detail}"
        )
    if state == "21000":
        return f"{uri} holds the same {spec.name} id twice (nothing was changed)"
    return f"restoring {spec.name} from {uri} failed (nothing was changed): {detail}"


def list_backups(table: str, *, location: str | os.PathLike[str] | None = None) -> list[StoredFile]:
    """The backup files of ``table`` at ``location`` (default destination), oldest first.

    A folder or prefix that does not exist yet holds none; an S3 outage is a
    :class:`SourceUnavailableError`, never an empty list.
    """
    spec = get_table(table)
    where = _storage.check_location(location if location is not None else default_destination())
    try:
        found = _storage.list_files(where)
    except SourceNotFoundError:  # no backup made there yet
        if _storage.is_s3(where):
            _storage.check_bucket(where)
        return []
    name = re.compile(rf"(^|/){re.escape(spec.name)}-\d{{8}}T\d+Z\.avro$")
    return sorted((f for f in found if name.search(f.uri)), key=lambda f: f.uri)
