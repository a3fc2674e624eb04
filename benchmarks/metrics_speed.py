"""Speed of the two metrics at 1M and 10M employees, and what their summary costs a load.

The metrics read the summary: ``hire_counts`` plus the per-statement deltas not yet
folded in, kept exact by statement-level triggers on hired_employees. For each size
the employees are generated in SQL (one statement, spread over 2020-2022, random
departments and jobs); each metric then runs ``--repeat`` times through the library
(ADBC, Arrow, Polars), first with that statement's delta not folded in, then after
the fold (as a load leaves it), and we print the medians. For context, the same
question answered straight from hired_employees is timed once.

The load-time cost of the employees' triggers (integrity, summary, change counter)
is measured by loading the same file (``verify=True``) with them on and off,
alternating, three times.

    uv run python benchmarks/metrics_speed.py --rows 1000000 10000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import hrcore
from hrcore._db import connect, execute
from hrcore._summary import compact
from measure import FILL_EMPLOYEES, fresh_database, median_of

ROOT = Path(__file__).resolve().parent.parent
DIRECT = """
SELECT d.department, j.job,
    count(*) FILTER (WHERE q = 1), count(*) FILTER (WHERE q = 2),
    count(*) FILTER (WHERE q = 3), count(*) FILTER (WHERE q = 4)
FROM (SELECT department_id, job_id,
             extract(quarter FROM datetime AT TIME ZONE 'UTC')::int AS q
      FROM hired_employees
      WHERE datetime >= '2021-01-01 00:00:00+00' AND datetime < '2022-01-01 00:00:00+00') AS h
JOIN departments d ON d.id = h.department_id JOIN jobs j ON j.id = h.job_id
GROUP BY d.department, j.job ORDER BY d.department COLLATE "C", j.job COLLATE "C"
"""


def query_speed(url: str, sizes: list[int], repeat: int) -> None:
    print(
        "| employees | summary | hires_by_quarter (s) | departments_above_mean (s) "
        "| hires by quarter straight from hired_employees (s) |"
    )
    print("|---:|---|---:|---:|---:|")
    for rows in sizes:
        with connect(url) as conn:
            execute(conn, "TRUNCATE hired_employees")
            execute(conn, "SELECT setseed(0.42)")
            execute(conn, FILL_EMPLOYEES.format(rows=rows))
            execute(conn, "VACUUM ANALYZE hired_employees")
            started = time.perf_counter()
            execute(conn, DIRECT)
            direct = time.perf_counter() - started
        for state in ("a delta not folded in", "folded in"):
            if state == "folded in":
                with connect(url) as conn:
                    compact(conn)
            by_quarter, _ = median_of(
                lambda: hrcore.hires_by_quarter(2021, database_url=url), repeat
            )
            above, _ = median_of(
                lambda: hrcore.departments_above_mean(2021, database_url=url), repeat
            )
            print(f"| {rows:,} | {state} | {by_quarter:.3f} | {above:.3f} | {direct:.2f} |")


def load_cost(url: str, rows: int, repeat: int) -> None:
    folder = ROOT / "bench-data" / f"clean-{rows}"
    if not (folder / "hired_employees.csv").exists():
        hrcore.write_sample(folder, rows=rows, seed=1, dirty=0.0)
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeat):
        for triggers in (True, False):
            with connect(url) as conn:
                execute(conn, "TRUNCATE hired_employees")
                switch = "ENABLE" if triggers else "DISABLE"
                execute(conn, f"ALTER TABLE hired_employees {switch} TRIGGER USER")
                execute(conn, "CHECKPOINT")
            started = time.perf_counter()
            hrcore.load(folder, table="hired_employees", database_url=url, verify=True)
            times[triggers].append(time.perf_counter() - started)
    with connect(url) as conn:
        execute(conn, "ALTER TABLE hired_employees ENABLE TRIGGER USER")
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"\nfirst load of {rows:,} rows, medians of {repeat}: "
        f"{on:.2f} s with the employees' triggers, {off:.2f} s without ({on / off - 1:+.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--load-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()

    url = fresh_database(hrcore.database_url(args.database_url), "hrcore_metrics_bench")
    query_speed(url, args.rows, args.repeat)
    load_cost(url, args.load_rows, 3)


if __name__ == "__main__":
    main()
