"""Staging: validated rows, good and bad, streamed into one table with one ``COPY``.

Each row is tagged with its batch number, so that a batch is found by one index
lookup; the staging table is unlogged and seen by every writer connection (or,
for a request's rows, the session's own temporary table). Repeated ids are found
while streaming, then all but the last of each are marked ``duplicate_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from hrcore._db import Connection, execute
from hrcore._duplicates import RepeatedIds
from hrcore._schema import STAGING_SCHEMA
from hrcore._specs import TableSpec
from hrcore._validate import validate

ARROW_TYPES = {"id": pa.int32(), "text": pa.string(), "datetime": pa.timestamp("us", tz="UTC")}


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a load is: phase ``read`` counts rows staged, ``write`` rows committed."""

    table: str
    phase: Literal["read", "write"]
    done: int
    total: int | None


ProgressCallback = Callable[[Progress], None]


def stage_table(load_id: int) -> str:
    """The staging table of a file load (one per load, dropped when it ends)."""
    return f"{STAGING_SCHEMA}.stage_{load_id:d}"


def session_stage_table(spec: TableSpec) -> str:
    """The staging table of a request's rows: the session's own, kept for the next request."""
    return f"pg_temp.hrcore_rows_{spec.name}"


def _stage_schema(spec: TableSpec) -> pa.Schema:
    fields: list[pa.Field[Any]] = [
        pa.field("line", pa.int64()),
        pa.field("batch", pa.int32()),
        pa.field("raw", pa.string()),
        pa.field("reasons", pa.string()),
    ]
    fields += [pa.field(c.name, ARROW_TYPES[c.kind]) for c in spec.columns]
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


class Stager:
    """Turns chunks of rows into validated Arrow batches tagged with batch numbers.

    ``should_stop`` is asked after each chunk: a load being cancelled stops reading.
    """

    def __init__(
        self,
        spec: TableSpec,
        rows: Iterable[pl.DataFrame],
        refs: dict[str, pl.Series],
        batch_size: int,
        progress: ProgressCallback | None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.spec, self.source, self.refs = spec, rows, refs
        self.batch_size, self.progress, self.should_stop = batch_size, progress, should_stop
        self.schema = _stage_schema(spec)
        self.rows = 0
        self.ids = RepeatedIds()
        self.error: BaseException | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for chunk in self.source:
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
                if self.should_stop():
                    raise StopRequested
        except BaseException as exc:  # kept: the driver would only see a failed stream
            self.error = exc
            raise

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())


class StopRequested(Exception):
    """The load was asked to stop (cancelled) while it was being read."""


def stage(conn: Connection, stage: str, stager: Stager) -> None:
    """Stream every row into the staging table, mark duplicates, index the batches.

    An error in the stream (reading, validating, a progress callback) ends the
    ``COPY`` and is raised as it was; the caller then closes the connection.
    """
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
    except Exception:
        if stager.error is not None:
            raise stager.error from None
        raise
    if stager.ids.repeated:
        execute(conn, _mark_duplicates_sql(stage, stager.ids.repeated))
    if stager.rows > stager.batch_size:  # several batches: each is found by its number
        execute(conn, f"CREATE INDEX ON {stage} (batch)")
        execute(conn, f"ANALYZE {stage}")
