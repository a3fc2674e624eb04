"""The load ledger: one ``load_runs`` row per load, rejected rows beside it."""

from __future__ import annotations

from hrcore._db import Connection, execute, scalar
from hrcore._report import LoadReport

_COUNTS = "rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected, batches"


def reap_stale(conn: Connection) -> int:
    """Mark failed the runs still ``running`` whose owning session is gone; return how many."""
    rows = execute(
        conn,
        """UPDATE load_runs SET status = 'failed', finished_at = now(),
               error = coalesce(error, 'the loading session ended before the load finished')
           WHERE status = 'running'
             AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = load_runs.owner_pid)
           RETURNING id""",
    )
    return len(rows)


def start(conn: Connection, table: str, source: str, identity: str, batch_size: int) -> int:
    """Open a ``running`` ledger entry owned by this session; return its id."""
    load_id = scalar(
        conn,
        """INSERT INTO load_runs (table_name, source, object_identity, batch_size, owner_pid)
           VALUES ($1, $2, $3, $4, pg_backend_pid()) RETURNING id""",
        (table, source, identity, batch_size),
    )
    return int(load_id)


def finish(conn: Connection, load_id: int, error: str | None = None) -> None:
    """Close a ledger entry: ``succeeded``, or ``failed`` with its error."""
    status = "failed" if error else "succeeded"
    execute(
        conn,
        "UPDATE load_runs SET status = $1, error = $2, finished_at = now() WHERE id = $3",
        (status, error, load_id),
    )


def report(conn: Connection, load_id: int) -> LoadReport:
    """The report of a load as the ledger holds it."""
    rows = execute(
        conn,
        f"""SELECT table_name, source, status, {_COUNTS}, error,
                   extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8
            FROM load_runs WHERE id = $1""",
        (load_id,),
    )
    if not rows:
        raise LookupError(f"no load with id {load_id}")
    table, source, status, read, ins, upd, unch, rej, batches, error, seconds = rows[0]
    reasons = execute(
        conn,
        """SELECT reason, count(*) FROM rejected_rows, unnest(reasons) AS reason
           WHERE load_id = $1 GROUP BY reason ORDER BY reason""",
        (load_id,),
    )
    return LoadReport(
        table=table,
        source=source,
        load_id=load_id,
        status=status,
        rows_read=read,
        rows_inserted=ins,
        rows_updated=upd,
        rows_unchanged=unch,
        rows_rejected=rej,
        batches=batches,
        seconds=round(float(seconds), 3),
        rejections={reason: int(n) for reason, n in reasons},
        error=error,
    )
