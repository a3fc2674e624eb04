"""Backup and restore of hired_employees through the CLI: time and peak memory.

The table is filled in SQL with ``--rows`` employees; ``hrcore backup`` writes it to
an AVRO file and ``hrcore restore`` puts it back (after the rows were changed), each
in a process of its own. Peak RSS should not grow with the table.

    uv run python benchmarks/backup_speed.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import hrcore
from hrcore._db import connect, execute
from hrcore._sources import SAMPLE_FOLDER
from measure import timed

HRCORE = str(Path(sys.executable).parent / "hrcore")
FILL = """
INSERT INTO hired_employees (id, name, datetime, department_id, job_id)
SELECT g, 'Employee ' || g,
    timestamptz '2020-01-01 00:00:00+00' + random() * interval '1096 days',
    1 + floor(random() * 12)::int, 1 + floor(random() * 183)::int
FROM generate_series(1, {rows:d}) AS g"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()

    server = hrcore.database_url(args.database_url)
    with connect(server) as conn:
        execute(conn, "DROP DATABASE IF EXISTS hrcore_backup_bench WITH (FORCE)")
        execute(conn, "CREATE DATABASE hrcore_backup_bench")
    url = urlunsplit(urlsplit(server)._replace(path="/hrcore_backup_bench"))
    for table in ("departments", "jobs"):
        hrcore.load(SAMPLE_FOLDER, table=table, database_url=url)
    env = {**os.environ, "DATABASE_URL": url}

    print("| rows | step | seconds | rows/s | peak RSS (MB) | file (MB) |")
    print("|---:|---|---:|---:|---:|---:|")
    for rows in args.rows:
        with connect(url) as conn:
            execute(conn, "TRUNCATE hired_employees")
            execute(conn, FILL.format(rows=rows))
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "hired_employees.avro"
            made = timed([HRCORE, "backup", "hired_employees", "--to", str(target)], env)
            size = target.stat().st_size / 2**20
            with connect(url) as conn:
                execute(conn, "UPDATE hired_employees SET name = 'changed' WHERE id % 10 = 0")
            back = timed([HRCORE, "restore", "hired_employees", "--from", str(target)], env)
        for step, run in (("backup", made), ("restore (one transaction)", back)):
            print(
                f"| {rows:,} | {step} | {run.seconds:.2f} | {rows / run.seconds:,.0f} "
                f"| {run.peak_rss_mb:,.0f} | {size:,.1f} |"
            )


if __name__ == "__main__":
    main()
