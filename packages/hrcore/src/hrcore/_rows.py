"""Loading 1 to 1000 rows given directly (JSON objects or CSV text), as one transaction.

The rows become CSV lines and go through the same validation, staging and batch
statement as files, so the rules and the ledger are the same; the load is recorded
with source ``api`` and the rejected rows are answered with their reasons.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import polars as pl

from hrcore._errors import UsageError
from hrcore._ledger import rejected_rows
from hrcore._loader import MAX_BATCH_SIZE, run_load
from hrcore._schema import ready
from hrcore._sources import parse_lines
from hrcore._specs import TableSpec, get_table


class RejectedRow(msgspec.Struct, kw_only=True):
    """A row that was not written: its position in the request, its reasons, the row."""

    index: int
    reasons: list[str]
    row: Any


class RowsReport(msgspec.Struct, kw_only=True):
    """What happened to the rows of one request."""

    load_id: int
    received: int
    inserted: int
    updated: int
    unchanged: int
    rejected: list[RejectedRow]


def _csv_line(spec: TableSpec, row: Mapping[str, Any]) -> str:
    values = ["" if row.get(c) is None else str(row.get(c)) for c in spec.column_names]
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def _lines(spec: TableSpec, rows: Sequence[Mapping[str, Any]] | str) -> pl.DataFrame:
    """The rows as numbered CSV lines, the shape validation takes from files."""
    if isinstance(rows, str):
        return parse_lines(rows.encode(), 1)
    if not rows:
        return pl.DataFrame(schema={"line": pl.Int64, "text": pl.String})
    schema = dict.fromkeys(spec.column_names, pl.String)
    try:
        text = pl.DataFrame(list(rows), schema=schema, strict=False).write_csv(include_header=False)
    except (pl.exceptions.PolarsError, OverflowError, TypeError, ValueError):
        text = ""  # a value Polars cannot take (an integer beyond 64 bits): row by row
    if text and text.count("\n") == len(rows):  # no value holds a line break: a line a row
        return parse_lines(text.encode(), 1)
    return pl.DataFrame(
        {"line": range(1, len(rows) + 1), "text": [_csv_line(spec, r) for r in rows]},
        schema={"line": pl.Int64, "text": pl.String},
    )


def load_rows(
    table: str,
    rows: Sequence[Mapping[str, Any]] | str,
    *,
    database_url: str | None = None,
    source: str = "api",
) -> RowsReport:
    """Validate and upsert 1 to 1000 rows of ``table`` in one transaction.

    ``rows`` are objects keyed by column name, or CSV text without a header. Valid
    rows land; invalid ones are logged in ``rejected_rows`` under this load and
    returned with their 0-based index. Fewer than 1 or more than 1000 rows is a
    :class:`UsageError`, and nothing is written.
    """
    spec = get_table(table)
    lines = _lines(spec, rows)
    if not 1 <= lines.height <= MAX_BATCH_SIZE:
        raise UsageError(f"send 1 to {MAX_BATCH_SIZE} rows, not {lines.height}")
    report = run_load(
        spec,
        [lines],
        source=source,
        identity=None,
        batch_size=lines.height,
        database_url=database_url,
        in_session=True,
    )
    found = []
    if report.rows_rejected:
        with ready(database_url) as conn:
            found = rejected_rows(conn, report.load_id, limit=MAX_BATCH_SIZE)
    originals = rows if not isinstance(rows, str) else None
    rejected = [
        RejectedRow(
            index=r.line_number - 1,
            reasons=r.reasons,
            row=dict(originals[r.line_number - 1]) if originals is not None else r.raw,
        )
        for r in found
    ]
    return RowsReport(
        load_id=report.load_id,
        received=lines.height,
        inserted=report.rows_inserted,
        updated=report.rows_updated,
        unchanged=report.rows_unchanged,
        rejected=rejected,
    )
