"""The stakeholders' two questions, answered in PostgreSQL and fetched as Arrow.

Quarters are computed in UTC whatever the session time zone, and names are
ordered byte-wise (``COLLATE "C"``), so every server gives the same answer.
"""

from __future__ import annotations

import polars as pl

from hrcore import _summary
from hrcore._db import Connection, fetch_frame, scalar
from hrcore._errors import UsageError
from hrcore._pool import ConnectionPool
from hrcore._schema import ready
from hrcore._summary import counts_of_year

MIN_YEAR, MAX_YEAR = 1, 9999

# Both read the summary (hire_counts plus the deltas not yet folded in; see
# _summary.py), never the employees: a few thousand rows instead of millions.
HIRES_BY_QUARTER_SQL = f"""
WITH c AS ({counts_of_year()})
SELECT d.department, j.job,
    coalesce(sum(c.hires) FILTER (WHERE c.quarter = 1), 0)::bigint AS "Q1",
    coalesce(sum(c.hires) FILTER (WHERE c.quarter = 2), 0)::bigint AS "Q2",
    coalesce(sum(c.hires) FILTER (WHERE c.quarter = 3), 0)::bigint AS "Q3",
    coalesce(sum(c.hires) FILTER (WHERE c.quarter = 4), 0)::bigint AS "Q4"
FROM c
JOIN departments AS d ON d.id = c.department_id
JOIN jobs AS j ON j.id = c.job_id
GROUP BY d.department, j.job  -- one row per pair of names as the reader sees them
HAVING sum(c.hires) > 0
ORDER BY d.department COLLATE "C", j.job COLLATE "C"
"""

_HIRES_BY_DEPARTMENT = f"""
WITH c AS ({counts_of_year()}), hires AS (
    SELECT d.id, d.department, coalesce(sum(c.hires), 0)::bigint AS hired
    FROM departments AS d
    LEFT JOIN c ON c.department_id = d.id
    GROUP BY d.id, d.department
)"""
DEPARTMENTS_ABOVE_MEAN_SQL = f"""{_HIRES_BY_DEPARTMENT}
SELECT id, department, hired FROM hires
WHERE hired > (SELECT avg(hired) FROM hires)
ORDER BY hired DESC, id"""
MEAN_SQL = f"{_HIRES_BY_DEPARTMENT} SELECT coalesce(avg(hired), 0)::float8 FROM hires"

HIRES_BY_QUARTER_SCHEMA = {
    "department": pl.String,
    "job": pl.String,
    "Q1": pl.Int64,
    "Q2": pl.Int64,
    "Q3": pl.Int64,
    "Q4": pl.Int64,
}
DEPARTMENTS_ABOVE_MEAN_SCHEMA = {"id": pl.Int32, "department": pl.String, "hired": pl.Int64}


def check_year(year: object) -> int:
    """The one place where a year is checked: an integer from 1 to 9999."""
    if isinstance(year, bool) or not isinstance(year, int):
        raise UsageError(f"year must be an integer, not {year!r}")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise UsageError(f"year must be between {MIN_YEAR} and {MAX_YEAR}, not {year}")
    return year


def _fetch(conn: Connection, sql: str, year: int, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    frame = fetch_frame(conn, sql, (year,))
    return frame.cast(schema) if frame.height else pl.DataFrame(schema=schema)  # type: ignore[arg-type]


def hires_by_quarter(
    year: int = 2021, *, database_url: str | None = None, pool: ConnectionPool | None = None
) -> pl.DataFrame:
    """Hires of ``year`` per department and job, by UTC quarter.

    Columns ``department, job, Q1, Q2, Q3, Q4``; only pairs with a hire that year;
    ordered by department, then job, byte-wise.
    """
    year = check_year(year)
    with ready(database_url, pool) as conn:
        return _fetch(conn, HIRES_BY_QUARTER_SQL, year, HIRES_BY_QUARTER_SCHEMA)  # type: ignore[arg-type]


def departments_above_mean(
    year: int = 2021, *, database_url: str | None = None, pool: ConnectionPool | None = None
) -> pl.DataFrame:
    """Departments that hired more in ``year`` than the mean over all departments.

    A department with no hire that year counts as 0 in the mean. Columns
    ``id, department, hired``, ordered by hired (most first), then id.
    """
    year = check_year(year)
    with ready(database_url, pool) as conn:
        return _fetch(conn, DEPARTMENTS_ABOVE_MEAN_SQL, year, DEPARTMENTS_ABOVE_MEAN_SCHEMA)  # type: ignore[arg-type]


def mean_hires(
    year: int = 2021, *, database_url: str | None = None, pool: ConnectionPool | None = None
) -> float:
    """The mean that :func:`departments_above_mean` compares with: hires of ``year``
    per department, over all departments (0 for one with no hire)."""
    year = check_year(year)
    with ready(database_url, pool) as conn:
        return float(scalar(conn, MEAN_SQL, (year,)))


def rebuild_summary(*, database_url: str | None = None) -> int:
    """Recompute the metrics' summary from ``hired_employees`` (for the day someone
    bypassed the triggers, e.g. with ``session_replication_role = replica``); writers
    wait meanwhile. Returns the number of (year, quarter, department, job) keys."""
    with ready(database_url) as conn:
        return _summary.rebuild(conn)
