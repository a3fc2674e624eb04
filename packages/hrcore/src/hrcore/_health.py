"""Is the database there?"""

from __future__ import annotations

from hrcore._db import connect, scalar
from hrcore._pool import ConnectionPool


def check_database(database_url: str | None = None, *, pool: ConnectionPool | None = None) -> str:
    """Run a query; return the server's version (raises :class:`DatabaseError` if down)."""
    with connect(database_url, pool=pool) as conn:
        return str(scalar(conn, "SELECT current_setting('server_version')"))
