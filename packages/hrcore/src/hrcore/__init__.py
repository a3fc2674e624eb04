"""hrcore: move HR CSV files (departments, jobs, hired employees) into PostgreSQL.

report = hrcore.load("s3://bucket/hired_employees.csv", table="hired_employees")
"""

from hrcore._backup import Backup, backup, backup_all, restore
from hrcore._db import connect, database_url
from hrcore._errors import (
    DatabaseError,
    HrcoreError,
    LoadFailedError,
    RestoreError,
    SourceNotFoundError,
    UsageError,
)
from hrcore._loader import (
    MAX_BATCH_SIZE,
    MIN_BATCH_SIZE,
    Progress,
    check_batch_size,
    load,
    load_all,
)
from hrcore._metrics import departments_above_mean, hires_by_quarter
from hrcore._report import LoadReport
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
    "DatabaseError",
    "HrcoreError",
    "LoadFailedError",
    "LoadReport",
    "Progress",
    "RestoreError",
    "SourceNotFoundError",
    "TableSpec",
    "UsageError",
    "backup",
    "backup_all",
    "check_batch_size",
    "connect",
    "database_url",
    "departments_above_mean",
    "get_table",
    "hires_by_quarter",
    "init_schema",
    "load",
    "load_all",
    "restore",
    "write_sample",
]
