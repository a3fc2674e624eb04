"""The metrics summary: hires per UTC year, quarter, department and job, kept exact for
every writer at the cost of one small row per statement.

Keeping a keyed summary exact per statement costs as much as the insert itself: a
batch of 1000 random employees touches about 980 of its keys. So each statement
that writes employees appends ONE row to ``hire_count_deltas``: the statement's
counts by key, as parallel arrays (the employees' triggers do it, see
``_integrity``). The metrics read ``hire_counts`` plus the deltas not yet folded
in, so they are exact after every commit. A load folds the deltas into
``hire_counts`` when it ends (:func:`compact`), one set-based statement; and
:func:`rebuild` recomputes everything from the table, for the day someone
bypasses the triggers.
"""

from __future__ import annotations

import polars as pl

from hrcore._db import Connection, execute, fetch_frame, scalar

_UTC = "AT TIME ZONE 'UTC'"
_KEY = (
    f"extract(year FROM datetime {_UTC})::int, extract(quarter FROM datetime {_UTC})::int, "
    "department_id, job_id"
)
_COMPACT_LOCK = 0x68726331  # advisory lock key: one compaction at a time
FOLD_PAGE = 250  # delta rows moved out at a time: about 6 MB of arrays for 1000-row batches
_DELTA_COLUMNS = ("year", "quarter", "department_id", "job_id", "hires")  # as a fold sums them

TABLES_DDL = (
    """CREATE TABLE IF NOT EXISTS hire_counts (
    year integer NOT NULL,
    quarter integer NOT NULL,
    department_id integer NOT NULL,
    job_id integer NOT NULL,
    hires bigint NOT NULL,
    PRIMARY KEY (year, quarter, department_id, job_id)
)""",
    """CREATE TABLE IF NOT EXISTS hire_count_deltas (
    years integer[] NOT NULL,
    quarters integer[] NOT NULL,
    department_ids integer[] NOT NULL,
    job_ids integer[] NOT NULL,
    hires bigint[] NOT NULL
)""",
    # a delta row (about 24 KB for a 1000-row batch) is stored out of line either way:
    # not compressing it saves about 0.4 s of server CPU per million rows loaded
    "ALTER TABLE hire_count_deltas "
    + ", ".join(
        f"ALTER {c} SET STORAGE EXTERNAL"
        for c in ("years", "quarters", "department_ids", "job_ids", "hires")
    ),
)


def _append(counted: str) -> str:
    """PL/pgSQL: append one delta row of ``counted`` (a query of key columns y, q, d,
    j and a count n), when it holds anything."""
    return f"""INSERT INTO hire_count_deltas
    SELECT array_agg(y), array_agg(q), array_agg(d), array_agg(j), array_agg(n)
    FROM ({counted}) AS c(y, q, d, j, n) WHERE n <> 0 HAVING count(*) > 0;"""


_QUARTER = f"date_trunc('quarter', datetime {_UTC})"  # one call per row; years and
# quarters are then taken from each group's start, not from every row


def _counted(rows: str, sign: str = "") -> str:
    """(quarter's start, department, job, count) of a transition table's rows;
    ``sign`` ``-`` counts them out."""
    return f"SELECT {_QUARTER}, department_id, job_id, {sign}count(*) FROM {rows} GROUP BY 1, 2, 3"


def _by_key(grouped: str) -> str:
    """A query of (quarter's start, d, j, n) as (year, quarter, d, j, n)."""
    return f"""SELECT extract(year FROM s)::int, extract(quarter FROM s)::int, d, j, n
    FROM ({grouped}) AS g(s, d, j, n)"""


def trigger_statements() -> dict[str, str]:
    """What the employees' triggers add to the summary, per event."""
    return {
        "insert": _append(_by_key(_counted("new_rows"))),
        "update": _append(
            _by_key(
                f"""SELECT s, d, j, sum(n) FROM (
                {_counted("new_rows")} UNION ALL {_counted("old_rows", "-")}
            ) AS u(s, d, j, n) GROUP BY 1, 2, 3"""
            )
        ),
        "delete": _append(_by_key(_counted("old_rows", "-"))),
        "truncate": "DELETE FROM hire_counts; DELETE FROM hire_count_deltas;",
    }


def counts_of_year(year_param: str = "$1::int") -> str:
    """A query of (department_id, job_id, quarter, hires) of one year: the summary
    plus the deltas not yet folded in (several rows per key; the caller sums)."""
    return f"""SELECT department_id, job_id, quarter, hires FROM hire_counts
    WHERE year = {year_param}
    UNION ALL
    SELECT u.d, u.j, u.q, u.n FROM hire_count_deltas AS h,
        unnest(h.years, h.quarters, h.department_ids, h.job_ids, h.hires) AS u(y, q, d, j, n)
    WHERE u.y = {year_param}"""


def compact(conn: Connection, page: int = FOLD_PAGE) -> bool:
    """Fold the deltas into ``hire_counts``, in one transaction; False when another
    compaction runs (it will fold these in too).

    The deltas are moved out ``page`` rows at a time and summed here, in Polars; only
    the sums go back. Summing them in SQL (unnest, then a hash aggregate) took about
    twice as long, all of it on the server: 0.8 to 1.1 s for the million pairs a
    first load of 1M employees leaves, against 0.5 s here (see README).
    """
    execute(conn, "BEGIN")
    try:
        if not scalar(conn, f"SELECT pg_try_advisory_xact_lock({_COMPACT_LOCK})"):
            execute(conn, "ROLLBACK")
            return False
        sums = _moved_out(conn, page)
        if sums.height:
            execute(
                conn,
                """INSERT INTO hire_counts AS c (year, quarter, department_id, job_id, hires)
                SELECT * FROM unnest($1::int[], $2::int[], $3::int[], $4::int[], $5::bigint[])
                ON CONFLICT (year, quarter, department_id, job_id)
                DO UPDATE SET hires = c.hires + excluded.hires""",
                tuple("{" + ",".join(map(str, sums[c])) + "}" for c in _DELTA_COLUMNS),
            )
        execute(conn, "DELETE FROM hire_counts WHERE hires = 0")
        execute(conn, "COMMIT")
    except BaseException:
        execute(conn, "ROLLBACK")
        raise
    return True


def _moved_out(conn: Connection, page: int) -> pl.DataFrame:
    """In the caller's transaction: the deltas deleted, ``page`` rows at a time, and
    their counts summed by key, in key order (keys that sum to 0 left out). Deltas
    appended meanwhile are taken too, up to one page more than there were."""
    pending = int(scalar(conn, "SELECT count(*) FROM hire_count_deltas"))
    keys = list(_DELTA_COLUMNS[:4])
    sums = pl.DataFrame(schema=dict.fromkeys(keys, pl.Int32) | {"hires": pl.Int64})
    for _ in range(-(-pending // page) + 1):
        moved = fetch_frame(
            conn,
            f"""DELETE FROM hire_count_deltas WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM hire_count_deltas LIMIT {page:d}))
            RETURNING years AS year, quarters AS quarter, department_ids AS department_id,
                job_ids AS job_id, hires""",
        )
        if moved.height == 0:
            break
        counted = moved.explode(_DELTA_COLUMNS).group_by(keys).agg(pl.col("hires").sum())
        sums = (
            pl.concat([sums, counted.cast(sums.schema)]).group_by(keys).agg(pl.col("hires").sum())
        )
    return sums.filter(pl.col("hires") != 0).sort(keys)


def refill(conn: Connection) -> None:
    """In the caller's transaction: the summary recomputed from ``hired_employees``."""
    execute(conn, "LOCK TABLE hired_employees IN SHARE MODE")  # writers wait meanwhile
    execute(conn, "DELETE FROM hire_count_deltas")
    execute(conn, "DELETE FROM hire_counts")
    execute(
        conn,
        f"""INSERT INTO hire_counts (year, quarter, department_id, job_id, hires)
        SELECT {_KEY}, count(*) FROM hired_employees GROUP BY 1, 2, 3, 4""",
    )


def rebuild(conn: Connection) -> int:
    """Recompute the summary from ``hired_employees``, in one transaction (writers wait
    meanwhile): for the day someone bypassed the triggers. Returns the number of keys."""
    execute(conn, "BEGIN")
    try:
        refill(conn)
        keys = int(scalar(conn, "SELECT count(*) FROM hire_counts"))
        execute(conn, "COMMIT")
    except BaseException:
        execute(conn, "ROLLBACK")
        raise
    return keys
