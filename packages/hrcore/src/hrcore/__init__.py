"""hrcore: move HR CSV files (departments, jobs, hired employees) into PostgreSQL.

report = hrcore.load("s3://bucket/hired_employees.csv", table="hired_employees")
"""

from hrcore._db import connect, database_url
from hrcore._errors import (
    DatabaseError,
    HrcoreError,
    LoadFailedError,
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
    "Column",
    "DatabaseError",
    "HrcoreError",
    "LoadFailedError",
    "LoadReport",
    "Progress",
    "SourceNotFoundError",
    "TableSpec",
    "UsageError",
    "check_batch_size",
    "connect",
    "database_url",
    "get_table",
    "init_schema",
    "load",
    "load_all",
    "write_sample",
]
