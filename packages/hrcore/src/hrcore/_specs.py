"""The three tables, declared once: they drive the DDL, the validation and the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hrcore._errors import UsageError

ColumnKind = Literal["id", "text", "datetime"]

MAX_ID = 2_147_483_647  # PostgreSQL integer

_SQL_TYPES: dict[ColumnKind, str] = {"id": "integer", "text": "text", "datetime": "timestamptz"}


@dataclass(frozen=True, slots=True)
class Column:
    """One CSV field and the table column it lands in."""

    name: str
    kind: ColumnKind
    references: str | None = None  # table whose id this column must name

    @property
    def sql_type(self) -> str:
        return _SQL_TYPES[self.kind]

    @property
    def unknown_reason(self) -> str:
        """Rejection reason when a reference names no row, e.g. ``unknown_department``."""
        assert self.references is not None
        return "unknown_" + TABLE_NOUNS[self.references]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table: its CSV file, its columns in file order, and its key."""

    name: str
    file_name: str
    columns: tuple[Column, ...]
    key: str = "id"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def value_columns(self) -> list[str]:
        """Every column but the key: what an upsert may change."""
        return [c.name for c in self.columns if c.name != self.key]

    @property
    def references(self) -> list[Column]:
        return [c for c in self.columns if c.references is not None]

    def ddl(self) -> str:
        """Idempotent CREATE TABLE with its primary key (references are kept by
        statement-level triggers: see ``_integrity``)."""
        lines = [f"{c.name} {c.sql_type} NOT NULL" for c in self.columns]
        lines[0] += " PRIMARY KEY"
        body = ",\n    ".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {body}\n)"


DEPARTMENTS = TableSpec(
    "departments",
    "departments.csv",
    (Column("id", "id"), Column("department", "text")),
)
JOBS = TableSpec("jobs", "jobs.csv", (Column("id", "id"), Column("job", "text")))
HIRED_EMPLOYEES = TableSpec(
    "hired_employees",
    "hired_employees.csv",
    (
        Column("id", "id"),
        Column("name", "text"),
        Column("datetime", "datetime"),
        Column("department_id", "id", references="departments"),
        Column("job_id", "id", references="jobs"),
    ),
)

#: In dependency order: a table comes after the tables it references.
TABLES: dict[str, TableSpec] = {t.name: t for t in (DEPARTMENTS, JOBS, HIRED_EMPLOYEES)}
TABLE_NOUNS = {"departments": "department", "jobs": "job", "hired_employees": "employee"}
_ALIASES = {"employees": "hired_employees"}


def get_table(name: str) -> TableSpec:
    """The spec of a table by name (``employees`` is accepted for ``hired_employees``)."""
    spec = TABLES.get(_ALIASES.get(name, name))
    if spec is None:
        known = ", ".join(TABLES)
        raise UsageError(f"unknown table {name!r}: expected one of {known}")
    return spec


def table_for_file(file_name: str) -> TableSpec | None:
    """The table a file name such as ``jobs.csv`` belongs to, if any."""
    return next((t for t in TABLES.values() if t.file_name == file_name), None)
