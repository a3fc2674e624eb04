"""Idempotent creation of the data tables and the load ledger."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hrcore import _db
from hrcore._db import Connection, execute, scalar
from hrcore._pool import ConnectionPool
from hrcore._report import STATUSES
from hrcore._specs import TABLES

LEDGER_DDL = (
    """CREATE TABLE IF NOT EXISTS load_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text NOT NULL,
    source text NOT NULL,
    object_identity text,
    batch_size integer NOT NULL,
    status text NOT NULL DEFAULT 'running',
    owner_pid integer,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    rows_read bigint NOT NULL DEFAULT 0,
    rows_inserted bigint NOT NULL DEFAULT 0,
    rows_updated bigint NOT NULL DEFAULT 0,
    rows_unchanged bigint NOT NULL DEFAULT 0,
    rows_rejected bigint NOT NULL DEFAULT 0,
    batches integer NOT NULL DEFAULT 0,
    error text
)""",
    """CREATE TABLE IF NOT EXISTS rejected_rows (
    load_id bigint NOT NULL REFERENCES load_runs (id) ON DELETE CASCADE,
    line_number bigint NOT NULL,
    raw text NOT NULL,
    reasons text[] NOT NULL,
    PRIMARY KEY (load_id, line_number)
)""",
    """CREATE TABLE IF NOT EXISTS load_batches (
    load_id bigint NOT NULL REFERENCES load_runs (id) ON DELETE CASCADE,
    batch integer NOT NULL,
    rows_read integer NOT NULL,
    rows_inserted integer NOT NULL,
    rows_updated integer NOT NULL,
    rows_unchanged integer NOT NULL,
    rows_rejected integer NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (load_id, batch)
)""",
    "CREATE SCHEMA IF NOT EXISTS hrcore_staging",
    # added by later versions (a ledger made before them gets them here)
    "ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'load'",
    "ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS same_as bigint",
    """CREATE INDEX IF NOT EXISTS load_runs_table ON load_runs (table_name, id DESC)
    WHERE status <> 'skipped'""",
    "CREATE INDEX IF NOT EXISTS load_runs_status ON load_runs (status) WHERE status = 'running'",
)

STAGING_SCHEMA = "hrcore_staging"  # unlogged tables of rows being loaded, one per load
# hire_counts: hires per UTC year, quarter, department and job, kept exact by
# statement-level triggers on hired_employees, so that the metrics read a few
# thousand rows instead of millions. Each database session counts into a shard
# of its own (its backend pid modulo SHARDS), so parallel writers rarely wait on
# each other's counters; the metrics add the shards up. {sign} is - for old rows.
SHARDS = 16
_COUNT_ROWS = """
CREATE OR REPLACE FUNCTION hrcore_count_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hire_counts AS c (year, quarter, department_id, job_id, shard, hires)
    SELECT extract(year FROM datetime AT TIME ZONE 'UTC')::int,
           extract(quarter FROM datetime AT TIME ZONE 'UTC')::int,
           department_id, job_id,
           (pg_backend_pid() % {shards})::smallint,
           {sign}count(*)
    FROM {name}_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (year, quarter, department_id, job_id, shard)
    DO UPDATE SET hires = c.hires + excluded.hires;
    RETURN NULL;
END $$"""
COUNTING_FUNCTIONS = (
    _COUNT_ROWS.format(name="new", sign="", shards=SHARDS),
    _COUNT_ROWS.format(name="old", sign="-", shards=SHARDS),
    """CREATE OR REPLACE FUNCTION hrcore_count_none() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM hire_counts;
    RETURN NULL;
END $$""",
)
HIRE_COUNTS_DDL = (
    """CREATE TABLE hire_counts (
    year integer NOT NULL,
    quarter integer NOT NULL,
    department_id integer NOT NULL,
    job_id integer NOT NULL,
    shard smallint NOT NULL,
    hires bigint NOT NULL,
    PRIMARY KEY (year, quarter, department_id, job_id, shard)
)""",
    *COUNTING_FUNCTIONS,
    """CREATE TRIGGER hire_counts_insert AFTER INSERT ON hired_employees
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hrcore_count_new()""",
    """CREATE TRIGGER hire_counts_update_old AFTER UPDATE ON hired_employees
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION hrcore_count_old()""",
    """CREATE TRIGGER hire_counts_update_new AFTER UPDATE ON hired_employees
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hrcore_count_new()""",
    """CREATE TRIGGER hire_counts_delete AFTER DELETE ON hired_employees
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION hrcore_count_old()""",
    """CREATE TRIGGER hire_counts_truncate AFTER TRUNCATE ON hired_employees
    FOR EACH STATEMENT EXECUTE FUNCTION hrcore_count_none()""",
    # the rows already there when the summary is first made
    """INSERT INTO hire_counts
    SELECT extract(year FROM datetime AT TIME ZONE 'UTC')::int,
           extract(quarter FROM datetime AT TIME ZONE 'UTC')::int,
           department_id, job_id, 0, count(*)
    FROM hired_employees GROUP BY 1, 2, 3, 4""",
)
_SCHEMA_LOCK = 0x68726330  # advisory lock key: concurrent first runs create the schema once


def _allow_every_status(conn: Connection) -> None:
    """Make ``load_runs.status`` accept every status of this version (the list grew)."""
    current = scalar(
        conn,
        """SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'load_runs'::regclass AND conname = 'load_runs_status_check'""",
    )
    if current is not None and all(f"'{s}'" in current for s in STATUSES):
        return
    execute(conn, "ALTER TABLE load_runs DROP CONSTRAINT IF EXISTS load_runs_status_check")
    allowed = ", ".join(f"'{s}'" for s in STATUSES)
    execute(
        conn,
        "ALTER TABLE load_runs ADD CONSTRAINT load_runs_status_check "
        f"CHECK (status IN ({allowed}))",
    )


_READY: set[str] = set()  # database URLs whose schema this process has made sure of


def ensure_schema(conn: Connection, url: str) -> None:
    """:func:`init_schema`, once per database and process."""
    if url not in _READY:
        init_schema(conn)
        _READY.add(url)


@contextmanager
def ready(
    database_url: str | None = None, pool: ConnectionPool | None = None
) -> Iterator[Connection]:
    """A connection to a database whose tables exist (made on first use): one of
    ``pool`` if one is given, else one of its own."""
    url = pool.url if pool is not None else _db.database_url(database_url)
    with _db.connect(url, pool=pool) as conn:
        ensure_schema(conn, url)
        yield conn


def init_schema(conn: Connection) -> None:
    """Create the three tables and the ledger if they do not exist (safe to repeat)."""
    execute(conn, "BEGIN")
    try:
        execute(conn, f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        for spec in TABLES.values():
            execute(conn, spec.ddl())
        for statement in LEDGER_DDL:
            execute(conn, statement)
        _allow_every_status(conn)
        if scalar(conn, "SELECT to_regclass('hire_counts') IS NULL"):
            for statement in HIRE_COUNTS_DDL:
                execute(conn, statement)
        else:  # an older version's functions are replaced
            for statement in COUNTING_FUNCTIONS:
                execute(conn, statement)
        execute(conn, "COMMIT")
    except BaseException:
        execute(conn, "ROLLBACK")
        raise
