"""Is the database there?"""

from __future__ import annotations

from hrcore._db import connect, scalar


def check_database(database_url: str | None = None) -> str:
    """Run a query; return the server's version (raises :class:`DatabaseError` if down)."""
    with connect(database_url) as conn:
        return str(scalar(conn, "SELECT current_setting('server_version')"))
