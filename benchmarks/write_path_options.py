"""Write-path options (issue 10): how to keep referential integrity (employees ->
departments, jobs) and the metrics summary (hires per UTC year, quarter, department
and job) per statement rather than per row, measured side by side in one run.

The write path is hrcore's: an unlogged staging table of N rows (ids 1..N in a random
permutation over the lines, as a real file's ids are in file order; datetimes over
2020-2022, department_id 1..12 and job_id 1..183 uniform, made in SQL with a fixed
seed), then one statement per batch of 1000 rows, each its own transaction
(autocommit), sent from Python over ADBC:

    INSERT INTO hired_employees AS t (...) SELECT ... FROM stage WHERE batch = k
    ORDER BY id ON CONFLICT (id) DO UPDATE SET ... WHERE (...) IS DISTINCT FROM (...)

Only those N/1000 statements are timed (a first load: the table starts empty), each
run on a fresh table in a schema of its own; the cases alternate within each of
``--repeat`` rounds and the table shows medians. Cases:

A  primary key only: no foreign keys, no summary
B  primary key + the two FOREIGN KEYs as today's DDL (DEFERRABLE): per-row RI checks
C  primary key + statement-level AFTER INSERT / AFTER UPDATE triggers with transition
   tables that lock the batch's departments and jobs FOR KEY SHARE once and check the
   batch with one anti-join each (SQLSTATE 23503)
C2 C, with the check folded into the lock (the distinct ids locked and counted)
D  C + the summary as a keyed upsert per statement (today's hire_counts, 16 shards)
E  C + the summary appended as grouped rows to an unindexed delta table
F  C + the summary appended as one row of parallel arrays per statement
G  no trigger: lock, check, upsert ... RETURNING and F's array row in one statement
H  C's triggers switched off by a WHEN clause (``SET hrcore.trusted = on``)
I  (PostgreSQL 18 only) the two FOREIGN KEYs declared NOT ENFORCED + C's triggers

and, as references: one server-side ``INSERT INTO pk_only SELECT ... FROM stage`` of
all N rows, and ``psql \\copy`` of a CSV of the same rows (file order) into a PK-only
table and into a PK + FKs table. Besides wall seconds it reports the CPU seconds of
the server process that ran the statements (read from /proc when the server is on
this machine), which other work on a shared machine disturbs less. For E, F and G
(the delta tables) it also times compacting the whole load's deltas into a keyed
hire_counts (one statement: DELETE ... RETURNING, then INSERT ... GROUP BY ... ON
CONFLICT DO UPDATE), and the hires-by-quarter query (2021, joined to the names) over
hire_counts UNION ALL the deltas, before and after.
Every case that claims integrity is also shown to refuse (23503) an insert and an
update naming a missing department or job, and the summaries are checked to agree
with the table and with each other.

    uv run python benchmarks/write_path_options.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/test --rows 1000000 --repeat 3 --readme

Without ``--database-url`` (or ``DATABASE_URL``) it runs on the embedded server.
The run creates a database of its own (``hrcore_wpo_<pid>``) and drops it at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import hrcore
from hrcore._db import Connection, connect, execute, scalar
from hrcore._errors import DatabaseError
from measure import median_of

Summary = Literal["none", "keyed", "deltas", "arrays"]
SHARDS = 16  # as today's hire_counts (see hrcore/_schema.py)
YEAR = 2021

SETUP = (
    """CREATE TABLE departments (id integer PRIMARY KEY, department text NOT NULL)""",
    """CREATE TABLE jobs (id integer PRIMARY KEY, job text NOT NULL)""",
    """INSERT INTO departments SELECT g, 'Department ' || g FROM generate_series(1, 12) AS g""",
    """INSERT INTO jobs SELECT g, 'Job ' || g FROM generate_series(1, 183) AS g""",
    """CREATE UNLOGGED TABLE stage (
    line bigint NOT NULL, batch integer NOT NULL, id integer NOT NULL, name text NOT NULL,
    datetime timestamptz NOT NULL, department_id integer NOT NULL, job_id integer NOT NULL)""",
    # G's guard: a plain error with the SQLSTATE a foreign key would give
    """CREATE FUNCTION hrcore_fail(message text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE foreign_key_violation USING MESSAGE = message;
END $$""",
)
#: ids 1..N shuffled over the lines; same shape as measure.FILL_EMPLOYEES otherwise
FILL_STAGE = """
INSERT INTO stage
SELECT line, ((line - 1) / {batch_size:d})::int, id, 'Employee ' || id,
    timestamptz '2020-01-01 00:00:00+00' + random() * interval '1096 days',
    1 + floor(random() * 12)::int, 1 + floor(random() * 183)::int
FROM (SELECT row_number() OVER (ORDER BY random()) AS line, g AS id
      FROM generate_series(1, {rows:d}) AS g) AS shuffled
ORDER BY line"""

TABLE_DDL = """CREATE TABLE {s}.hired_employees (
    id integer NOT NULL PRIMARY KEY,
    name text NOT NULL,
    datetime timestamptz NOT NULL,
    department_id integer NOT NULL,
    job_id integer NOT NULL{fks}
) WITH (autovacuum_enabled = off)"""
FKS = {
    "enforced": ",\n    FOREIGN KEY (department_id) REFERENCES public.departments (id) DEFERRABLE"
    ",\n    FOREIGN KEY (job_id) REFERENCES public.jobs (id) DEFERRABLE",
    "not enforced": ",\n    FOREIGN KEY (department_id) REFERENCES public.departments (id)"
    " NOT ENFORCED,\n    FOREIGN KEY (job_id) REFERENCES public.jobs (id) NOT ENFORCED",
}
SUMMARY_DDL: dict[Summary, tuple[str, ...]] = {
    "none": (),
    "keyed": (  # today's hire_counts
        """CREATE TABLE {s}.hire_counts (
    year integer NOT NULL, quarter integer NOT NULL, department_id integer NOT NULL,
    job_id integer NOT NULL, shard smallint NOT NULL, hires bigint NOT NULL,
    PRIMARY KEY (year, quarter, department_id, job_id, shard)
) WITH (autovacuum_enabled = off)""",
    ),
    "deltas": (
        """CREATE TABLE {s}.hire_count_deltas (
    year integer, quarter integer, department_id integer, job_id integer, hires bigint
) WITH (autovacuum_enabled = off)""",
    ),
    "arrays": (
        """CREATE TABLE {s}.hire_count_batches (
    years integer[], quarters integer[], department_ids integer[], job_ids integer[],
    hires bigint[]
) WITH (autovacuum_enabled = off)""",
    ),
}
#: the compacted summary that E's and F's deltas are folded into
COMPACT_DDL = """CREATE TABLE {s}.hire_counts (
    year integer NOT NULL, quarter integer NOT NULL, department_id integer NOT NULL,
    job_id integer NOT NULL, hires bigint NOT NULL,
    PRIMARY KEY (year, quarter, department_id, job_id)
) WITH (autovacuum_enabled = off)"""

UPSERT = """INSERT INTO {s}.hired_employees AS t (id, name, datetime, department_id, job_id)
{source}
ORDER BY id
ON CONFLICT (id) DO UPDATE SET name = excluded.name, datetime = excluded.datetime,
    department_id = excluded.department_id, job_id = excluded.job_id
WHERE (t.name, t.datetime, t.department_id, t.job_id)
    IS DISTINCT FROM (excluded.name, excluded.datetime, excluded.department_id, excluded.job_id)"""
STAGED = "SELECT id, name, datetime, department_id, job_id FROM public.stage WHERE batch = {k:d}"

_YEAR_QUARTER = """extract(year FROM datetime AT TIME ZONE 'UTC')::int AS year,
    extract(quarter FROM datetime AT TIME ZONE 'UTC')::int AS quarter"""
#: a statement's changes to the summary: (year, quarter, department_id, job_id, hires)
INSERTED = f"""SELECT {_YEAR_QUARTER}, department_id, job_id, count(*) AS hires
FROM {{rows}} GROUP BY 1, 2, 3, 4"""
UPDATED = f"""SELECT year, quarter, department_id, job_id, sum(sign)::bigint AS hires
FROM (SELECT {_YEAR_QUARTER}, department_id, job_id, 1 AS sign FROM new_rows
      UNION ALL
      SELECT {_YEAR_QUARTER}, department_id, job_id, -1 FROM old_rows) AS changed
GROUP BY 1, 2, 3, 4 HAVING sum(sign) <> 0"""
APPLY: dict[Summary, str] = {
    "none": "",
    "keyed": """INSERT INTO {s}.hire_counts AS c
        (year, quarter, department_id, job_id, shard, hires)
    SELECT year, quarter, department_id, job_id, (pg_backend_pid() % """
    + str(SHARDS)
    + """)::smallint, hires
    FROM ({changes}) AS g ORDER BY 1, 2, 3, 4
    ON CONFLICT (year, quarter, department_id, job_id, shard)
    DO UPDATE SET hires = c.hires + excluded.hires;""",
    "deltas": """INSERT INTO {s}.hire_count_deltas (year, quarter, department_id, job_id, hires)
    SELECT year, quarter, department_id, job_id, hires FROM ({changes}) AS g;""",
    "arrays": """INSERT INTO {s}.hire_count_batches
        (years, quarters, department_ids, job_ids, hires)
    SELECT array_agg(year), array_agg(quarter), array_agg(department_id), array_agg(job_id),
        array_agg(hires)
    FROM ({changes}) AS g HAVING count(*) > 0;""",
}
CHECK_REFERENCES = """
    PERFORM 1 FROM public.departments AS d
    WHERE d.id IN (SELECT DISTINCT department_id FROM new_rows) FOR KEY SHARE;
    PERFORM 1 FROM public.jobs AS j
    WHERE j.id IN (SELECT DISTINCT job_id FROM new_rows) FOR KEY SHARE;
    IF EXISTS (SELECT 1 FROM new_rows AS n WHERE NOT EXISTS (
                   SELECT 1 FROM public.departments AS d WHERE d.id = n.department_id)) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'hired_employees: a department_id names no department';
    END IF;
    IF EXISTS (SELECT 1 FROM new_rows AS n WHERE NOT EXISTS (
                   SELECT 1 FROM public.jobs AS j WHERE j.id = n.job_id)) THEN
        RAISE foreign_key_violation USING MESSAGE = 'hired_employees: a job_id names no job';
    END IF;"""
#: C2: the lock doubles as the check: per key, one pass over new_rows for its distinct
#: ids, and the number of rows locked must be the number of ids (C's NOT EXISTS is
#: planned as a nested loop of 1000 index probes per key, with heap fetches)
LOCK_AND_COUNT = """
    IF (WITH wanted AS MATERIALIZED (SELECT DISTINCT department_id AS id FROM new_rows),
             locked AS MATERIALIZED (SELECT d.id FROM public.departments AS d
                                     WHERE d.id IN (SELECT id FROM wanted) FOR KEY SHARE)
        SELECT (SELECT count(*) FROM wanted) <> (SELECT count(*) FROM locked)) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'hired_employees: a department_id names no department';
    END IF;
    IF (WITH wanted AS MATERIALIZED (SELECT DISTINCT job_id AS id FROM new_rows),
             locked AS MATERIALIZED (SELECT j.id FROM public.jobs AS j
                                     WHERE j.id IN (SELECT id FROM wanted) FOR KEY SHARE)
        SELECT (SELECT count(*) FROM wanted) <> (SELECT count(*) FROM locked)) THEN
        RAISE foreign_key_violation USING MESSAGE = 'hired_employees: a job_id names no job';
    END IF;"""
TRIGGER_FUNCTION = """CREATE FUNCTION {s}.on_{event}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{check}
    {apply}
    RETURN NULL;
END $$"""
TRIGGER = """CREATE TRIGGER on_{event} AFTER {EVENT} ON {s}.hired_employees
    REFERENCING {tables} FOR EACH STATEMENT{when} EXECUTE FUNCTION {s}.on_{event}()"""
TRUSTED_OFF = "\n    WHEN (current_setting('hrcore.trusted', true) IS DISTINCT FROM 'on')"

#: G: the batch's references locked and checked, the upsert, and F's array row, in one
#: statement. Inserts only: for updates the old values' counts must be subtracted too
#: (a pre-image CTE read FOR UPDATE before the upsert, or RETURNING old.* on PG 18).
IN_STATEMENT = """WITH batch AS MATERIALIZED ({source}),
departments_locked AS MATERIALIZED (
    SELECT d.id FROM public.departments AS d
    WHERE d.id IN (SELECT department_id FROM batch) FOR KEY SHARE
),
jobs_locked AS MATERIALIZED (
    SELECT j.id FROM public.jobs AS j WHERE j.id IN (SELECT job_id FROM batch) FOR KEY SHARE
),
guard AS (
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM batch
                     WHERE department_id NOT IN (SELECT id FROM departments_locked))
        THEN public.hrcore_fail('hired_employees: a department_id names no department')
        WHEN EXISTS (SELECT 1 FROM batch WHERE job_id NOT IN (SELECT id FROM jobs_locked))
        THEN public.hrcore_fail('hired_employees: a job_id names no job')
        ELSE true END AS ok
),
written AS (
    {upsert}
    RETURNING t.datetime, t.department_id, t.job_id
)
INSERT INTO {s}.hire_count_batches (years, quarters, department_ids, job_ids, hires)
SELECT array_agg(year), array_agg(quarter), array_agg(department_id), array_agg(job_id),
    array_agg(hires)
FROM ({grouped}) AS g HAVING count(*) > 0"""
GUARDED_SOURCE = (
    "SELECT id, name, datetime, department_id, job_id FROM batch WHERE (SELECT ok FROM guard)"
)

#: the counts a summary holds, as (year, quarter, department_id, job_id, hires) rows
COUNTS: dict[Summary, str] = {
    "none": "",
    "keyed": "SELECT year, quarter, department_id, job_id, hires FROM {s}.hire_counts",
    "deltas": """SELECT year, quarter, department_id, job_id, hires FROM {s}.hire_counts
    UNION ALL
    SELECT year, quarter, department_id, job_id, hires FROM {s}.hire_count_deltas""",
    "arrays": """SELECT year, quarter, department_id, job_id, hires FROM {s}.hire_counts
    UNION ALL
    SELECT u.year, u.quarter, u.department_id, u.job_id, u.hires
    FROM {s}.hire_count_batches AS b,
        unnest(b.years, b.quarters, b.department_ids, b.job_ids, b.hires)
            AS u(year, quarter, department_id, job_id, hires)""",
}
DIRECT_COUNTS = f"""SELECT {_YEAR_QUARTER}, department_id, job_id, 1 AS hires
    FROM {{s}}.hired_employees
    WHERE datetime >= '{YEAR}-01-01 00:00:00+00' AND datetime < '{YEAR + 1}-01-01 00:00:00+00'"""
#: groups where the summary and the table disagree
MISMATCHES = f"""WITH summary AS (
    SELECT year, quarter, department_id, job_id, sum(hires) AS hires FROM ({{counts}}) AS c
    GROUP BY 1, 2, 3, 4 HAVING sum(hires) <> 0
), direct AS (
    SELECT {_YEAR_QUARTER}, department_id, job_id, count(*) AS hires
    FROM {{s}}.hired_employees GROUP BY 1, 2, 3, 4
)
SELECT count(*) FROM ((TABLE summary EXCEPT TABLE direct) UNION ALL
                      (TABLE direct EXCEPT TABLE summary)) AS differing"""
HIRES_BY_QUARTER = (
    """SELECT d.department, j.job,
    coalesce(sum(c.hires) FILTER (WHERE c.quarter = 1), 0)::bigint AS "Q1",
    coalesce(sum(c.hires) FILTER (WHERE c.quarter = 2), 0)::bigint AS "Q2",
    coalesce(sum(c.hires) FILTER (WHERE c.quarter = 3), 0)::bigint AS "Q3",
    coalesce(sum(c.hires) FILTER (WHERE c.quarter = 4), 0)::bigint AS "Q4"
FROM ({counts}) AS c
JOIN public.departments AS d ON d.id = c.department_id
JOIN public.jobs AS j ON j.id = c.job_id
WHERE c.year = """
    + str(YEAR)
    + """
GROUP BY d.department, j.job
HAVING sum(c.hires) > 0
ORDER BY d.department COLLATE "C", j.job COLLATE "C\""""
)
COMPACT: dict[Summary, str] = {
    "deltas": """WITH moved AS (
    DELETE FROM {s}.hire_count_deltas RETURNING year, quarter, department_id, job_id, hires
)
INSERT INTO {s}.hire_counts AS c (year, quarter, department_id, job_id, hires)
SELECT year, quarter, department_id, job_id, sum(hires) FROM moved GROUP BY 1, 2, 3, 4
ON CONFLICT (year, quarter, department_id, job_id)
DO UPDATE SET hires = c.hires + excluded.hires""",
    "arrays": """WITH moved AS (
    DELETE FROM {s}.hire_count_batches RETURNING years, quarters, department_ids, job_ids, hires
)
INSERT INTO {s}.hire_counts AS c (year, quarter, department_id, job_id, hires)
SELECT u.year, u.quarter, u.department_id, u.job_id, sum(u.hires)
FROM moved, unnest(moved.years, moved.quarters, moved.department_ids, moved.job_ids,
                   moved.hires) AS u(year, quarter, department_id, job_id, hires)
GROUP BY 1, 2, 3, 4
ON CONFLICT (year, quarter, department_id, job_id)
DO UPDATE SET hires = c.hires + excluded.hires""",
}
SUMMARY_SIZE: dict[Summary, str] = {
    "deltas": "SELECT count(*) FROM {s}.hire_count_deltas",
    "arrays": "SELECT count(*) FROM {s}.hire_count_batches",
}


@dataclass(frozen=True)
class Case:
    """One way of writing: its tables, triggers and batch statement."""

    key: str
    what: str
    fks: str = ""  # "", "enforced" or "not enforced"
    trigger: bool = False  # C's checking triggers
    summary: Summary = "none"
    in_statement: bool = False  # G: no trigger, everything in the batch statement
    trusted: bool = False  # H: triggers off by WHEN, the session says hrcore.trusted = on
    min_version: int = 0  # server_version_num needed
    check: str = CHECK_REFERENCES  # the triggers' reference check
    checks: bool = True  # refuses a missing department or job

    def ddl(self, s: str) -> list[str]:
        statements = [TABLE_DDL.format(s=s, fks=FKS[self.fks] if self.fks else "")]
        statements += [d.format(s=s) for d in SUMMARY_DDL[self.summary]]
        if self.summary in COMPACT:
            statements.append(COMPACT_DDL.format(s=s))
        if self.trigger:
            when = TRUSTED_OFF if self.trusted else ""
            old = " OLD TABLE AS old_rows" if self.summary != "none" else ""
            for event, tables, changes in (
                ("insert", "NEW TABLE AS new_rows", INSERTED.format(rows="new_rows")),
                ("update", f"{old} NEW TABLE AS new_rows".strip(), UPDATED),
            ):
                apply = APPLY[self.summary].format(s=s, changes=changes)
                statements.append(
                    TRIGGER_FUNCTION.format(s=s, event=event, check=self.check, apply=apply)
                )
                statements.append(
                    TRIGGER.format(s=s, event=event, EVENT=event.upper(), tables=tables, when=when)
                )
        return statements

    def statement(self, s: str, source: str) -> str:
        """The batch statement writing the rows of ``source`` (a SELECT)."""
        if not self.in_statement:
            return UPSERT.format(s=s, source=source)
        return IN_STATEMENT.format(
            s=s,
            source=source,
            upsert=UPSERT.format(s=s, source=GUARDED_SOURCE).replace("\n", "\n    "),
            grouped=INSERTED.format(rows="written"),
        )

    def session(self) -> list[str]:
        return ["SET hrcore.trusted = 'on'"] if self.trusted else []


CASES = (
    Case("A", "PK only: no foreign keys, no summary", checks=False),
    Case("B", "PK + the 2 FOREIGN KEYs as today (DEFERRABLE): row-level RI checks", "enforced"),
    Case(
        "C",
        "PK + statement-level triggers (transition tables): lock the batch's departments"
        " and jobs FOR KEY SHARE, one anti-join check each",
        trigger=True,
    ),
    Case(
        "C2",
        "C with the check folded into the lock: per key, the batch's distinct ids locked"
        " FOR KEY SHARE and counted (no per-row anti-join)",
        trigger=True,
        check=LOCK_AND_COUNT,
    ),
    Case(
        "D",
        f"C + summary as a keyed upsert per statement (today's hire_counts, {SHARDS} shards)",
        trigger=True,
        summary="keyed",
    ),
    Case(
        "E",
        "C + summary appended as grouped rows to an unindexed delta table",
        trigger=True,
        summary="deltas",
    ),
    Case(
        "F",
        "C + summary appended as one row of parallel arrays per statement",
        trigger=True,
        summary="arrays",
    ),
    Case(
        "G",
        "no trigger: lock + check + upsert RETURNING + F's array row, one statement (CTEs)",
        summary="arrays",
        in_statement=True,
    ),
    Case(
        "H",
        "C with its triggers off by WHEN (session: hrcore.trusted = on); compare with A",
        trigger=True,
        trusted=True,
    ),
    Case(
        "I",
        "the 2 FOREIGN KEYs NOT ENFORCED (documentation only) + C's triggers",
        "not enforced",
        trigger=True,
        min_version=180000,
    ),
)
REF_INSERT, REF_COPY, REF_COPY_FK = "R1", "R2", "R3"
REFERENCES = {
    REF_INSERT: "reference: one server-side `INSERT INTO pk_only SELECT ... FROM stage` "
    "of all rows (file order), PK-only table",
    REF_COPY: "reference: `psql \\copy` of a CSV of the same rows (file order) into a "
    "PK-only table (its own process)",
    REF_COPY_FK: "reference: `psql \\copy` of the same CSV into PK + the 2 FOREIGN KEYs",
}


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def psql_url(url: str) -> str:
    return url.replace(":@", "@")  # libpq rejects an empty password field in some versions


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def fresh_schema(conn: Connection, s: str, ddl: list[str]) -> None:
    execute(conn, f"DROP SCHEMA IF EXISTS {s} CASCADE")
    execute(conn, f"CREATE SCHEMA {s}")
    for statement in ddl:
        execute(conn, statement)
    execute(conn, "CHECKPOINT")  # the last run's dirty pages are not this run's cost


@dataclass(frozen=True)
class Timing:
    """Wall seconds, and the CPU seconds of the server process serving the connection
    (None when the server's /proc is not this machine's): on a shared machine the CPU
    time says what the work costs even when other processes take turns on the cores."""

    seconds: float
    cpu: float | None


def backend_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a local process so far (None if unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_statements(conn: Connection, statements: list[str]) -> Timing:
    """Run the statements one after the other (autocommit: one transaction each)."""
    pid = int(scalar(conn, "SELECT pg_backend_pid()"))
    local = Path(f"/proc/{pid}").exists() and (
        scalar(
            conn,
            "SELECT inet_server_addr() IS NULL OR inet_server_addr() <<= '127.0.0.0/8' "
            "OR inet_server_addr() = '::1'",
        )
        is True
    )
    cpu_before = backend_cpu(pid) if local else None
    started = time.perf_counter()
    for sql in statements:
        execute(conn, sql)
    seconds = time.perf_counter() - started
    cpu_after = backend_cpu(pid) if local else None
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return Timing(seconds, cpu)


def write_batches(url: str, case: Case, s: str, batches: int) -> Timing:
    """The batch statements alone, one transaction each."""
    statements = [case.statement(s, STAGED.format(k=k)) for k in range(batches)]
    with connect(url) as conn:
        for setting in case.session():
            execute(conn, setting)
        return timed_statements(conn, statements)


def expect_refused(conn: Connection, sql: str, what: str) -> None:
    try:
        execute(conn, sql)
    except DatabaseError as exc:
        if exc.sqlstate != "23503":
            raise SystemExit(f"{what}: expected SQLSTATE 23503, got {exc.sqlstate}: {exc}") from exc
        return
    raise SystemExit(f"{what}: a missing reference was written")


def check_integrity(url: str, case: Case, s: str, rows: int) -> None:
    """A missing department or job is refused, by insert and by update (not timed)."""
    with connect(url) as conn:  # a plain session: H's triggers fire here
        for department, job in ((999, 1), (1, 999)):
            bad = (
                "SELECT * FROM (VALUES ({id}, 'x', timestamptz '2021-05-05 00:00:00+00', "
                "{department}, {job})) AS v(id, name, datetime, department_id, job_id)"
            )
            for new_id in (rows + 1, 1):  # an insert, then an update of an existing row
                source = bad.format(id=new_id, department=department, job=job)
                expect_refused(conn, case.statement(s, source), f"case {case.key}")
        if case.trigger or case.fks == "enforced":  # a plain UPDATE by someone with psql
            expect_refused(
                conn,
                f"UPDATE {s}.hired_employees SET job_id = 999 WHERE id = 2",
                f"case {case.key}, plain UPDATE",
            )
        if scalar(conn, f"SELECT count(*) FROM {s}.hired_employees") != rows:
            raise SystemExit(f"case {case.key}: a refused statement changed the table")
        if case.trigger and case.summary != "none":  # the triggers' update path
            execute(
                conn,
                f"""UPDATE {s}.hired_employees SET department_id = 1 + department_id % 12,
                    datetime = datetime + interval '400 days' WHERE id % 1000 = 7""",
            )
        if case.summary != "none" and scalar(
            conn, MISMATCHES.format(s=s, counts=COUNTS[case.summary].format(s=s))
        ):
            raise SystemExit(f"case {case.key}: the summary disagrees with the table")


def summary_total(conn: Connection, case: Case, s: str) -> int:
    """The hires the case's summary holds (all of them, every year)."""
    counts = COUNTS[case.summary].format(s=s)
    return int(scalar(conn, f"SELECT coalesce(sum(hires), 0) FROM ({counts}) AS c"))


def hires_by_quarter(conn: Connection, counts: str, s: str) -> list[tuple[Any, ...]]:
    return execute(conn, HIRES_BY_QUARTER.format(counts=counts.format(s=s)))


def time_query(url: str, counts: str, s: str) -> tuple[float, list[tuple[Any, ...]]]:
    """The median of 5 runs of the hires-by-quarter query over ``counts``, and its answer."""
    with connect(url) as conn:
        return median_of(lambda: hires_by_quarter(conn, counts, s), 5)


@dataclass
class Reads:
    """E's and F's summary reads and compaction, one list of seconds per step."""

    size: list[int]
    before: list[float]
    compact: list[float]
    after: list[float]


def measure_reads(
    url: str, case: Case, s: str, reads: Reads, answers: dict[str, list[tuple[Any, ...]]]
) -> None:
    """The hires-by-quarter query over hire_counts + deltas, the compaction, the query
    again (not part of the write timing)."""
    queries = 5
    with connect(url) as conn:
        reads.size.append(int(scalar(conn, SUMMARY_SIZE[case.summary].format(s=s))))
        seconds, before = median_of(
            lambda: hires_by_quarter(conn, COUNTS[case.summary], s), queries
        )
        reads.before.append(seconds)
        started = time.perf_counter()
        execute(conn, COMPACT[case.summary].format(s=s))
        reads.compact.append(time.perf_counter() - started)
        seconds, after = median_of(lambda: hires_by_quarter(conn, COUNTS[case.summary], s), queries)
        reads.after.append(seconds)
    answers[f"{case.key} before compaction"] = before
    answers[f"{case.key} after compaction"] = after


def export_csv(url: str, path: Path, psql: str) -> None:
    copy = (
        "\\copy (SELECT id, name, datetime, department_id, job_id FROM stage ORDER BY line) "
        f"TO '{path}' WITH (FORMAT csv)"
    )
    subprocess.run([psql, psql_url(url), "-qc", copy], check=True)


def psql_copy(url: str, psql: str, table: str, path: Path) -> Timing:
    started = time.perf_counter()
    subprocess.run(
        [psql, psql_url(url), "-qc", f"\\copy {table} FROM '{path}' WITH (FORMAT csv)"],
        check=True,
    )
    return Timing(time.perf_counter() - started, None)


@dataclass
class Results:
    server: str
    rows: int
    batch_size: int
    repeat: int
    timings: dict[str, list[Timing]]
    reads: dict[str, Reads]
    queries: dict[str, float]
    skipped: dict[str, str]


def run(server_url: str, rows: int, batch_size: int, repeat: int) -> Results:
    name = f"hrcore_wpo_{os.getpid()}"
    with connect(server_url) as conn:
        execute(conn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        execute(conn, f"CREATE DATABASE {name}")
    url = with_database(server_url, name)
    try:
        return Bench(url, rows, batch_size, repeat).measure()
    finally:
        with connect(server_url) as conn:
            execute(conn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


REFS = "references"  # the R1-R3 block, one item of a round like each case


class Bench:
    """One run: the staged rows, then ``repeat`` rounds of every case and the references."""

    def __init__(self, url: str, rows: int, batch_size: int, repeat: int) -> None:
        self.url, self.rows, self.batch_size, self.repeat = url, rows, batch_size, repeat
        self.batches = -(-rows // batch_size)
        self.timings: dict[str, list[Timing]] = {}
        self.reads: dict[str, Reads] = {}
        self.answers: dict[str, list[tuple[Any, ...]]] = {}
        self.queries: dict[str, float] = {}
        self.skipped: dict[str, str] = {}
        self.psql = shutil.which("psql") or (
            "/usr/bin/psql" if Path("/usr/bin/psql").exists() else None
        )

    def stage(self) -> tuple[str, int]:
        with connect(self.url) as conn:
            server = str(scalar(conn, "SELECT current_setting('server_version')")).split()[0]
            version = int(scalar(conn, "SELECT current_setting('server_version_num')"))
            for statement in SETUP:
                execute(conn, statement)
            started = time.perf_counter()
            execute(conn, "SELECT setseed(0.42)")
            execute(conn, FILL_STAGE.format(rows=self.rows, batch_size=self.batch_size))
            execute(conn, "CREATE INDEX ON stage (batch)")
            for table in ("stage", "departments", "jobs"):
                execute(conn, f"VACUUM ANALYZE {table}")
            execute(conn, "CREATE SCHEMA ref")
        took = time.perf_counter() - started
        log(f"PostgreSQL {server}: {self.rows:,} rows staged in {took:.1f} s")
        return server, version

    def measure(self) -> Results:
        server, version = self.stage()
        for c in CASES:
            if version < c.min_version:
                self.skipped[c.key] = (
                    f"skipped: needs PostgreSQL {c.min_version // 10000}, this server is {server}"
                )
        cases = [c for c in CASES if c.key not in self.skipped]
        self.timings = {c.key: [] for c in cases}
        self.timings[REF_INSERT] = []
        self.reads = {c.key: Reads([], [], [], []) for c in cases if c.summary in COMPACT}
        if self.psql is None:
            self.skipped[REF_COPY] = self.skipped[REF_COPY_FK] = "skipped: psql not found"
        else:
            self.timings[REF_COPY], self.timings[REF_COPY_FK] = [], []
        items: list[Case | str] = [*cases, REFS]
        with tempfile.TemporaryDirectory(prefix="hrcore-wpo-") as folder:
            csv = Path(folder) / "hired_employees.csv"
            if self.psql is not None:
                export_csv(self.url, csv, self.psql)
            for round_ in range(self.repeat):
                shift = round_ * len(items) // self.repeat  # no item always runs first
                for item in items[shift:] + items[:shift]:
                    if isinstance(item, Case):
                        self.run_case(item, last=round_ == self.repeat - 1)
                    else:
                        self.run_references(csv)
        reference = self.answers.get("direct")
        for label, answer in self.answers.items():
            if reference is not None and answer != reference:
                raise SystemExit(f"hires by quarter from {label} differs from the table's")
        return Results(
            server,
            self.rows,
            self.batch_size,
            self.repeat,
            self.timings,
            self.reads,
            self.queries,
            self.skipped,
        )

    def record(self, key: str, timing: Timing) -> None:
        self.timings[key].append(timing)
        cpu = f", backend CPU {timing.cpu:.2f} s" if timing.cpu is not None else ""
        log(f"  run {len(self.timings[key])}, {key}: {timing.seconds:.2f} s{cpu}")

    def run_case(self, case: Case, *, last: bool) -> None:
        s, url, rows = f"case_{case.key.lower()}", self.url, self.rows
        with connect(url) as conn:
            fresh_schema(conn, s, case.ddl(s))
        self.record(case.key, write_batches(url, case, s, self.batches))
        with connect(url) as conn:
            written = scalar(conn, f"SELECT count(*) FROM {s}.hired_employees")
            total = rows if case.summary == "none" else summary_total(conn, case, s)
        if written != rows or total != rows:
            raise SystemExit(f"case {case.key}: {written} rows written, summary {total}")
        if case.summary in COMPACT:
            measure_reads(url, case, s, self.reads[case.key], self.answers)
        if not last:
            return
        if case.key == "D":
            self.queries["D"], self.answers["D"] = time_query(url, COUNTS["keyed"], s)
        if case.key == "A":
            self.queries["direct"], self.answers["direct"] = time_query(url, DIRECT_COUNTS, s)
        if case.checks:
            check_integrity(url, case, s, rows)

    def run_references(self, csv: Path) -> None:
        pk_only = TABLE_DDL.format(s="ref", fks="").replace("hired_employees", "pk_only")
        with_fks = TABLE_DDL.format(s="ref", fks=FKS["enforced"])
        with connect(self.url) as conn:
            fresh_schema(conn, "ref", [pk_only, with_fks.replace("hired_employees", "pk_fks")])
            self.record(
                REF_INSERT,
                timed_statements(
                    conn,
                    [
                        "INSERT INTO ref.pk_only "
                        "SELECT id, name, datetime, department_id, job_id FROM stage"
                    ],
                ),
            )
            if self.psql is None:
                return
            execute(conn, "TRUNCATE ref.pk_only")
            execute(conn, "CHECKPOINT")
            self.record(REF_COPY, psql_copy(self.url, self.psql, "ref.pk_only", csv))
            execute(conn, "CHECKPOINT")
            self.record(REF_COPY_FK, psql_copy(self.url, self.psql, "ref.pk_fks", csv))
            for table in ("pk_only", "pk_fks"):
                if scalar(conn, f"SELECT count(*) FROM ref.{table}") != self.rows:
                    raise SystemExit(f"\\copy into ref.{table} lost rows")


def markdown(r: Results) -> str:
    med = {key: statistics.median(t.seconds for t in ts) for key, ts in r.timings.items()}
    cpu = {
        key: statistics.median(t.cpu for t in ts if t.cpu is not None)
        for key, ts in r.timings.items()
        if all(t.cpu is not None for t in ts)
    }
    a, copy = med["A"], med.get(REF_COPY)
    batches = -(-r.rows // r.batch_size)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, shared), PostgreSQL {r.server}: first load of {r.rows:,} "
        f"rows (ids shuffled over the file) as {batches:,} statements of {r.batch_size:,} "
        "rows, one transaction each, from Python over ADBC; only those statements are "
        "timed, each run on a fresh table (autovacuum off on it); medians of "
        f"{r.repeat} runs, the cases' order rotated from run to run. `time vs A` is "
        "seconds / A's seconds; `speed vs \\copy` is the PK-only `psql \\copy` seconds / "
        "seconds; `backend CPU` is the CPU time of the server process running the "
        "statements (less sensitive than seconds to other work on the machine).",
        "",
        "| case | what | seconds | rows/s | time vs A | speed vs \\copy PK-only "
        "| backend CPU s | CPU vs A |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def row(key: str, what: str) -> str:
        if key in r.skipped:
            return f"| {key} | {what} ({r.skipped[key]}) | - | - | - | - | - | - |"
        s = med[key]
        vs_copy = f"{copy / s:.2f}x" if copy is not None else "-"
        c = f"{cpu[key]:.2f} | {cpu[key] / cpu['A']:.2f}x" if key in cpu and "A" in cpu else "- | -"
        return f"| {key} | {what} | {s:.2f} | {r.rows / s:,.0f} | {s / a:.2f}x | {vs_copy} | {c} |"

    lines += [row(c.key, c.what) for c in CASES]
    lines += [row(key, what) for key, what in REFERENCES.items()]
    lines += [
        "",
        f"Reading and compacting the summary after that load (hires by quarter of {YEAR}, "
        "joined to department and job names, fetched over ADBC; queries are medians of 5, "
        f"then medians over the {r.repeat} runs):",
        "",
        "| case | what | seconds |",
        "|---|---|---:|",
    ]
    if "D" in r.queries:
        lines.append(f"| D | query over the keyed hire_counts | {r.queries['D']:.3f} |")
    for key, reads in r.reads.items():
        unit = "delta rows" if key == "E" else "array rows (one per statement)"
        size = f"{statistics.median(reads.size):,.0f} {unit}"
        lines += [
            f"| {key} | query over hire_counts (empty) UNION ALL {size}, before compaction "
            f"| {statistics.median(reads.before):.3f} |",
            f"| {key} | compaction of those {size} into the keyed hire_counts, one statement "
            f"| {statistics.median(reads.compact):.3f} |",
            f"| {key} | query after compaction | {statistics.median(reads.after):.3f} |",
        ]
    if "direct" in r.queries:
        lines.append(
            f"| - | the same query straight from hired_employees ({r.rows:,} rows, no summary) "
            f"| {r.queries['direct']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--readme", action="store_true", help="print the Markdown tables for README.md"
    )
    args = parser.parse_args()
    if args.rows < 1 or not 1 <= args.batch_size <= 1000 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1, --batch-size 1..1000")
    results = run(hrcore.database_url(args.database_url), args.rows, args.batch_size, args.repeat)
    text = markdown(results)
    if args.readme:
        print(text)
    else:  # the same tables, without the Markdown
        for line in text.splitlines():
            if line.startswith("|---"):
                continue
            print("  ".join(c.strip() for c in line.strip("|").split(" | ")) if line else line)


if __name__ == "__main__":
    main()
