"""hrcore: move HR CSV files (departments, jobs, hired employees) into PostgreSQL.

report = hrcore.load("s3://bucket/hired_employees.csv", table="hired_employees")
"""

from hrcore._backup import Backup, backup, backup_all, list_backups, restore
from hrcore._db import ConnectionPool, connect, database_url
from hrcore._errors import (
    DatabaseError,
    HrcoreError,
    LoadFailedError,
    NotFoundError,
    RestoreError,
    SourceNotFoundError,
    SourceUnavailableError,
    UsageError,
)
from hrcore._health import StoredFile, check_database, list_files
from hrcore._ledger import Rejection
from hrcore._loader import (
    MAX_BATCH_SIZE,
    MIN_BATCH_SIZE,
    Progress,
    check_batch_size,
    load,
    load_all,
)
from hrcore._metrics import departments_above_mean, hires_by_quarter
from hrcore._queries import (
    get_load,
    get_row,
    get_row_json,
    list_loads,
    list_rejections,
    list_rows,
    list_rows_json,
)
from hrcore._report import LoadReport
from hrcore._rows import RejectedRow, RowsReport, load_rows
from hrcore._sample import write_sample
from hrcore._schema import init_schema
from hrcore._specs import TABLES, Column, TableSpec, get_table
from hrcore._validate import REASONS

__all__ = [
    "MAX_BATCH_SIZE",
    "MIN_BATCH_SIZE",
    "REASONS",
    "TABLES",
    "Backup",
    "Column",
    "ConnectionPool",
    "DatabaseError",
    "HrcoreError",
    "LoadFailedError",
    "LoadReport",
    "NotFoundError",
    "Progress",
    "RejectedRow",
    "Rejection",
    "RestoreError",
    "RowsReport",
    "SourceNotFoundError",
    "SourceUnavailableError",
    "StoredFile",
    "TableSpec",
    "UsageError",
    "backup",
    "backup_all",
    "check_batch_size",
    "check_database",
    "connect",
    "database_url",
    "departments_above_mean",
    "get_load",
    "get_row",
    "get_row_json",
    "get_table",
    "hires_by_quarter",
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
    "restore",
    "write_sample",
]
