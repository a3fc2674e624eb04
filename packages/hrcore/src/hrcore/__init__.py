"""hrcore: move HR CSV files (departments, jobs, hired employees) into PostgreSQL.

report = hrcore.load("s3://bucket/hired_employees.csv", table="hired_employees")
"""

from typing import TYPE_CHECKING, Any

from hrcore._backup import Backup, backup, backup_all, list_backups, restore
from hrcore._db import Limits, connect, database_url, redact
from hrcore._embedded import data_dir as embedded_data_dir
from hrcore._embedded import start as start_embedded
from hrcore._embedded import stop as stop_embedded
from hrcore._errors import (
    BusyError,
    DatabaseError,
    HrcoreError,
    LoadCancelledError,
    LoadFailedError,
    NotFoundError,
    RestoreError,
    SourceFormatError,
    SourceNotFoundError,
    SourceUnavailableError,
    UsageError,
)
from hrcore._figures import above_mean_chart, hires_by_quarter_chart, rejections_chart
from hrcore._health import check_database
from hrcore._html_report import metrics_report
from hrcore._ledger import Rejection
from hrcore._metrics import departments_above_mean, hires_by_quarter, mean_hires, rebuild_summary
from hrcore._pipeline import (
    MAX_BATCH_SIZE,
    MIN_BATCH_SIZE,
    check_batch_size,
    check_writers,
    load,
    load_all,
    tables_for,
)
from hrcore._pool import ConnectionPool
from hrcore._queries import (
    get_load,
    get_row,
    get_row_json,
    list_loads,
    list_rejections,
    list_rows,
    list_rows_json,
)
from hrcore._replica import ReplicaPool, ReplicaState
from hrcore._report import Attempt, LoadReport
from hrcore._rows import RejectedRow, RowOutcome, RowsReport, load_rows
from hrcore._sample import write_sample
from hrcore._schema import init_schema
from hrcore._specs import TABLES, Column, TableSpec, get_table
from hrcore._stage import Progress
from hrcore._storage import SAMPLE_FOLDER, StoredFile, default_source, list_files
from hrcore._validate import REASONS

if TYPE_CHECKING:
    from hrcore._queue import WorkerSettings, enqueue, run_worker

_QUEUE_NAMES = ("WorkerSettings", "enqueue", "run_worker")


def __getattr__(name: str) -> Any:
    """The job queue's names, imported when first used: procrastinate and psycopg
    take about a fifth of the start of a process that loads without the queue."""
    if name in _QUEUE_NAMES:
        from hrcore import _queue

        return getattr(_queue, name)
    raise AttributeError(f"module 'hrcore' has no attribute {name!r}")


__all__ = [
    "MAX_BATCH_SIZE",
    "MIN_BATCH_SIZE",
    "REASONS",
    "SAMPLE_FOLDER",
    "TABLES",
    "Attempt",
    "Backup",
    "BusyError",
    "Column",
    "ConnectionPool",
    "DatabaseError",
    "HrcoreError",
    "Limits",
    "LoadCancelledError",
    "LoadFailedError",
    "LoadReport",
    "NotFoundError",
    "Progress",
    "RejectedRow",
    "Rejection",
    "ReplicaPool",
    "ReplicaState",
    "RestoreError",
    "RowOutcome",
    "RowsReport",
    "SourceFormatError",
    "SourceNotFoundError",
    "SourceUnavailableError",
    "StoredFile",
    "TableSpec",
    "UsageError",
    "WorkerSettings",
    "above_mean_chart",
    "backup",
    "backup_all",
    "check_batch_size",
    "check_database",
    "check_writers",
    "connect",
    "database_url",
    "default_source",
    "departments_above_mean",
    "embedded_data_dir",
    "enqueue",
    "get_load",
    "get_row",
    "get_row_json",
    "get_table",
    "hires_by_quarter",
    "hires_by_quarter_chart",
    "init_schema",
    "list_backups",
    "list_files",
    "list_loads",
    "list_rejections",
    "list_rows",
    "list_rows_json",
    "load",
    "load_all",
    "load_rows",
    "mean_hires",
    "metrics_report",
    "rebuild_summary",
    "redact",
    "rejections_chart",
    "restore",
    "run_worker",
    "start_embedded",
    "stop_embedded",
    "tables_for",
    "write_sample",
]
