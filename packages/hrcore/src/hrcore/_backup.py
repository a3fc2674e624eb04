"""Table backups as AVRO object container files, and restores from them.

A backup streams the table out of PostgreSQL (ADBC ``COPY`` as Arrow batches)
into fastavro, so memory stays bounded. A restore replaces the table's content
in one transaction: all or nothing, foreign keys checked at commit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any, BinaryIO, cast

import adbc_driver_manager
import fastavro
import msgspec
import pyarrow as pa

from hrcore._db import Connection, connect, execute, first_line
from hrcore._errors import (
    DatabaseError,
    RestoreError,
    SourceNotFoundError,
    SourceUnavailableError,
)
from hrcore._health import StoredFile, list_files
from hrcore._schema import ready
from hrcore._sources import s3_filesystem
from hrcore._specs import TABLES, TableSpec, get_table

RESTORE_CHUNK_ROWS = 50_000
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
    return f"{to.rstrip('/')}/{spec.name}-{stamp}.avro"


def _open(uri: str, mode: str) -> BinaryIO:
    try:
        if uri.startswith("s3://"):
            file: BinaryIO = s3_filesystem().open(uri.removeprefix("s3://"), mode)
            return file
        path = uri.removeprefix("file://")
        if "w" in mode:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return cast(BinaryIO, open(path, mode))
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"no such file: {uri}") from exc
    except (OSError, ValueError) as exc:  # no permission, a bucket that is not there
        raise SourceUnavailableError(f"cannot open {uri}: {exc}") from exc


def _records(conn: Connection, spec: TableSpec) -> Iterator[dict[str, Any]]:
    """The table's rows in id order, streamed; datetimes as UTC microseconds."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(spec.column_names)} FROM {spec.name} ORDER BY {spec.key}")
        for batch in cur.fetch_record_batch():
            columns = {
                name: batch.column(name).cast(pa.int64())
                if c.kind == "datetime"
                else batch.column(name)
                for name, c in zip(spec.column_names, spec.columns, strict=True)
            }
            yield from pa.RecordBatch.from_pydict(columns).to_pylist()


def backup(
    table: str,
    *,
    to: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
) -> Backup:
    """Write ``table`` to ``<to>/<table>-<UTC time>.avro``, or to ``to`` if it ends in .avro."""
    spec = get_table(table)
    uri = _file_uri(spec, os.fspath(to) if to is not None else default_destination())
    counted = 0
    with ready(database_url) as conn:

        def counting() -> Iterator[dict[str, Any]]:
            nonlocal counted
            for counted, record in enumerate(_records(conn, spec), start=1):  # noqa: B007
                yield record

        with _open(uri, "wb") as file:
            fastavro.writer(
                file, fastavro.parse_schema(avro_schema(spec)), counting(), codec="deflate"
            )
    return Backup(table=spec.name, uri=uri, rows=counted)


def backup_all(
    *, to: str | os.PathLike[str] | None = None, database_url: str | None = None
) -> list[Backup]:
    """Back up every table, one file each."""
    return [backup(name, to=to, database_url=database_url) for name in TABLES]


def _check_schema(spec: TableSpec, writer_schema: Any, uri: str) -> None:
    expected = avro_schema(spec)
    name = str(writer_schema.get("name", "")) if isinstance(writer_schema, dict) else ""
    fields = writer_schema.get("fields") if isinstance(writer_schema, dict) else None
    found = [(f.get("name"), f.get("type")) for f in fields or []]
    wanted = [(f["name"], f["type"]) for f in expected["fields"]]
    if name.rsplit(".", 1)[-1] != spec.name or found != wanted:
        raise RestoreError(f"{uri} is not an AVRO backup of table {spec.name}")


class _Batches:
    """The backup's records as Arrow batches; keeps the reading error, if any, for the
    message (the driver would only report a failed stream, with a traceback in it)."""

    def __init__(self, spec: TableSpec, records: Iterator[Any]) -> None:
        self.spec, self.records = spec, records
        self.error: Exception | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        schema = _arrow_schema(self.spec)
        try:
            while chunk := list(islice(self.records, RESTORE_CHUNK_ROWS)):
                yield pa.RecordBatch.from_pylist(chunk, schema=schema)
        except Exception as exc:
            self.error = exc
            raise


def _replace_sql(spec: TableSpec) -> list[str]:
    cols = ", ".join(spec.column_names)
    values = spec.value_columns
    assignments = ", ".join(f"{c} = excluded.{c}" for c in values)
    current = ", ".join(f"t.{c}" for c in values)
    incoming = ", ".join(f"excluded.{c}" for c in values)
    return [
        "SET CONSTRAINTS ALL DEFERRED",
        f"""DELETE FROM {spec.name} AS t
            WHERE NOT EXISTS (SELECT FROM hrcore_restore AS r WHERE r.{spec.key} = t.{spec.key})""",
        f"""INSERT INTO {spec.name} AS t ({cols}) SELECT {cols} FROM hrcore_restore
            ON CONFLICT ({spec.key}) DO UPDATE SET {assignments}
            WHERE ({current}, NULL) IS DISTINCT FROM ({incoming}, NULL)""",
    ]


def restore(
    table: str, *, from_: str | os.PathLike[str], database_url: str | None = None
) -> Backup:
    """Make ``table`` hold exactly the rows of a backup, in one transaction.

    Fails with :class:`RestoreError`, changing nothing, when the file is not a
    backup of that table or when other tables' rows need rows the backup lacks.
    """
    spec = get_table(table)
    uri = os.fspath(from_)
    with _open(uri, "rb") as file:
        try:
            reader = fastavro.reader(file)
        except (ValueError, fastavro.read.SchemaResolutionError) as exc:
            raise RestoreError(f"{uri} is not an AVRO backup of table {spec.name}: {exc}") from exc
        _check_schema(spec, reader.writer_schema, uri)
        with ready(database_url):
            pass  # the tables exist before the restore's transaction starts
        batches = _Batches(spec, iter(reader))
        with connect(database_url, autocommit=False) as conn:
            try:
                execute(conn, f"CREATE TEMP TABLE hrcore_restore (LIKE {spec.name}) ON COMMIT DROP")
                stream = pa.RecordBatchReader.from_batches(_arrow_schema(spec), iter(batches))
                with conn.cursor() as cur:
                    rows = cur.adbc_ingest("hrcore_restore", stream, mode="append", temporary=True)
                for statement in _replace_sql(spec):
                    execute(conn, statement)
                conn.commit()
            except (adbc_driver_manager.Error, DatabaseError) as exc:
                conn.rollback()
                if batches.error is not None:
                    raise RestoreError(
                        f"{uri} is not a readable AVRO backup of table {spec.name} "
                        f"(nothing was changed): {_first_line(batches.error)}"
                    ) from batches.error
                raise RestoreError(_explain(spec, uri, exc)) from exc
    return Backup(table=spec.name, uri=uri, rows=int(rows))


def _first_line(exc: Exception) -> str:
    """The error's first line, before any driver detail or traceback."""
    return first_line(exc).split(" Detail:")[0]


def _explain(spec: TableSpec, uri: str, exc: Exception) -> str:
    state = getattr(exc, "sqlstate", None)
    detail = _first_line(exc)
    if state == "23503":
        return (
            f"restoring {spec.name} from {uri} would break references from other rows "
            f"(nothing was changed): {detail}"
        )
    if state == "21000":
        return f"{uri} holds the same {spec.name} id twice (nothing was changed)"
    return f"restoring {spec.name} from {uri} failed (nothing was changed): {detail}"


def list_backups(table: str, *, location: str | os.PathLike[str] | None = None) -> list[StoredFile]:
    """The backup files of ``table`` at ``location`` (default destination), oldest first."""
    spec = get_table(table)
    where = os.fspath(location) if location is not None else default_destination()
    try:
        found = list_files(where)
    except SourceNotFoundError:  # no backup made there yet
        return []
    name = re.compile(rf"(^|/){re.escape(spec.name)}-\d{{8}}T\d+Z\.avro$")
    return sorted((f for f in found if name.search(f.uri)), key=lambda f: f.uri)
