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

import hrcore
from hrcore._db import connect, execute
from measure import FILL_EMPLOYEES, fresh_database, timed

HRCORE = str(Path(sys.executable).parent / "hrcore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()

    url = fresh_database(hrcore.database_url(args.database_url), "hrcore_backup_bench")
    env = {**os.environ, "DATABASE_URL": url}

    print("| rows | step | seconds | rows/s | peak RSS (MB) | file (MB) |")
    print("|---:|---|---:|---:|---:|---:|")
    for rows in args.rows:
        with connect(url) as conn:
            execute(conn, "TRUNCATE hired_employees")
            execute(conn, FILL_EMPLOYEES.format(rows=rows))
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
