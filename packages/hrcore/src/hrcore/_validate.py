"""Vectorised validation of raw CSV lines against a table spec, in Polars.

Lines are read as plain text, split into fields here, and every rule is a Polars
expression, so nothing is silently coerced and each rejected row keeps its reasons.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from typing import Literal

import polars as pl

from hrcore._specs import MAX_ID, Column, TableSpec

#: Reasons a row can be rejected for, in the order they are reported.
REASONS = (
    "encoding",
    "nul_byte",
    "line_too_long",
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
_UTC_SECOND = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9]Z$"  # the common shape
_ISO_DATETIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9]"  # date and time (no second 60)
    r"(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2})$"  # fraction, zone
)
# up to this many rows (a request's), the in-memory engine: the streaming one's fixed
# cost is about 2 ms more on 1000 rows here (medians of 30 calls, alternating)
SMALL = 10_000
_FLAGS = {"bad_utf8", "too_long"}  # a row's byte-level flags (see hrcore._lines)
NUL_SHOWN = "\u2400"  # a NUL byte as the ledger shows it (PostgreSQL text cannot hold one)


def _split_quoted(text: str) -> list[str] | None:
    """Split one line that holds quotes with the csv module; None when its quoting is broken."""
    try:
        return next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration):
        return None


def _field_names(n: int) -> list[str]:
    return [f"f{i}" for i in range(n)]


_QUOTED_FIELD = r'("(?:[^"]|"")*"|[^,"]*)'  # RFC 4180: quoted (quotes doubled), or plain


def split_fields(lines: pl.DataFrame, n: int) -> pl.DataFrame:
    """Add ``n_fields`` and fields ``f0``..``f{n-1}`` (null past the end of a short line).

    Most lines split on commas in Polars. Lines that hold quotes and have exactly
    ``n`` well-formed fields are split by one regular expression, also in Polars;
    only the rest (another number of fields, broken quoting) go through the csv
    module. ``n_fields`` is null when a line's quoting is broken.
    """
    names = _field_names(n)
    quoted = pl.col("text").str.contains('"', literal=True)
    plain = lines.filter(~quoted).with_columns(
        n_fields=pl.col("text").str.count_matches(",", literal=True).cast(pl.Int32) + 1,
        parts=pl.col("text").str.split_exact(",", n - 1),
    )
    plain = plain.unnest("parts").rename(
        dict(zip(plain["parts"].struct.fields, names, strict=True))
    )
    with_quotes = lines.filter(quoted)
    if with_quotes.height == 0:
        return plain
    fields = pl.col("text").str.extract_groups("^" + ",".join([_QUOTED_FIELD] * n) + "$")
    matched = with_quotes.with_columns(fields=fields).unnest("fields")
    matched = matched.rename(dict(zip(matched.columns[-n:], names, strict=True)))
    regular = (
        matched.filter(pl.col(names[0]).is_not_null())
        .with_columns(
            pl.when(pl.col(name).str.starts_with('"'))
            .then(
                pl.col(name)
                .str.slice(1, pl.col(name).str.len_chars() - 2)
                .str.replace_all('""', '"')
            )
            .otherwise(pl.col(name))
            .alias(name)
            for name in names
        )
        .with_columns(n_fields=pl.lit(n, dtype=pl.Int32))
    )
    odd = with_quotes.filter(matched[names[0]].is_null())
    split = [_split_quoted(t) for t in odd["text"]]
    padded = [(s or []) + [None] * (n - len(s or [])) for s in split]
    parsed = odd.with_columns(
        pl.Series("n_fields", [None if s is None else len(s) for s in split], dtype=pl.Int32),
        *(pl.Series(name, [p[i] for p in padded], dtype=pl.String) for i, name in enumerate(names)),
    )
    return pl.concat([plain, regular, parsed], how="diagonal_relaxed").sort("line")


def _utc_second(value: pl.Expr) -> pl.Expr:
    """The common ``2021-07-27T16:02:08Z`` shape as a UTC datetime; null otherwise.
    Second 60 is refused: PostgreSQL would move a leap second into the next minute."""
    return (
        pl.when(value.str.contains(_UTC_SECOND))
        .then(value.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%SZ", strict=False))
        .dt.replace_time_zone("UTC")
    )


def _parse_datetimes(values: pl.Series) -> pl.Series:
    """ISO 8601 with a zone to UTC; null when not such a datetime or not a real one.

    The common ``2021-07-27T16:02:08Z`` shape takes a fast fixed format; only the
    other values (offsets, fractions, mistakes) go through the general parse.
    """
    fast = pl.select(_utc_second(pl.lit(values))).to_series()
    rest = (fast.is_null() & values.is_not_null() & (values != "")).arg_true()
    if rest.len() > 0:
        others = values.gather(rest)
        general = pl.select(
            pl.when(others.str.contains(_ISO_DATETIME))
            .then(others.str.replace("Z$", "+00:00"))
            .str.to_datetime(
                "%Y-%m-%dT%H:%M:%S%.f%z", time_zone="UTC", time_unit="us", strict=False
            )
        ).to_series()
        fast = fast.scatter(rest, general)
    # years 1 to 9999 in UTC: no year 0 in SQL, and ISO 8601 has four digits
    return pl.select(pl.when(fast.dt.year().is_between(1, 9999)).then(fast)).to_series()


def _typed(column: Column, value: pl.Expr) -> pl.Expr:
    """The field's value as its column type; null when it does not convert."""
    if column.kind == "text":
        return value
    if column.kind == "datetime":
        return value.map_batches(_parse_datetimes, return_dtype=pl.Datetime("us", "UTC"))
    number = value.str.to_integer(strict=False)
    return pl.when(number.is_between(1, MAX_ID)).then(number).cast(pl.Int32)


def _rules(
    column: Column, value: pl.Expr, typed: pl.Expr, refs: Mapping[str, pl.Series]
) -> dict[str, pl.Expr]:
    """Per reason, when the field (stripped ``value``, converted ``typed``) fails it."""
    missing = value.is_null() | (value == "")
    if column.kind == "text":
        return {"missing_field": missing}
    if column.kind == "datetime":
        return {"missing_field": missing, "bad_datetime": ~missing & typed.is_null()}
    is_integer = value.str.contains(_INTEGER)
    rules = {
        "missing_field": missing,
        "bad_integer": ~missing & ~is_integer,
        "id_out_of_range": is_integer & typed.is_null(),
    }
    if column.references is not None:
        known = refs[column.references]
        rules[column.unknown_reason] = typed.is_not_null() & ~typed.is_in(known.implode())
    return rules


def _common(
    column: Column, field: pl.Expr, refs: Mapping[str, pl.Series]
) -> tuple[pl.Expr, pl.Expr]:
    """The field's value when it is in its common form and passes every rule, and
    whether it does: the same value the full rules give such a field, for less work
    (no second copy of the fields, no reasons)."""
    if column.kind == "text":
        value = field.str.strip_chars()
        return value, value != ""
    if column.kind == "datetime":
        value = _utc_second(field)
        return value, value.dt.year().is_between(1, 9999)
    number = field.str.to_integer(strict=False)  # what the rules take, stripped or not
    passes = number.is_between(1, MAX_ID)
    if column.references is not None:
        passes = passes & number.is_in(refs[column.references].implode())
    return number.cast(pl.Int32, strict=False), passes


def validate(lines: pl.DataFrame, spec: TableSpec, refs: Mapping[str, pl.Series]) -> pl.DataFrame:
    """Check rows against the spec's rules.

    ``lines`` has ``line`` (1-based line number) and ``text``, may have the byte-level
    flags ``bad_utf8`` and ``too_long`` (see :mod:`hrcore._lines`), and may carry
    other columns through; ``refs`` maps each referenced table to the ids it holds.
    Rows that arrive split already (the API's JSON objects) also have the fields
    ``f0``..``f{n-1}`` and ``n_fields``, and are not split again. The result has
    ``line``, ``raw``, one typed column per spec column (null for a rejected row),
    ``reasons`` (comma-joined in :data:`REASONS` order, null when valid) and the
    carried columns, in the order of ``lines``.

    Most rows of a real file are valid and in the common form (plain integers, a
    ``...Z`` datetime): they are found and typed first, plain lines (no quotes) as
    they are split, and only the others go through every rule to learn their reasons.
    """
    n = len(spec.columns)
    for flag in _FLAGS - set(lines.columns):
        lines = lines.with_columns(pl.lit(False).alias(flag))
    carried = [
        c for c in lines.columns if c not in ("line", "text", "n_fields", *_FLAGS, *_field_names(n))
    ]
    given = "n_fields" in lines.columns  # fields, not lines: their NULs are looked for too
    nul = _has_nul(n if given else 0)
    common = _CommonForm(spec, refs, [*carried, "order"], nul, lines.height <= SMALL)
    lines = lines.with_row_index("order")
    if given:
        valid, others = common.rows(lines.lazy(), pl.col("n_fields") == n, lines.columns)
        found = [valid]
    else:
        plain = lines.lazy().with_columns(
            parts=pl.col("text").str.split_exact(",", n).struct.rename_fields(_field_names(n + 1))
        )
        valid, others = common.rows(
            plain.unnest("parts"),
            ~pl.col("text").str.contains('"', literal=True) & pl.col(f"f{n}").is_null(),
            lines.columns,
        )
        found = [valid]
        if others.height > 0:  # quoted fields, or not the common form
            fields = split_fields(others, n)
            quoted, others = common.rows(fields.lazy(), pl.col("n_fields") == n, fields.columns)
            found.append(quoted)
    if others.height > 0:
        found.append(
            _with_reasons(others, spec, refs, common.carried, nul).collect(engine=common.engine)
        )
    if len(found) == 1:
        return found[0].drop("order")
    return pl.concat(found).sort("order").drop("order")


class _CommonForm:
    """Finds the valid rows in the common form among split rows."""

    def __init__(
        self,
        spec: TableSpec,
        refs: Mapping[str, pl.Series],
        carried: list[str],
        nul: pl.Expr,
        small: bool,
    ) -> None:
        self.spec, self.carried, self.nul = spec, carried, nul
        self.engine: Literal["in-memory", "auto"] = "in-memory" if small else "auto"
        self.values = {
            c.name: _common(c, pl.col(f"f{i}"), refs) for i, c in enumerate(spec.columns)
        }

    def rows(
        self, fields: pl.LazyFrame, shaped: pl.Expr, columns: list[str]
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The valid rows among ``fields`` (``shaped``: split into the right fields),
        typed as :func:`validate` returns them, and the others with ``columns``."""
        clean = pl.all_horizontal(
            shaped,
            ~pl.col("bad_utf8"),
            ~pl.col("too_long"),
            ~self.nul,
            *(passes for _, passes in self.values.values()),
        ).fill_null(False)
        typed = fields.with_columns(
            clean.alias("clean"), *(v.alias(name) for name, (v, _) in self.values.items())
        ).collect(engine=self.engine)
        valid = typed.filter("clean").select(
            pl.col("line").cast(pl.Int64),
            pl.col("text").alias("raw"),
            *self.spec.column_names,
            pl.lit(None, pl.String).alias("reasons"),
            *self.carried,
        )
        return valid, typed.filter(~pl.col("clean")).select(columns)


def _has_nul(n: int) -> pl.Expr:
    """A NUL in the line, or in one of its first ``n`` fields (given fields: a line's
    fields are pieces of its text, so 0 for lines)."""
    return pl.any_horizontal(
        pl.col("text").str.contains("\x00", literal=True),
        *(pl.col(f"f{i}").str.contains("\x00", literal=True).fill_null(False) for i in range(n)),
    )


def _with_reasons(
    fields: pl.DataFrame,
    spec: TableSpec,
    refs: Mapping[str, pl.Series],
    carried: list[str],
    nul: pl.Expr,
) -> pl.LazyFrame:
    """Every rule on split rows: their typed values and reasons."""
    n = len(spec.columns)
    stripped = [f"v{i}" for i in range(n)]
    framed = (
        fields.lazy()
        .with_columns(pl.col(f"f{i}").str.strip_chars().alias(v) for i, v in enumerate(stripped))
        .with_columns(
            _typed(c, pl.col(v)).alias(c.name) for c, v in zip(spec.columns, stripped, strict=True)
        )
    )
    n_fields = pl.col("n_fields")
    shape_bad = {
        "encoding": pl.col("bad_utf8"),
        "nul_byte": nul,
        "line_too_long": pl.col("too_long"),
        "bad_quoting": n_fields.is_null() & ~pl.col("too_long"),
        "field_count": (n_fields != len(spec.columns)) & ~pl.col("too_long"),
    }
    shape_ok = ~pl.any_horizontal(*(c.fill_null(True) for c in shape_bad.values()))
    field_bad: dict[str, list[pl.Expr]] = {}
    for column, v in zip(spec.columns, stripped, strict=True):
        for reason, condition in _rules(column, pl.col(v), pl.col(column.name), refs).items():
            field_bad.setdefault(reason, []).append(condition)
    conditions = {**shape_bad, **{r: shape_ok & pl.any_horizontal(c) for r, c in field_bad.items()}}
    reasons = pl.concat_str(
        [pl.when(conditions[r]).then(pl.lit(r)) for r in REASONS if r in conditions],
        separator=",",
        ignore_nulls=True,
    )
    return framed.with_columns(pl.when(reasons != "").then(reasons).alias("reasons")).select(
        pl.col("line").cast(pl.Int64),
        pl.col("text").str.replace_all("\x00", NUL_SHOWN, literal=True).alias("raw"),
        *(pl.when(pl.col("reasons").is_null()).then(c).alias(c) for c in spec.column_names),
        "reasons",
        *carried,
    )
