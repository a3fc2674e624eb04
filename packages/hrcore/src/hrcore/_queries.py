"""Reading back what was stored: table rows, loads and their rejected rows, pages at a time.

Pages are keyset-based (``after`` an id, or a line number), so walking a whole
table never skips or repeats a row, however it changes meanwhile.
"""

from __future__ import annotations

from typing import Any

from hrcore import _ledger
from hrcore._db import fetch_frame
from hrcore._errors import NotFoundError, UsageError
from hrcore._report import LoadReport
from hrcore._schema import ready
from hrcore._specs import get_table

MAX_PAGE = 1000


def check_limit(limit: int) -> int:
    """The one place where a page size is checked: an int from 1 to 1000."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be between 1 and {MAX_PAGE}, not {limit!r}")
    return limit


def list_rows(
    table: str, *, limit: int = 100, after: int | None = None, database_url: str | None = None
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of ``table`` in id order, with ids above ``after``."""
    spec, limit = get_table(table), check_limit(limit)
    with ready(database_url) as conn:
        frame = fetch_frame(
            conn,
            f"SELECT {', '.join(spec.column_names)} FROM {spec.name} "
            f"WHERE {spec.key} > $1 ORDER BY {spec.key} LIMIT $2",
            (after if after is not None else 0, limit),
        )
    return frame.to_dicts()


def get_row(table: str, row_id: int, *, database_url: str | None = None) -> dict[str, Any]:
    """One row of ``table`` by id; :class:`NotFoundError` when there is none."""
    spec = get_table(table)
    with ready(database_url) as conn:
        frame = fetch_frame(
            conn,
            f"SELECT {', '.join(spec.column_names)} FROM {spec.name} WHERE {spec.key} = $1",
            (row_id,),
        )
    if frame.height == 0:
        raise NotFoundError(f"no {spec.name} row with id {row_id}")
    return frame.row(0, named=True)


def list_loads(
    *, limit: int = 100, before: int | None = None, database_url: str | None = None
) -> list[LoadReport]:
    """Loads, newest first, ``limit`` at a time, with ids below ``before``."""
    limit = check_limit(limit)
    with ready(database_url) as conn:
        return [_ledger.report(conn, i) for i in _ledger.load_ids(conn, limit=limit, before=before)]


def get_load(load_id: int, *, database_url: str | None = None) -> LoadReport:
    """One load's report; :class:`NotFoundError` when there is none."""
    with ready(database_url) as conn:
        return _ledger.report(conn, load_id)


def list_rejections(
    load_id: int, *, limit: int = 100, after_line: int = 0, database_url: str | None = None
) -> list[_ledger.Rejection]:
    """A load's rejected rows by line number; :class:`NotFoundError` for an unknown load."""
    limit = check_limit(limit)
    with ready(database_url) as conn:
        _ledger.report(conn, load_id)  # raises NotFoundError when there is no such load
        return _ledger.rejected_rows(conn, load_id, limit=limit, after_line=after_line)
