"""The load ledger: a ``load_runs`` row per load, ``load_batches`` per committed batch,
``rejected_rows`` beside them."""

from __future__ import annotations

import msgspec

from hrcore._db import Connection, connect, execute, scalar
from hrcore._errors import NotFoundError
from hrcore._report import Attempt, Kind, LoadReport, PartReport
from hrcore._schema import STAGING_SCHEMA
from hrcore._specs import TableSpec

COUNTS = ("rows_read", "rows_inserted", "rows_updated", "rows_unchanged", "rows_rejected")
# each load_runs count as the sum over the load's committed batches (r: the load_runs row)
_SO_FAR = {
    **{
        c: f"(SELECT coalesce(sum(b.{c}), 0) FROM load_batches b WHERE b.load_id = r.id)"
        for c in COUNTS
    },
    "batches": "(SELECT count(*) FROM load_batches b WHERE b.load_id = r.id)",
}


def _drop_stage(conn: Connection, load_id: int) -> None:
    execute(conn, f"DROP TABLE IF EXISTS {STAGING_SCHEMA}.stage_{load_id:d}")


def _close(
    conn: Connection,
    load_id: int,
    status: str,
    error: str | None,
    *,
    staged: bool = True,
    table_state: str | None = None,
) -> None:
    """Set status, end time, the batch totals and the table state of a load; drop its
    staging table (``staged``: it has one of its own)."""
    totals = ", ".join(f"{column} = {so_far}" for column, so_far in _SO_FAR.items())
    execute(
        conn,
        f"""UPDATE load_runs r SET status = $1, error = $2, finished_at = now(), {totals},
               table_state = $4
           WHERE id = $3""",
        (status, error, load_id, table_state),
    )
    if staged:
        _drop_stage(conn, load_id)


_SESSION_ENDED = "the loading session ended before the load finished"
# a queued load's job that still waits (its worker died: it is retried, and its next
# attempt takes over the entry, see claim)
_JOB_WAITING = """SELECT FROM procrastinate_jobs j WHERE j.id = load_runs.job_id
                  AND j.status IN ('todo', 'doing')"""


def reap_stale(conn: Connection) -> list[int]:
    """Mark failed the runs still ``running`` whose owning session is gone, and the
    ``queued`` ones that no job will run; return their ids."""
    stale = execute(
        conn,
        f"""SELECT id FROM load_runs WHERE status = 'running' AND phase IS NULL
           AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = load_runs.owner_pid)
           AND NOT EXISTS ({_JOB_WAITING})""",
    )
    for (load_id,) in stale:
        _close(conn, load_id, "failed", _SESSION_ENDED)
    # a load of parts: nobody runs it (no session owns it, and none of its jobs waits)
    orphaned = execute(
        conn,
        """SELECT r.id FROM load_runs r WHERE r.status IN ('queued', 'running')
           AND r.phase IS NOT NULL
           AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = r.owner_pid)
           AND NOT EXISTS (SELECT FROM procrastinate_jobs j
                           WHERE j.task_name = 'hrcore.part' AND j.status IN ('todo', 'doing')
                           AND (j.args ->> 'load_id')::bigint = r.id)""",
    )
    for (load_id,) in orphaned:
        why = "its session or its jobs ended before the load finished"
        _close(conn, load_id, "failed", why, staged=False)
        execute(conn, "UPDATE load_runs SET phase = 'done' WHERE id = $1", (load_id,))
    lost = execute(
        conn,
        """SELECT r.id, r.job_id IS NULL FROM load_runs r WHERE r.status = 'queued'
           AND r.phase IS NULL AND CASE WHEN r.job_id IS NULL
               THEN NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = r.owner_pid)
               ELSE NOT EXISTS (SELECT FROM procrastinate_jobs j
                                WHERE j.id = r.job_id AND j.status IN ('todo', 'doing')) END""",
    )
    for load_id, unqueued in lost:
        why = (
            "the process queueing the load ended before its job was made"
            if unqueued
            else "its job ended before a worker ran the load"
        )
        _close(conn, load_id, "failed", why, staged=False)
    # staging tables whose load is over (its session died after its last word; a part's
    # job that staged after its load failed)
    orphans = execute(
        conn,
        f"""SELECT t.tablename FROM pg_tables t WHERE t.schemaname = '{STAGING_SCHEMA}'
           AND t.tablename ~ '^(stage_[0-9]+(_p[0-9]+)?|ids_[0-9]+)$' AND NOT EXISTS (
               SELECT FROM load_runs r
               WHERE r.id = substring(t.tablename FROM '[0-9]+')::bigint
                 AND r.status IN ('queued', 'running'))""",
    )
    for (name,) in orphans:
        execute(conn, f'DROP TABLE IF EXISTS {STAGING_SCHEMA}."{name}"')
    return [i for (i,) in stale] + [i for (i,) in orphaned] + [i for i, _ in lost]


def start(
    conn: Connection,
    table: str,
    source: str,
    identity: str | None,
    batch_size: int,
    *,
    kind: Kind = "load",
) -> int:
    """Open a ``running`` ledger entry owned by this session; return its id."""
    load_id = scalar(
        conn,
        """INSERT INTO load_runs (table_name, source, object_identity, batch_size, owner_pid, kind)
           VALUES ($1, $2, $3, $4, pg_backend_pid(), $5) RETURNING id""",
        (table, source, identity, batch_size, kind),
    )
    return int(load_id)


def expect(conn: Connection, load_id: int, rows: int) -> None:
    """Record how many rows a load expects to read (its progress, while it runs): a
    hint, so it never waits for the entry's row (someone holding it): it is left out."""
    execute(
        conn,
        """UPDATE load_runs SET rows_expected = $1 WHERE id = (
            SELECT id FROM load_runs WHERE id = $2 FOR NO KEY UPDATE SKIP LOCKED)""",
        (rows, load_id),
    )


def queue(conn: Connection, table: str, source: str, batch_size: int) -> tuple[int, bool]:
    """A ``queued`` entry for a load of ``source`` into ``table``, owned by this session
    until its job is made; or the load of the same file already queued or running.
    Returns its id, and True when it is new."""
    execute(conn, "BEGIN")
    try:
        execute(
            conn,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            (f"queue:{table}:{source}",),
        )
        found = scalar(
            conn,
            """SELECT max(id) FROM load_runs WHERE table_name = $1 AND source = $2
               AND kind = 'load' AND status IN ('queued', 'running')""",
            (table, source),
        )
        if found is None:
            found = scalar(
                conn,
                """INSERT INTO load_runs
                       (table_name, source, batch_size, owner_pid, status, attempt)
                   VALUES ($1, $2, $3, pg_backend_pid(), 'queued', 0) RETURNING id""",
                (table, source, batch_size),
            )
            new = True
        else:
            new = False
        execute(conn, "COMMIT")
    except BaseException:
        execute(conn, "ROLLBACK")
        raise
    return int(found), new


def queued_as(conn: Connection, load_id: int, job_id: int) -> None:
    """Record the job that runs a queued load; the entry is the job's from now on."""
    execute(
        conn,
        """UPDATE load_runs SET job_id = $2,
               owner_pid = CASE WHEN status = 'queued' THEN NULL ELSE owner_pid END
           WHERE id = $1""",
        (load_id, job_id),
    )


def queued_load(conn: Connection, load_id: int) -> tuple[str, str, int]:
    """The table, source and batch size of a queued load."""
    found = execute(
        conn, "SELECT table_name, source, batch_size FROM load_runs WHERE id = $1", (load_id,)
    )
    if not found:
        raise NotFoundError(f"no load with id {load_id}")
    table, source, batch_size = found[0]
    return str(table), str(source), int(batch_size)


def claim(conn: Connection, load_id: int, worker: str, identity: str | None) -> str:
    """Make a queued load this session's running attempt, of the file's content as it
    is now (``identity``: what a later load of the same content is compared with), and
    return the status it had: ``queued``, or ``failed`` / ``cancelled`` when an earlier
    attempt stopped (it is kept in ``load_attempts``; its batches and rejections are
    cleared, so that the counts are this attempt's); or ``running`` on a session that
    is gone (its worker died: that attempt is closed ``failed`` and kept likewise). A
    load that runs on a live session, or is over, is left as it is (its status
    returned)."""
    execute(conn, "BEGIN")
    try:
        found = execute(
            conn,
            """SELECT status, EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = owner_pid)
               FROM load_runs WHERE id = $1 FOR UPDATE""",
            (load_id,),
        )
        if not found:
            raise NotFoundError(f"no load with id {load_id}")
        status, alive = found[0]
        if status == "running" and not alive:  # its worker died: that attempt failed
            _close(conn, load_id, "failed", _SESSION_ENDED)
            status = "failed"
        if status in ("failed", "cancelled"):
            execute(
                conn,
                """INSERT INTO load_attempts (load_id, attempt, worker, status, error,
                       started_at, finished_at, batches, rows_read, rows_written)
                   SELECT id, attempt, worker, status, error, started_at, finished_at, batches,
                          rows_read, rows_inserted + rows_updated + rows_unchanged
                   FROM load_runs WHERE id = $1""",
                (load_id,),
            )
            execute(conn, "DELETE FROM load_batches WHERE load_id = $1", (load_id,))
            execute(conn, "DELETE FROM rejected_rows WHERE load_id = $1", (load_id,))
        if status in ("queued", "failed", "cancelled"):
            zeros = ", ".join(f"{c} = 0" for c in (*COUNTS, "batches"))
            execute(
                conn,
                f"""UPDATE load_runs SET status = 'running', attempt = attempt + 1, worker = $2,
                       owner_pid = pg_backend_pid(), started_at = now(), finished_at = NULL,
                       error = NULL, table_state = NULL, same_as = NULL, object_identity = $3,
                       {zeros}
                   WHERE id = $1""",
                (load_id, worker, identity),
            )
        execute(conn, "COMMIT")
    except BaseException:
        execute(conn, "ROLLBACK")
        raise
    return str(status)


def fail_queued(url: str, load_id: int, error: str) -> None:
    """Close a load that could not start (its file is gone, say) while still queued."""
    with connect(url) as conn:
        execute(
            conn,
            """UPDATE load_runs SET status = 'failed', error = $2, finished_at = now()
               WHERE id = $1 AND status = 'queued'""",
            (load_id, error),
        )


def same_work(
    conn: Connection, load_id: int, spec: TableSpec, identity: str, table_state: str
) -> int | None:
    """The load whose work ``load_id`` would only repeat, if there is one: the last
    load of the same source to succeed (a queued load may be older than it), if its
    content identity is ``identity`` and it left the table and the tables it
    references in ``table_state``, the state they are in now (nobody wrote them
    since: see ``_changes``)."""
    found = execute(
        conn,
        """SELECT p.id, p.object_identity, p.table_state FROM load_runs p, load_runs me
           WHERE me.id = $1 AND p.table_name = me.table_name AND p.source = me.source
             AND p.kind = 'load' AND p.status = 'succeeded' AND p.id <> me.id
           ORDER BY p.finished_at DESC LIMIT 1""",
        (load_id,),
    )
    if not found:
        return None
    last, last_identity, last_state = found[0]
    return int(last) if (last_identity, last_state) == (identity, table_state) else None


def skip(conn: Connection, load_id: int, same_as: int) -> None:
    """Close a load as ``skipped``: every row it would read is as ``same_as`` left it."""
    execute(
        conn,
        """UPDATE load_runs r SET status = 'skipped', finished_at = now(), same_as = s.id,
               rows_read = s.rows_read, rows_unchanged = s.rows_read - s.rows_rejected,
               rows_rejected = s.rows_rejected
           FROM load_runs s WHERE r.id = $1 AND s.id = $2""",
        (load_id, same_as),
    )


def skip_parts(
    conn: Connection, load_id: int, same_as: int, read: int, rejected: int, *, table_state: str
) -> None:
    """Close a load of parts as ``skipped``: every part is as ``same_as`` left it, and
    the table in ``table_state``; its counts are the parts' (``read`` rows,
    ``rejected`` of them)."""
    execute(
        conn,
        """UPDATE load_runs SET status = 'skipped', finished_at = now(), same_as = $2,
               rows_read = $3, rows_unchanged = $3 - $4, rows_rejected = $4, table_state = $5
           WHERE id = $1""",
        (load_id, same_as, read, rejected, table_state),
    )


def finish(
    conn: Connection, load_id: int, *, staged: bool = True, table_state: str | None = None
) -> None:
    """Close a load that went to the end: ``succeeded``, with the state it left its
    table in (see ``_changes``; None when it cannot tell)."""
    _close(conn, load_id, "succeeded", None, staged=staged, table_state=table_state)


def stop_here(conn: Connection, load_id: int, status: str, error: str) -> None:
    """Close a load of parts that stopped (its staging tables are its own business)."""
    _close(conn, load_id, status, error, staged=False)


def stop(url: str, load_id: int, status: str, error: str, *, staged: bool) -> LoadReport:
    """Close a load that stopped (``failed`` or ``cancelled``), on a fresh connection:
    the loading one is closed by now, with its locks."""
    with connect(url) as conn:
        _close(conn, load_id, status, error, staged=staged)
        return report(conn, load_id)


def report(conn: Connection, load_id: int) -> LoadReport:
    """The report of a load as the ledger holds it (a running load: its batches so far)."""
    live = ", ".join(
        f"CASE WHEN r.status = 'running' THEN {so_far} ELSE r.{column} END"
        for column, so_far in _SO_FAR.items()
    )
    rows = execute(
        conn,
        f"""SELECT table_name, source, status, {live}, error,
                   extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8,
                   kind, same_as, attempt, worker, phase IS NOT NULL, rows_expected
            FROM load_runs AS r WHERE id = $1""",
        (load_id,),
    )
    if not rows:
        raise NotFoundError(f"no load with id {load_id}")
    (table, source, status, read, ins, upd, unch, rej, batches, error, seconds, kind, same,
     attempt, worker, in_parts, expected) = rows[0]  # fmt: skip
    reasons = (
        execute(
            conn,
            """SELECT reason, count(*) FROM rejected_rows, unnest(reasons) AS reason
               WHERE load_id = $1 GROUP BY reason ORDER BY reason""",
            (same if same is not None else load_id,),  # a skipped load: the one it repeats
        )
        if rej
        else []
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
        kind=kind,
        same_as=same,
        attempt=attempt,
        worker=worker,
        rows_expected=expected,
        earlier_attempts=_earlier_attempts(conn, load_id) if attempt > 1 else [],
        parts=_parts(conn, load_id) if in_parts else [],
    )


def _parts(conn: Connection, load_id: int) -> list[PartReport]:
    """A many-part load's parts, with the counts of the batches each committed."""
    rows = execute(
        conn,
        """SELECT p.part, p.uri, p.identity, p.status, p.same_as, p.error, p.line_offset,
                  p.worker, p.attempts,
                  count(b.batch), coalesce(sum(b.rows_read), 0),
                  coalesce(sum(b.rows_inserted + b.rows_updated + b.rows_unchanged), 0),
                  coalesce(sum(b.rows_rejected), 0)
           FROM load_parts p LEFT JOIN load_batches b ON b.load_id = p.load_id
               AND b.batch >= p.batch_offset AND b.batch < p.batch_offset + p.batches
           WHERE p.load_id = $1 GROUP BY p.load_id, p.part ORDER BY p.part""",
        (load_id,),
    )
    return [
        PartReport(part=part, uri=uri, identity=identity, status=status, same_as=same, error=error,
                   first_line=None if offset is None else int(offset) + 1, batches=int(n),
                   rows_read=int(read), rows_written=int(written), rows_rejected=int(rejected),
                   worker=worker, attempts=attempts)
        for (part, uri, identity, status, same, error, offset, worker, attempts, n, read,
             written, rejected) in rows
    ]  # fmt: skip


def _earlier_attempts(conn: Connection, load_id: int) -> list[Attempt]:
    rows = execute(
        conn,
        """SELECT attempt, worker, status, error, batches, rows_read, rows_written
           FROM load_attempts WHERE load_id = $1 ORDER BY attempt""",
        (load_id,),
    )
    return [
        Attempt(attempt=a, worker=w, status=s, error=e, batches=b, rows_read=r, rows_written=n)
        for a, w, s, e, b, r, n in rows
    ]


class Rejection(msgspec.Struct, kw_only=True):
    """A rejected row as the ledger keeps it."""

    line_number: int
    raw: str
    reasons: list[str]


def rejected_rows(
    conn: Connection, load_id: int, *, limit: int = 100, after_line: int = 0
) -> list[Rejection]:
    """A load's rejected rows by line number, ``limit`` at a time after ``after_line``."""
    rows = execute(
        conn,
        """SELECT line_number, raw, reasons FROM rejected_rows
           WHERE load_id = $1 AND line_number > $2 ORDER BY line_number LIMIT $3""",
        (load_id, after_line, limit),
    )
    return [Rejection(line_number=int(n), raw=raw, reasons=list(r)) for n, raw, r in rows]


def load_ids(conn: Connection, *, limit: int = 100, before: int | None = None) -> list[int]:
    """Ids of loads, newest first, ``limit`` at a time (keyset: ids below ``before``)."""
    rows = execute(
        conn,
        "SELECT id FROM load_runs WHERE id < $1 ORDER BY id DESC LIMIT $2",
        (before if before is not None else 2**62, limit),
    )
    return [int(i) for (i,) in rows]
