"""The peer of ``hrcore load`` in load_speed.py: dlt's ``merge`` of hired_employees.csv
into PostgreSQL, as fast as dlt reasonably goes.

It runs in an environment of its own, so that the workspace lock never carries dlt:

    uv run --isolated --no-project --with "dlt[postgres,parquet]" \\
        --with adbc-driver-postgresql python benchmarks/dlt_peer.py \\
        bench-data/clean-1000000/hired_employees.csv \\
        --database-url postgresql://postgres@127.0.0.1:5432/hrcore_bench --dataset dlt_1

(``--no-project``: without it ``uv run --isolated`` also installs the whole
workspace into the throwaway environment and puts hrcore on its path. The
``parquet`` extra brings pyarrow; ``adbc-driver-postgresql`` the binary COPY.)

What it does, and why (measured at 1M rows on the 2-core machine of issue 10,
PostgreSQL 15, dlt 1.31.0; ``pipeline.run`` seconds):

- The file is read by ``pyarrow.csv.open_csv`` (streaming, multithreaded, standard
  CSV quoting) with the five column names and their types (id, department_id,
  job_id ``int32``; name ``string``; datetime ``timestamp[us, UTC]``, which parses
  ``2021-07-27T16:02:08Z``; all non-nullable, as dlt's hints for the key say), and
  the resource yields Arrow record batches of ``--block-mb`` MB (16; 4 and 64 made
  no difference): no Python dicts, so extract and normalize stay in Arrow.
- ``loader_file_format="parquet"``: extract writes the batches to parquet,
  normalize keeps the file as it is, and the loader sends it through ADBC's
  binary ``COPY`` (dlt's documented fast path for Arrow into PostgreSQL). With
  ``csv`` (pyarrow's CSV writer, then ``COPY ... FROM STDIN`` through psycopg2)
  normalize alone took 5.6 - 8 s (run 8.8 - 11.5 s); with ``insert_values``, the
  destination's default, the run took 22.6 s.
- ``write_disposition={"disposition": "merge", "strategy": "upsert"}`` with
  ``primary_key="id"``: dlt loads into its ``<dataset>_staging`` schema, then
  merges into ``<dataset>.hired_employees`` with one ``MERGE`` (PostgreSQL 15).
  The default strategy, ``delete-insert`` (delete the staged keys, insert the
  staged rows deduplicated by key), took 5.3 s against 2.0 - 2.9 s for ``upsert``.
  ``upsert`` does not deduplicate the staged rows: an id twice in one file is
  inserted twice into a new table (and fails the load with ``--unique-id``);
  the benchmark's file has no such id, and load_speed.py checks the table.
- dlt creates no index for a primary key on PostgreSQL; ``--unique-id`` hints id
  ``unique`` so that dlt declares ``UNIQUE (id)``, the shape hired_employees has
  (4.7 s instead of 2.9 s).
- A fresh pipeline directory (temporary) and a dataset name given by the caller,
  so no state from an earlier run is reused; dlt's telemetry is off (no network).
  A URL without a password gets a placeholder one (dlt requires a password; a
  server that trusts the connection ignores it).

It prints one JSON line: versions, options, ``seconds`` (``pipeline.run`` alone:
the process also pays Python's start, the imports and uv's environment) and the
seconds of dlt's steps. The caller checks the merged table's row count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.csv as pacsv

COLUMNS = ("id", "name", "datetime", "department_id", "job_id")
TYPES = {
    "id": pa.int32(),
    "name": pa.string(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "department_id": pa.int32(),
    "job_id": pa.int32(),
}
#: every field is required: non-nullable in Arrow, as dlt's hints for the key say
SCHEMA = pa.schema([pa.field(name, TYPES[name], nullable=False) for name in COLUMNS])


def batches(path: str, block_mb: int) -> Iterator[pa.RecordBatch]:
    """The file's rows as Arrow record batches (the file has no header row)."""
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(COLUMNS), block_size=block_mb << 20),
        convert_options=pacsv.ConvertOptions(column_types=TYPES, strings_can_be_null=False),
    )
    with reader:
        for batch in reader:
            yield pa.RecordBatch.from_arrays(batch.columns, schema=SCHEMA)


def credentials(url: str) -> str:
    """``url``, with a placeholder password when it has none: dlt requires one, and a
    server that trusts the connection (or uses a password file) ignores it."""
    parts = urlsplit(url)
    if parts.password or not parts.username:
        return url
    netloc = f"{parts.username}:unused@{parts.netloc.split('@', 1)[1]}"
    return urlunsplit(parts._replace(netloc=netloc))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("csv", help="hired_employees.csv (no header)")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--dataset", required=True, help="a schema name not used before")
    parser.add_argument("--table", default="hired_employees")
    parser.add_argument("--strategy", choices=["delete-insert", "upsert"], default="upsert")
    parser.add_argument(
        "--file-format", choices=["parquet", "csv", "insert_values"], default="parquet"
    )
    parser.add_argument("--block-mb", type=int, default=16, help="CSV read block, MB")
    parser.add_argument(
        "--unique-id",
        action="store_true",
        help="hint id as unique: dlt then declares a UNIQUE constraint on it",
    )
    args = parser.parse_args()

    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    import dlt  # type: ignore[import-not-found, unused-ignore]

    @dlt.resource(  # type: ignore[untyped-decorator, unused-ignore]
        name=args.table,
        write_disposition={"disposition": "merge", "strategy": args.strategy},
        primary_key="id",
        columns={"id": {"unique": True}} if args.unique_id else None,
    )
    def employees() -> Iterator[pa.RecordBatch]:
        yield from batches(args.csv, args.block_mb)

    with tempfile.TemporaryDirectory(prefix="dlt-peer-") as pipelines_dir:
        pipeline: Any = dlt.pipeline(
            pipeline_name=f"hrcore_peer_{args.dataset}",
            pipelines_dir=pipelines_dir,
            destination=dlt.destinations.postgres(credentials=credentials(args.database_url)),
            dataset_name=args.dataset,
        )
        started = time.perf_counter()
        info: Any = pipeline.run(employees(), loader_file_format=args.file_format)
        seconds = time.perf_counter() - started
        steps = {
            step.step: round((step.finished_at - step.started_at).total_seconds(), 3)
            for step in pipeline.last_trace.steps
        }
    info.raise_on_failed_jobs()
    print(
        json.dumps(
            {
                "dlt": dlt.__version__,
                "python": sys.version.split()[0],
                "pyarrow": pa.__version__,
                "strategy": args.strategy,
                "file_format": args.file_format,
                "block_mb": args.block_mb,
                "unique_id": args.unique_id,
                "dataset": args.dataset,
                "table": args.table,
                "seconds": seconds,
                "steps": steps,
            }
        )
    )


if __name__ == "__main__":
    main()
