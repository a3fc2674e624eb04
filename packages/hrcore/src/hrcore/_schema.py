"""Idempotent creation of the data tables and the load ledger."""

from __future__ import annotations

from hrcore._db import Connection, execute
from hrcore._specs import TABLES

LEDGER_DDL = (
    """CREATE TABLE IF NOT EXISTS load_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text NOT NULL,
    source text NOT NULL,
    object_identity text,
    batch_size integer NOT NULL,
    status text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'succeeded', 'failed')),
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
    "CREATE INDEX IF NOT EXISTS load_runs_status ON load_runs (status) WHERE status = 'running'",
)

STAGING_SCHEMA = "hrcore_staging"  # unlogged tables of rows being loaded, one per load
_SCHEMA_LOCK = 0x68726330  # advisory lock key: concurrent first runs create the schema once


def init_schema(conn: Connection) -> None:
    """Create the three tables and the ledger if they do not exist (safe to repeat)."""
    execute(conn, "BEGIN")
    try:
        execute(conn, f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        for spec in TABLES.values():
            execute(conn, spec.ddl())
        for statement in LEDGER_DDL:
            execute(conn, statement)
        execute(conn, "COMMIT")
    except BaseException:
        execute(conn, "ROLLBACK")
        raise
