"""AVRO writer choice: fastavro (streamed records) against Polars' write_avro/read_avro.

Both write the same hired_employees rows (ids as int, datetime as a UTC timestamp)
to a file and read them back; we time each and check the round trip is exact.
Polars' AVRO functions are marked unstable in 2.x and take a whole DataFrame,
so they cannot stream a table bigger than memory; fastavro takes an iterator.

    uv run python benchmarks/avro_writers.py --rows 1000000
"""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path
from typing import Any, cast

import fastavro
import polars as pl
import pyarrow as pa
from hrcore._backup import avro_schema
from hrcore._specs import HIRED_EMPLOYEES
from measure import median_of


def frame(rows: int) -> pl.DataFrame:
    start = pl.datetime(2021, 1, 1, time_zone="UTC")
    return pl.select(
        id=pl.int_range(1, rows + 1).cast(pl.Int32),
        name=pl.format("Name {}", pl.int_range(1, rows + 1)),
        datetime=pl.datetime_range(start, start + pl.duration(seconds=rows - 1), "1s"),
        department_id=(pl.int_range(0, rows) % 12 + 1).cast(pl.Int32),
        job_id=(pl.int_range(0, rows) % 183 + 1).cast(pl.Int32),
    )


def with_fastavro(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    table = df.with_columns(pl.col("datetime").dt.epoch("us")).to_arrow()
    records = (r for batch in table.to_batches(100_000) for r in batch.to_pylist())
    with path.open("wb") as f:
        fastavro.writer(
            f, fastavro.parse_schema(avro_schema(HIRED_EMPLOYEES)), records, codec="deflate"
        )
    with path.open("rb") as f:
        reader = fastavro.reader(f)
        back = pa.Table.from_pylist([cast(dict[str, Any], r) for r in reader])
    result = pl.from_arrow(back)
    assert isinstance(result, pl.DataFrame)
    return result.with_columns(
        pl.col("datetime").cast(pl.Datetime("us", "UTC")),
        pl.col("id", "department_id", "job_id").cast(pl.Int32),
    )


def with_polars(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    df.write_avro(path, compression="deflate")
    return pl.read_avro(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    df = frame(args.rows)
    with tempfile.TemporaryDirectory() as folder:
        print(f"rows: {args.rows:,}, write + read back, medians of {args.repeat}")
        print("| writer | seconds | exact round trip | streams |")
        print("|---|---:|---|---|")
        for name, work, streams in (
            ("fastavro", with_fastavro, "yes"),
            ("polars write_avro / read_avro", with_polars, "no (whole frame)"),
        ):
            try:
                target = Path(folder) / "t.avro"
                seconds, back = median_of(partial(work, df, target), args.repeat)
                exact = "yes" if back.equals(df) else f"no: {back.schema}"
                print(f"| {name} | {seconds:.2f} | {exact} | {streams} |")
            except Exception as exc:  # an unstable writer may refuse the data
                print(f"| {name} | failed: {type(exc).__name__}: {exc} | | {streams} |")


if __name__ == "__main__":
    main()
