"""Who may change a table at once, with PostgreSQL advisory locks that wait a bounded time.

- Loads share their table (and the tables it references): loads of different
  files run side by side, but not beside a restore of any of those tables.
- A restore has its table alone: it waits for the loads that run, and the loads
  that come wait for it.
- Two loads of the same file take turns; the second then finds nothing to change.

The locks belong to the session: they go with the connection if it dies.
"""

from __future__ import annotations

from hrcore._db import Connection, execute, scalar
from hrcore._errors import BusyError, DatabaseError
from hrcore._specs import TableSpec, get_table

_LOCK_NOT_AVAILABLE = "55P03"


def _acquire(conn: Connection, *keys: str, shared: bool, timeout: float) -> bool:
    """Take the advisory locks named ``keys``, in order, waiting at most ``timeout``
    seconds for each; False if one was not free in time (then none is held).

    One statement: its own ``lock_timeout`` is set for it alone (``set_config`` with
    ``is_local``: an autocommit statement is its own transaction), before the locks
    are asked for, in the order PostgreSQL evaluates a select list.
    """
    function = "pg_advisory_lock_shared" if shared else "pg_advisory_lock"
    locks = ", ".join(f"{function}(hashtextextended(${k + 2}, 0))" for k in range(len(keys)))
    try:
        execute(
            conn,
            f"SELECT set_config('lock_timeout', $1, true), {locks}",
            (f"{int(timeout * 1000)}ms", *keys),
        )
    except DatabaseError as exc:
        if exc.sqlstate == _LOCK_NOT_AVAILABLE:
            return False
        raise
    return True


def _free(conn: Connection, key: str) -> bool:
    """Whether the advisory lock named ``key`` could be shared now (it is not kept)."""
    taken = bool(
        scalar(conn, "SELECT pg_try_advisory_lock_shared(hashtextextended($1, 0))", (key,))
    )
    if taken:
        execute(conn, "SELECT pg_advisory_unlock_shared(hashtextextended($1, 0))", (key,))
    return taken


def _running_load(conn: Connection, table: str, source: str | None) -> int | None:
    """The oldest running load of a table (and source), if any."""
    found = scalar(
        conn,
        """SELECT min(id) FROM load_runs WHERE status = 'running' AND table_name = $1
           AND ($2::text IS NULL OR source = $2) AND owner_pid <> pg_backend_pid()""",
        (table, source),
    )
    return None if found is None else int(found)


def hold_for_load(conn: Connection, spec: TableSpec, source: str | None, timeout: float) -> None:
    """Share the table and the tables it references; have the file (``source``) alone."""
    names = [c.references for c in spec.references if c.references] + [spec.name]
    if not _acquire(conn, *(f"table:{name}" for name in names), shared=True, timeout=timeout):
        # one of them is being restored: which one, without waiting again
        busy = [name for name in names if not _free(conn, f"table:{name}")]
        raise BusyError(
            f"{', '.join(busy) or ' or '.join(names)} is being restored; "
            f"it was not free within {timeout:g} s"
        )
    if source is not None and not _acquire(
        conn, f"file:{spec.name}:{source}", shared=False, timeout=timeout
    ):
        holder = _running_load(conn, spec.name, source)
        by = f"load {holder}" if holder is not None else "another load"
        raise BusyError(
            f"{source} is being loaded into {spec.name} by {by}; "
            f"it was not free within {timeout:g} s",
            holder=holder,
        )


def hold_for_restore(conn: Connection, table: str, timeout: float) -> None:
    """Have the table alone: no load of it (or of a table referencing it) runs meanwhile."""
    spec = get_table(table)
    if not _acquire(conn, f"table:{spec.name}", shared=False, timeout=timeout):
        holder = _running_load(conn, spec.name, None)
        by = f"load {holder}" if holder is not None else "a load or another restore"
        raise BusyError(
            f"{spec.name} is in use by {by}; it was not free within {timeout:g} s", holder=holder
        )


def release_all(conn: Connection) -> None:
    execute(conn, "SELECT pg_advisory_unlock_all()")
