"""Staging: validated rows, good and bad, copied into one table, batch-numbered.

A file's rows are copied chunk by chunk (one ``COPY`` each, committed), so that
writers can commit a chunk's batches while later chunks are still being read. A
batch never spans two chunks. The rows whose id comes back later in the file
(found by a first pass over the ids, see ``_duplicates``) get no batch yet: once
the whole file is staged, all but the last valid row of each such id are marked
``duplicate_id`` in SQL and the rows are numbered into the last batches.

A file's chunk comes out as a :class:`Chunk`: its rejected and set-aside rows are
staged at once by the loading thread; its batches' valid rows are left to the
writers, who copy them straight into a table that was empty when the load began,
or stage them (one ``COPY`` per chunk) and upsert them.

A request's rows (1 to 1000) go into the session's own temporary table, kept for
the next request, in one ``COPY``; their duplicates are marked in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from hrcore._db import Connection, execute, run_script, scalar, small_query
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


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch whose valid rows are not staged: ``rows`` (staging columns) go straight
    into the table; its ``rejected`` rows are staged under its number."""

    number: int
    rows: pa.Table
    rejected: int

    @property
    def read(self) -> int:
        return self.rows.num_rows + self.rejected


@dataclass(frozen=True, slots=True)
class Chunk:
    """A block's rows: ``staged`` (rejected or set aside) go to the staging table at
    once, before its batches are written; ``valid`` (staging columns) are the valid
    rows of its ``batches``, in order, each batch's a slice of them."""

    staged: pa.Table
    valid: pa.Table
    batches: list[Batch]
    numbers: range  # of its batches (none when all its rows are set aside)


class StopRequested(Exception):
    """The load was asked to stop (cancelled) while it was being read."""


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


def create(conn: Connection, spec: TableSpec, stage: str) -> None:
    """Make the staging table: unlogged, seen by every writer, indexed by batch; or
    this session's own, emptied for reuse."""
    columns = (
        "(line bigint, batch integer, raw text, reasons text, "
        + ", ".join(f"{c.name} {c.sql_type}" for c in spec.columns)
        + ")"
    )
    if stage.startswith("pg_temp."):  # one round trip: a request's path
        name = stage.split(".")[1]
        run_script(conn, f"CREATE TEMP TABLE IF NOT EXISTS {name} {columns}; TRUNCATE {stage}")
        return
    execute(conn, f"CREATE UNLOGGED TABLE {stage} {columns}")
    execute(conn, f"CREATE INDEX ON {stage} (batch)")  # kept up while chunks arrive


class Stager:
    """Validates chunks of rows and numbers them into batches of at most ``batch_size``.

    Rows whose id is in ``set_aside`` and that pass the rules get no batch (null):
    they wait for the end. ``should_stop`` is asked after each chunk: a load being
    cancelled stops reading.
    """

    def __init__(
        self,
        spec: TableSpec,
        rows: Iterable[pl.DataFrame],
        refs: dict[str, pl.Series],
        batch_size: int,
        progress: ProgressCallback | None,
        should_stop: Callable[[], bool] = lambda: False,
        set_aside: pl.Series | None = None,
    ) -> None:
        self.spec, self.source, self.refs = spec, rows, refs
        self.batch_size, self.progress, self.should_stop = batch_size, progress, should_stop
        self.set_aside = set_aside if set_aside is not None else pl.Series("id", [], pl.Int64)
        self.schema = _stage_schema(spec)
        self.rows = 0
        self.batches = 0  # numbered so far

    def _numbered(self, chunk: pl.DataFrame) -> pl.DataFrame:
        checked = validate(chunk, self.spec, self.refs)
        waits = pl.col("reasons").is_null() & pl.col(self.spec.key).is_in(self.set_aside.implode())
        order = (~waits).cast(pl.Int64).cum_sum() - 1  # place among this chunk's batched rows
        numbered = checked.with_columns(
            batch=pl.when(~waits).then(self.batches + order // self.batch_size).cast(pl.Int32)
        )
        batched = int(numbered["batch"].is_not_null().sum())
        self.batches += -(-batched // self.batch_size)
        self.rows += chunk.height
        return numbered

    def chunks(self) -> Iterator[tuple[pa.Table, range]]:
        """Each chunk as an Arrow table, with the batch numbers it completes."""
        for numbered, batches in self._each():
            yield self._arrow(numbered), batches

    def split_chunks(self, *, valid_raw: bool = True) -> Iterator[Chunk]:
        """Each chunk as the rows to stage at once (rejected or set aside) and the
        batches it completes, their valid rows apart (see :class:`Chunk`).

        Without ``valid_raw``, the valid rows of the batches leave their line out
        (``raw`` null: less to stage). Only a file's load may: its batched rows'
        ids come once in the file (the others are set aside), so none of them can
        become a duplicate and be rejected with its line.
        """
        batch, reasons = pl.col("batch"), pl.col("reasons")
        for numbered, batches in self._each():
            straight = batch.is_not_null() & reasons.is_null()
            rejected = dict(
                numbered.filter(batch.is_not_null() & reasons.is_not_null())
                .group_by("batch")
                .len()
                .iter_rows()
            )
            # each batch's rows by id: concurrent loads of the same ids take their row
            # locks in the same order, so they wait for each other but never deadlock
            valid = numbered.filter(straight).sort("batch", self.spec.key)
            if not valid_raw:
                valid = valid.with_columns(raw=pl.lit(None, pl.String))
            sizes = dict(valid.group_by("batch").len().iter_rows())
            rows, start, parts = self._arrow(valid), 0, []
            for n in batches:
                size = sizes.get(n, 0)
                parts.append(Batch(n, rows.slice(start, size), rejected.get(n, 0)))
                start += size
            yield Chunk(self._arrow(numbered.filter(~straight)), rows, parts, batches)

    def _arrow(self, frame: pl.DataFrame) -> pa.Table:
        return frame.select(self.schema.names).to_arrow().cast(self.schema)

    def _each(self) -> Iterator[tuple[pl.DataFrame, range]]:
        for chunk in self.source:
            if chunk.height == 0:
                continue
            first = self.batches
            numbered = self._numbered(chunk)
            yield numbered, range(first, self.batches)
            if self.progress:
                self.progress(Progress(self.spec.name, "read", self.rows, None))
            if self.should_stop():
                raise StopRequested


def copy_in(conn: Connection, stage: str, table: pa.Table) -> None:
    """One chunk into the staging table: one ``COPY``, committed."""
    schema, name = stage.split(".")
    temporary = schema == "pg_temp"
    with conn.cursor() as cur:
        cur.adbc_ingest(
            name,
            table,
            mode="append",
            db_schema_name=None if temporary else schema,
            temporary=temporary,
        )


def settle_set_aside(conn: Connection, stage: str, first_batch: int, batch_size: int) -> range:
    """Once every row is staged: of the set-aside rows, all but the last valid one of
    each id become ``duplicate_id``; then they are numbered into batches from
    ``first_batch``. Returns those batches."""
    execute(
        conn,
        f"""UPDATE {stage} AS s SET reasons = 'duplicate_id'
        FROM (
            SELECT id, max(line) AS last_line FROM {stage}
            WHERE batch IS NULL AND reasons IS NULL GROUP BY id
        ) AS d
        WHERE s.batch IS NULL AND s.reasons IS NULL AND s.id = d.id AND s.line < d.last_line""",
    )
    count = scalar(
        conn,
        f"""WITH numbered AS (
            UPDATE {stage} AS s SET batch = {first_batch:d} + (n.place - 1) / {batch_size:d}
            FROM (SELECT line, row_number() OVER (ORDER BY line) AS place
                  FROM {stage} WHERE batch IS NULL) AS n
            WHERE s.batch IS NULL AND s.line = n.line
            RETURNING 1
        ) SELECT count(*) FROM numbered""",
    )
    return range(first_batch, first_batch + -(-int(count) // batch_size))


def mark_duplicates(conn: Connection, stage: str) -> None:
    """Of the valid staged rows with the same id, all but the last become duplicates
    (a request's rows: a few hundred at most)."""
    execute(
        conn,
        f"""UPDATE {stage} AS s SET reasons = 'duplicate_id'
        FROM (
            SELECT id, max(line) AS last_line FROM {stage}
            WHERE reasons IS NULL GROUP BY id HAVING count(*) > 1
        ) AS d
        WHERE s.id = d.id AND s.reasons IS NULL AND s.line < d.last_line""",
    )


def reference_ids(conn: Connection, spec: TableSpec) -> dict[str, pl.Series]:
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
