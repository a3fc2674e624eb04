"""Vectorised validation of raw CSV lines against a table spec, in Polars.

Lines are read as plain text, split into fields here, and every rule is a Polars
expression, so nothing is silently coerced and each rejected row keeps its reasons.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping

import polars as pl

from hrcore._specs import MAX_ID, Column, TableSpec

#: Reasons a row can be rejected for, in the order they are reported.
REASONS = (
    "encoding",
    "bad_quoting",
    "field_count",
    "missing_field",
    "bad_integer",
    "id_out_of_range",
    "bad_datetime",
    "unknown_department",
    "unknown_job",
    "duplicate_id",
)

_INTEGER = r"^[+-]?[0-9]+$"
_ISO_DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2})$"
_REPLACEMENT_CHAR = "\ufffd"  # what the lossy UTF-8 reader puts in place of bad bytes


def _split_quoted(text: str) -> list[str] | None:
    """Split one line that holds quotes with the csv module; None when its quoting is broken."""
    try:
        return next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration):
        return None


def _split_fields(lines: pl.DataFrame) -> pl.DataFrame:
    """Add ``fields`` (list of str): a plain split for most lines, csv rules when quoted."""
    quoted = pl.col("text").str.contains('"', literal=True)
    plain = lines.filter(~quoted).with_columns(fields=pl.col("text").str.split(","))
    with_quotes = lines.filter(quoted)
    if with_quotes.height == 0:
        return plain
    parsed = with_quotes.with_columns(
        fields=pl.Series([_split_quoted(t) for t in with_quotes["text"]], dtype=pl.List(pl.String))
    )
    return pl.concat([plain, parsed]).sort("line")


def _reason(condition: pl.Expr, reason: str) -> pl.Expr:
    return pl.when(condition).then(pl.lit(reason))


def _column_rules(
    column: Column, value: pl.Expr, refs: Mapping[str, pl.Series]
) -> tuple[pl.Expr, list[pl.Expr]]:
    """The typed value of one field and the reasons it may fail, as expressions."""
    missing = value.is_null() | (value == "")
    reasons = [_reason(missing, "missing_field")]
    if column.kind == "text":
        return value, reasons
    if column.kind == "datetime":
        well_formed = value.str.contains(_ISO_DATETIME)
        parsed = (
            pl.when(well_formed)
            .then(value.str.replace("Z$", "+00:00"))
            .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", time_zone="UTC", time_unit="us", strict=False)
        )
        bad = ~missing & (parsed.is_null() | (parsed.dt.year() < 1))
        return parsed, [*reasons, _reason(bad, "bad_datetime")]
    # an id: an integer from 1 to MAX_ID
    is_integer = value.str.contains(_INTEGER)
    number = value.str.to_integer(strict=False)
    in_range = number.is_between(1, MAX_ID)
    typed = pl.when(is_integer & in_range).then(number).cast(pl.Int32)
    reasons += [
        _reason(~missing & ~is_integer, "bad_integer"),
        _reason(is_integer & ~in_range.fill_null(False), "id_out_of_range"),
    ]
    if column.references is not None:
        known = refs[column.references]
        reasons.append(_reason(typed.is_not_null() & ~typed.is_in(known), column.unknown_reason))
    return typed, reasons


def validate(lines: pl.DataFrame, spec: TableSpec, refs: Mapping[str, pl.Series]) -> pl.DataFrame:
    """Check raw lines against the spec's rules.

    ``lines`` has ``line`` (1-based line number) and ``text``; ``refs`` maps each
    referenced table to the ids it holds. The result has ``line``, ``raw``, one
    typed column per spec column and ``reasons`` (comma-joined, null when valid).
    """
    framed = _split_fields(lines)
    fields = pl.col("fields")
    encoding_bad = pl.col("text").str.contains(_REPLACEMENT_CHAR, literal=True)
    quoting_bad = fields.is_null()
    count_bad = ~quoting_bad & (fields.list.len() != len(spec.columns))
    shape_bad = encoding_bad | quoting_bad | count_bad

    typed: list[pl.Expr] = []
    field_reasons: list[pl.Expr] = []
    for i, column in enumerate(spec.columns):
        value = fields.list.get(i, null_on_oob=True).str.strip_chars()
        expr, reasons = _column_rules(column, value, refs)
        typed.append(expr.alias(column.name))
        field_reasons += reasons

    shape_reasons = [
        _reason(encoding_bad, "encoding"),
        _reason(quoting_bad, "bad_quoting"),
        _reason(count_bad, "field_count"),
    ]
    all_reasons = pl.concat_list(
        [*shape_reasons, *(pl.when(~shape_bad).then(r) for r in field_reasons)]
    ).list.drop_nulls()
    joined = pl.when(all_reasons.list.len() > 0).then(all_reasons.list.unique(maintain_order=True).list.join(","))
    return framed.select(
        pl.col("line").cast(pl.Int64),
        pl.col("text").alias("raw"),
        *typed,
        joined.alias("reasons"),
    )
