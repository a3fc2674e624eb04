"""Loading 1 to 1000 rows given directly (JSON objects or CSV text), as one transaction.

The rows go through the same validation, staging and batch statement as files, so
the rules and the ledger are the same: CSV text as lines, JSON objects as fields
already split. The load is recorded with source ``api`` and the rejected rows are
answered with their reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any, Literal, cast

import msgspec
import polars as pl

from hrcore import _db
from hrcore._errors import UsageError
from hrcore._ledger import rejected_rows
from hrcore._lines import rows_of_text
from hrcore._pipeline import MAX_BATCH_SIZE, run
from hrcore._pool import ConnectionPool
from hrcore._schema import ready
from hrcore._specs import TableSpec, get_table

Outcome = Literal["inserted", "updated", "unchanged", "rejected"]


class RejectedRow(msgspec.Struct, kw_only=True):
    """A row that was not written: its position in the request, its reasons, the row."""

    index: int
    reasons: list[str]
    row: Any


class RowOutcome(msgspec.Struct, kw_only=True):
    """What became of one row of a request: ``inserted``, ``updated``, ``unchanged``
    or ``rejected`` (its reasons are in :attr:`RowsReport.rejected`)."""

    index: int
    outcome: Outcome


class RowsReport(msgspec.Struct, kw_only=True):
    """What happened to the rows of one request; ``rows`` says it row by row, in order
    (a CSV row's index is that of the line it starts on)."""

    load_id: int
    received: int
    inserted: int
    updated: int
    unchanged: int
    rejected: list[RejectedRow]
    rows: list[RowOutcome] = msgspec.field(default_factory=list)


def _text(value: Any) -> str | None:
    """A value as a CSV file would hold it; a datetime in ISO 8601 (with its zone, if any);
    a float with no fraction (JSON's ``7.0``, as pandas sends ids) as the integer it is."""
    kind = type(value)  # the usual kinds first: most of a request's values
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _lines(spec: TableSpec, rows: Sequence[Mapping[str, Any]] | str | bytes) -> pl.DataFrame:
    """The rows in the shape validation takes.

    CSV text becomes numbered lines, as a file's do. JSON objects are already split
    into fields: each value becomes the text a CSV file would hold for it, in
    ``f0``.. ``f{n-1}`` with ``n_fields``, and the object itself, as JSON, is the
    line's text (what the ledger keeps of a rejected row).
    """
    if isinstance(rows, str | bytes):
        return rows_of_text(rows if isinstance(rows, bytes) else rows.encode())
    names = spec.column_names
    fields = {f"f{i}": [_text(row.get(name)) for row in rows] for i, name in enumerate(names)}
    return pl.DataFrame(
        {
            "line": range(1, len(rows) + 1),
            "text": [msgspec.json.encode(dict(row), enc_hook=str).decode() for row in rows],
            **fields,
            "n_fields": [len(names)] * len(rows),
        },
        schema={
            "line": pl.Int64,
            "text": pl.String,
            **dict.fromkeys(fields, pl.String),
            "n_fields": pl.Int32,
        },
    )


def load_rows(
    table: str,
    rows: Sequence[Mapping[str, Any]] | str | bytes,
    *,
    database_url: str | None = None,
    source: str = "api",
    pool: ConnectionPool | None = None,
) -> RowsReport:
    """Validate and upsert 1 to 1000 rows of ``table`` in one transaction.

    ``rows`` are objects keyed by column name, or CSV text (or its bytes, UTF-8)
    without a header: a rejected CSV row's index is that of the line it starts on. Valid
    rows land; invalid ones are logged in ``rejected_rows`` under this load and
    returned with their 0-based index. Fewer than 1 or more than 1000 rows is a
    :class:`UsageError`, and nothing is written.
    """
    spec = get_table(table)
    lines = _lines(spec, rows)
    if not 1 <= lines.height <= MAX_BATCH_SIZE:
        raise UsageError(f"send 1 to {MAX_BATCH_SIZE} rows, not {lines.height}")
    written: dict[int, str] = {}
    report = run(
        spec,
        lambda: nullcontext([lines]),
        source=source,
        identity=None,
        batch_size=lines.height,
        url=pool.url if pool is not None else _db.database_url(database_url),
        session=True,
        pool=pool,
        outcomes=written,
    )
    found = []
    if report.rows_rejected:
        with ready(database_url, pool) as conn:
            found = rejected_rows(conn, report.load_id, limit=MAX_BATCH_SIZE)
    originals = rows if not isinstance(rows, str | bytes) else None
    rejected = [
        RejectedRow(
            index=r.line_number - 1,
            reasons=r.reasons,
            row=dict(originals[r.line_number - 1]) if originals is not None else r.raw,
        )
        for r in found
    ]
    outcomes = {line: "rejected" for line in (r.line_number for r in found)} | written
    return RowsReport(
        load_id=report.load_id,
        received=lines.height,
        inserted=report.rows_inserted,
        updated=report.rows_updated,
        unchanged=report.rows_unchanged,
        rejected=rejected,
        rows=[
            RowOutcome(index=line - 1, outcome=cast(Outcome, outcomes[line]))
            for line in sorted(outcomes)
        ],
    )
