"""Validation engine choice: hrcore's plain Polars expressions against dataframely.

Both get the same input: the lines of a dirty hired_employees file, split into text
fields (the split is shared and not timed). Both must say, per row, whether it is
valid and which rules it breaks. We time only that work, as medians of ``--repeat``
runs, and check that the two agree on which rows are valid.

    uv run python benchmarks/validation_engines.py --rows 1000000
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable

import dataframely as dy
import hrcore
import polars as pl
from hrcore._lines import RowReader
from hrcore._specs import HIRED_EMPLOYEES, MAX_ID
from hrcore._validate import _ISO_DATETIME, split_fields, validate
from measure import median_of

DEPARTMENTS = pl.Series(range(1, 13), dtype=pl.Int32)
JOBS = pl.Series(range(1, 184), dtype=pl.Int32)
INTEGER = r"^[+-]?[0-9]+$"


def _number(column: pl.Expr) -> pl.Expr:
    return column.str.to_integer(strict=False)


def _in_range(column: pl.Expr) -> pl.Expr:
    return _number(column).is_between(1, MAX_ID) | ~column.str.contains(INTEGER)


def _known(ids: pl.Series) -> Callable[[pl.Expr], pl.Expr]:
    known = ids.cast(pl.Int64).implode()
    return lambda column: _number(column).is_null() | _number(column).is_in(known)


def _real_datetime(column: pl.Expr) -> pl.Expr:
    parsed = column.str.replace("Z$", "+00:00").str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%z", time_zone="UTC", strict=False
    )
    return parsed.is_not_null()


class Employee(dy.Schema):
    """The hired_employees rules written as a dataframely schema over text fields."""

    line = dy.Int64(nullable=False)
    f0 = dy.String(nullable=False, regex=INTEGER, check={"in_range": _in_range})
    f1 = dy.String(nullable=False, regex="^[^\ufffd]+$")
    f2 = dy.String(nullable=False, regex=_ISO_DATETIME, check={"real": _real_datetime})
    f3 = dy.String(
        nullable=False, regex=INTEGER, check={"in_range": _in_range, "known": _known(DEPARTMENTS)}
    )
    f4 = dy.String(
        nullable=False, regex=INTEGER, check={"in_range": _in_range, "known": _known(JOBS)}
    )


def with_hrcore(lines: pl.DataFrame) -> int:
    """Valid rows, by hrcore's validate (which splits the lines itself)."""
    refs = {"departments": DEPARTMENTS, "jobs": JOBS}
    checked = validate(lines, HIRED_EMPLOYEES, refs)
    checked["reasons"].value_counts()  # what the loader reports per reason
    return int(checked["reasons"].is_null().sum())


def with_dataframely(lines: pl.DataFrame) -> int:
    """Valid rows, by dataframely's filter over the same split, stripped fields."""
    fields = split_fields(lines, 5).filter(pl.col("n_fields") == 5)
    stripped = fields.select(
        pl.col("line").cast(pl.Int64),
        *(pl.col(f"f{i}").str.strip_chars().replace("", None) for i in range(5)),
    )
    good, failure = Employee.filter(stripped)
    failure.counts()  # what the loader would report per reason
    failure.invalid()  # the rejected rows, to be logged
    return good.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        paths = hrcore.write_sample(folder, rows=args.rows, dirty=0.05, all_kinds=True)
        with open(paths["hired_employees"], "rb") as file:
            lines = pl.concat(RowReader().rows(iter(lambda: file.read(4 << 20), b"")))
    ours, ours_valid = median_of(lambda: with_hrcore(lines), args.repeat)
    theirs, theirs_valid = median_of(lambda: with_dataframely(lines), args.repeat)
    print(f"rows: {args.rows:,}, medians of {args.repeat}")
    print("| engine | seconds | rows/s | valid rows |")
    print("|---|---:|---:|---:|")
    for name, seconds, valid in (
        ("plain Polars expressions (hrcore)", ours, ours_valid),
        ("dataframely (`Schema.filter`)", theirs, theirs_valid),
    ):
        print(f"| {name} | {seconds:.3f} | {args.rows / seconds:,.0f} | {valid:,} |")


if __name__ == "__main__":
    main()
