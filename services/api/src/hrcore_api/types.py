"""Request and response types, derived from the library's table specs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from hrcore import MAX_BATCH_SIZE, TableSpec
from msgspec import Meta

#: URL path of each table
TABLE_PATHS = {"departments": "departments", "jobs": "jobs", "employees": "hired_employees"}
#: what ``/backups/{table}`` and ``/restores/{table}`` take: a path or a table name
TableName = Literal["departments", "jobs", "employees", "hired_employees"]

#: an integer from 1 to 1000; as in JSON Schema, 500.0 is an integer too
BatchSize = (
    Annotated[int, Meta(ge=1, le=MAX_BATCH_SIZE)]
    | Annotated[float, Meta(ge=1, le=MAX_BATCH_SIZE, multiple_of=1)]
)
#: an S3 key's limit (1024 bytes), which the library holds every location to: a longer
#: key or uri is a 400 before anything is asked of S3 or the disk
MAX_LOCATION = 1024
Location = Annotated[str, Meta(min_length=1, max_length=MAX_LOCATION)]
#: a key holds no backslash and no NUL (the other rules, no '..' part, no leading '/',
#: no scheme, are checked by the route: a pattern with lookarounds helps no client)
KEY_PATTERN = r"^[^\\\x00]*$"
Key = Annotated[str, Meta(min_length=1, max_length=MAX_LOCATION, pattern=KEY_PATTERN)]


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Optional body of ``POST /{table}/batch``: which file in the bucket, and batch size."""

    key: Key | msgspec.UnsetType = msgspec.UNSET  # a string when given: null is a 400
    batch_size: BatchSize = MAX_BATCH_SIZE


class RestoreRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of ``POST /restores/{table}``: the backup file to restore from."""

    uri: Location


class Page(msgspec.Struct, kw_only=True):
    """One page of a listing, and the path of the next one (null at the end)."""

    items: list[Any]
    next: str | None


class RawPage(msgspec.Struct, kw_only=True):
    """A :class:`Page` whose items are JSON text already (made by the database)."""

    items: msgspec.Raw
    next: str | None


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error answer: a short name (``not_found``) and what went wrong."""

    error: str
    detail: str


class Items(msgspec.Struct, kw_only=True):
    items: list[Any]


def row_type(spec: TableSpec) -> type[msgspec.Struct]:
    """A row as the API takes it: the CSV's fields by name.

    Values may be strings, numbers or null, so that a bad value (an id of 1.5) reaches
    the library's validation and is answered with its reason instead of failing the
    whole request; unknown field names make the request malformed.
    """
    fields = [(name, int | float | str | None, None) for name in spec.column_names]
    name = "".join(part.title() for part in spec.name.split("_")) + "Row"
    return msgspec.defstruct(name, fields, forbid_unknown_fields=True, kw_only=True)


def rows_type(spec: TableSpec) -> type[msgspec.Struct]:
    """The body of ``POST /{table}``: ``{"rows": [...]}`` with 1 to 1000 rows."""
    row = row_type(spec)
    rows = Annotated[list[row], Meta(min_length=1, max_length=MAX_BATCH_SIZE)]  # type: ignore[valid-type]
    name = "".join(part.title() for part in spec.name.split("_")) + "Rows"
    return msgspec.defstruct(name, [("rows", rows)], forbid_unknown_fields=True)
