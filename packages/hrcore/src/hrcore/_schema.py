"""Idempotent creation of the data tables and the load ledger."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hrcore import _changes, _db, _integrity, _summary
from hrcore._db import Connection, execute, scalar
from hrcore._errors import DatabaseError
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
    # the change counters of the table and its references when the load left them
    # (null when someone else wrote meanwhile): see _changes
    "ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS table_state text",
    """CREATE INDEX IF NOT EXISTS load_runs_table ON load_runs (table_name, id DESC)
    WHERE status <> 'skipped'""",
    "CREATE INDEX IF NOT EXISTS load_runs_status ON load_runs (status) WHERE status = 'running'",
    # queued loads (see _queue): the procrastinate job that runs it, its attempt (0 while
    # queued), the worker of that attempt; the attempts before it that stopped
    "ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS job_id bigint",
    "ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS attempt integer NOT NULL DEFAULT 1",
    "ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS worker text",
    """CREATE INDEX IF NOT EXISTS load_runs_active ON load_runs (table_name, source)
    WHERE status IN ('queued', 'running')""",
    """CREATE TABLE IF NOT EXISTS load_attempts (
    load_id bigint NOT NULL REFERENCES load_runs (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    worker text,
    status text NOT NULL,
    error text,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    batches integer NOT NULL,
    rows_read bigint NOT NULL,
    rows_written bigint NOT NULL,
    PRIMARY KEY (load_id, attempt)
)""",
    # a load of many part files (see _parts): its phase, the change counters when it
    # began, and its parts
    "ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS phase text",
    "ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS counters_before text",
    """CREATE TABLE IF NOT EXISTS load_parts (
    load_id bigint NOT NULL REFERENCES load_runs (id) ON DELETE CASCADE,
    part integer NOT NULL,
    uri text NOT NULL,
    identity text NOT NULL,
    status text NOT NULL DEFAULT 'queued',
    skip boolean NOT NULL DEFAULT false,
    same_as bigint,
    attempts integer NOT NULL DEFAULT 0,
    worker text,
    rows_read bigint,
    lines bigint,
    batches integer,
    line_offset bigint,
    batch_offset integer,
    error text,
    PRIMARY KEY (load_id, part)
)""",
    # a part's valid ids (the last load of a source keeps them), and its rejected rows
    "ALTER TABLE load_parts ADD COLUMN IF NOT EXISTS ids bigint[]",
    "ALTER TABLE load_parts ADD COLUMN IF NOT EXISTS rows_rejected bigint",
    # which job of a load of parts took its last step (phase:part), so that it alone,
    # run again, queues the jobs after that step again
    "ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS advanced_by text",
    # what a file's first pass found: the lines that start with an id (progress)
    "ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS rows_expected bigint",
)

STAGING_SCHEMA = "hrcore_staging"  # unlogged tables of rows being loaded, one per load
# what a database made by this version holds: a load's expected rows (10); loads of
# many parts (7, 8, 9); queued loads and
# procrastinate's tables (6); summary deltas stored uncompressed (5);
# cheaper triggers (4); change counters (3); integrity and the summary kept by
# statement-level triggers (2); row-level foreign keys and a sharded keyed summary (1)
SCHEMA_VERSION = 10
_V1_OBJECTS = (  # the summary of version 1, replaced
    *(
        f"DROP TRIGGER IF EXISTS {name} ON hired_employees"
        for name in (
            "hire_counts_insert",
            "hire_counts_update_old",
            "hire_counts_update_new",
            "hire_counts_delete",
            "hire_counts_truncate",
        )
    ),
    "DROP FUNCTION IF EXISTS hrcore_count_new(), hrcore_count_old(), hrcore_count_none()",
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
    """Create the three tables, the ledger, the summary and the triggers that keep
    integrity and the summary, or bring an older version's up to date (safe to
    repeat; a database already at this version is left alone, with reads only: so
    a read-only replica of a database at this version passes too)."""
    if _version(conn) == SCHEMA_VERSION:
        return
    if scalar(conn, "SELECT pg_is_in_recovery()"):
        raise DatabaseError(
            f"the database is a read-only replica whose tables are not at version "
            f"{SCHEMA_VERSION}: make them on its primary first (hrcore db init)"
        )
    execute(conn, "BEGIN")
    try:
        execute(conn, f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        execute(conn, "CREATE TABLE IF NOT EXISTS hrcore_schema (version integer NOT NULL)")
        if scalar(conn, "SELECT max(version) FROM hrcore_schema") != SCHEMA_VERSION:
            _make(conn)
            execute(conn, "DELETE FROM hrcore_schema")
            execute(conn, f"INSERT INTO hrcore_schema VALUES ({SCHEMA_VERSION:d})")
        execute(conn, "COMMIT")
    except BaseException:
        execute(conn, "ROLLBACK")
        raise


def _version(conn: Connection) -> int | None:
    if scalar(conn, "SELECT to_regclass('hrcore_schema') IS NULL"):
        return None
    found = scalar(conn, "SELECT max(version) FROM hrcore_schema")
    return None if found is None else int(found)


def _make(conn: Connection) -> None:
    for spec in TABLES.values():
        execute(conn, spec.ddl())
    for statement in LEDGER_DDL:
        execute(conn, statement)
    _allow_every_status(conn)
    for statement in _V1_OBJECTS:
        execute(conn, statement)
    old_summary = scalar(
        conn,
        """SELECT count(*) FROM information_schema.columns
           WHERE table_name = 'hire_counts' AND column_name = 'shard'
           AND table_schema = current_schema()""",
    )
    if old_summary:
        execute(conn, "DROP TABLE hire_counts")
    for statement in _summary.TABLES_DDL:
        execute(conn, statement)
    employees = TABLES["hired_employees"]
    _integrity.replace_foreign_keys(conn, employees)
    for statement in _changes.ddl(counted_by_own_triggers=employees):
        execute(conn, statement)
    counting = _changes.bump(employees.name)
    triggers = _integrity.referencing_triggers(employees, _summary.trigger_statements(), counting)
    for statement in triggers:
        execute(conn, statement)
    for statement in _integrity.referenced_triggers(employees):
        execute(conn, statement)
    _summary.refill(conn)  # the rows already there when the summary is (re)made
    if scalar(conn, "SELECT to_regclass('procrastinate_jobs') IS NULL"):
        # the job queue's tables, functions and types, as procrastinate ships them
        from procrastinate.schema import SchemaManager  # only here: slow to import

        _db.run_script(conn, SchemaManager.get_schema())
