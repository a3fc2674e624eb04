"""Reading back what was stored: table rows, loads and their rejected rows, pages at a time.

Pages are keyset-based (``after`` an id, or a line number), so walking a whole
table never skips or repeats a row, however it changes meanwhile.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from hrcore import _ledger
from hrcore._db import fetch_frame, small_query
from hrcore._errors import NotFoundError, UsageError
from hrcore._pool import ConnectionPool
from hrcore._report import LoadReport
from hrcore._schema import ready
from hrcore._specs import TableSpec, get_table

MAX_PAGE = 1000


def check_limit(limit: int) -> int:
    """The one place where a page size is checked: an int from 1 to 1000."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be between 1 and {MAX_PAGE}, not {limit!r}")
    return limit


def list_rows(
    table: str,
    *,
    limit: int = 100,
    after: int | None = None,
    database_url: str | None = None,
    pool: ConnectionPool | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of ``table`` in id order, with ids above ``after``."""
    spec, limit = get_table(table), check_limit(limit)
    with ready(database_url, pool) as conn:
        frame = fetch_frame(
            conn,
            f"SELECT {', '.join(spec.column_names)} FROM {spec.name} "
            f"WHERE {spec.key} > $1 ORDER BY {spec.key} LIMIT $2",
            (after if after is not None else 0, limit),
        )
    return frame.to_dicts()


def get_row(
    table: str, row_id: int, *, database_url: str | None = None, pool: ConnectionPool | None = None
) -> dict[str, Any]:
    """One row of ``table`` by id; :class:`NotFoundError` when there is none."""
    spec = get_table(table)
    with ready(database_url, pool) as conn:
        frame = fetch_frame(
            conn,
            f"SELECT {', '.join(spec.column_names)} FROM {spec.name} WHERE {spec.key} = $1",
            (row_id,),
        )
    if frame.height == 0:
        raise NotFoundError(f"no {spec.name} row with id {row_id}")
    return frame.row(0, named=True)


def _row_id(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{name} must be an integer of 0 or more, not {value!r}")
    return value


_ISO_SECOND = 'YYYY-MM-DD"T"HH24:MI:SS'


def _json_columns(spec: TableSpec) -> str:
    """The select list of a row as the API shows it: datetimes in UTC, ISO 8601 with
    a ``Z`` (and a fraction only when there is one). ``to_char`` costs the server
    less than ``to_json`` of a ``timestamptz``."""
    columns = []
    for column in spec.columns:
        name = column.name
        if column.kind == "datetime":
            utc = f"{name} AT TIME ZONE 'UTC'"
            name = (
                f"CASE WHEN date_trunc('second', {name}) = {name} "
                f"THEN to_char({utc}, '{_ISO_SECOND}\"Z\"') "
                f"ELSE rtrim(to_char({utc}, '{_ISO_SECOND}.US'), '0') || 'Z' END AS {name}"
            )
        columns.append(name)
    return ", ".join(columns)


class JsonPage(NamedTuple):
    """A page of rows as a JSON array, with how many there are and the last id."""

    items: bytes
    rows: int
    last: int | None  # None when the page is empty


def list_rows_json(
    table: str,
    *,
    limit: int = 100,
    after: int | None = None,
    database_url: str | None = None,
    pool: ConnectionPool | None = None,
) -> JsonPage:
    """The page :func:`list_rows` gives, as a JSON array made by PostgreSQL: what a
    server sends on as it is, without a Python object per row."""
    spec, limit = get_table(table), check_limit(limit)
    start = _row_id(after if after is not None else 0, "after")
    sql = (
        f"SELECT coalesce(json_agg(r ORDER BY r.{spec.key}), '[]')::text, count(*), "
        f"max(r.{spec.key}) FROM (SELECT {_json_columns(spec)} FROM {spec.name} "
        f"WHERE {spec.key} > {start:d} ORDER BY {spec.key} LIMIT {limit:d}) AS r"
    )
    with ready(database_url, pool) as conn:
        items, count, last = small_query(conn, sql) or ("[]", 0, None)
    return JsonPage(str(items).encode(), int(count), None if last is None else int(last))


def get_row_json(
    table: str, row_id: int, *, database_url: str | None = None, pool: ConnectionPool | None = None
) -> bytes:
    """The row :func:`get_row` gives, as a JSON object made by PostgreSQL."""
    spec, key = get_table(table), _row_id(row_id, "id")
    sql = (
        f"SELECT row_to_json(r)::text FROM (SELECT {_json_columns(spec)} "
        f"FROM {spec.name} WHERE {spec.key} = {key:d}) AS r"
    )
    with ready(database_url, pool) as conn:
        found = small_query(conn, sql)
    if found is None:
        raise NotFoundError(f"no {spec.name} row with id {row_id}")
    return str(found[0]).encode()


def list_loads(
    *,
    limit: int = 100,
    before: int | None = None,
    database_url: str | None = None,
    pool: ConnectionPool | None = None,
) -> list[LoadReport]:
    """Loads, newest first, ``limit`` at a time, with ids below ``before``."""
    limit = check_limit(limit)
    with ready(database_url, pool) as conn:
        return [_ledger.report(conn, i) for i in _ledger.load_ids(conn, limit=limit, before=before)]


def get_load(
    load_id: int, *, database_url: str | None = None, pool: ConnectionPool | None = None
) -> LoadReport:
    """One load's report; :class:`NotFoundError` when there is none."""
    with ready(database_url, pool) as conn:
        return _ledger.report(conn, load_id)


def list_rejections(
    load_id: int,
    *,
    limit: int = 100,
    after_line: int = 0,
    database_url: str | None = None,
    pool: ConnectionPool | None = None,
) -> list[_ledger.Rejection]:
    """A load's rejected rows by line number; :class:`NotFoundError` for an unknown load."""
    limit = check_limit(limit)
    with ready(database_url, pool) as conn:
        _ledger.report(conn, load_id)  # raises NotFoundError when there is no such load
        return _ledger.rejected_rows(conn, load_id, limit=limit, after_line=after_line)
