"""A table's data as many part files (as Spark, Glue or DMS export it), loaded as one load.

A load of parts goes in phases. A phase's work is one job per part, run by any worker
(a queued load) or by this process's threads (a direct call); the step between two
phases runs once, by whoever finishes the phase's last part:

1. **stage** (per part): its rows read, validated and copied into a staging table of
   its own, numbered into batches within the part. A part whose identity is that of
   the same part in the last load, while the table is as that load left it, is only
   read for the ids its lines start with: it is to be skipped.
2. **settle** (once): a skipped part that holds an id of a part being loaded is
   staged after all (back to 1): the last row of an id wins, whichever part it is in.
   Then all but the last valid row of each id (by part name, then line) become
   ``duplicate_id``, and each part's lines and batches are numbered after those of
   the parts before it, so that the ledger reads as if the parts were one file.
3. **write** (per part): its batches upserted, each in its own transaction; batches
   that an attempt before (a worker that died) committed are not written again.
   After settling, no two parts hold the same valid id: parts are written side by
   side without waiting for each other.
4. **close** (once): the load ends ``succeeded``; its staging tables are dropped.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass

import pyarrow as pa

from hrcore import _changes, _ledger, _locks, _stage, _storage
from hrcore._db import Connection, Limits, connect, execute, first_line, scalar
from hrcore._duplicates import line_start_ids
from hrcore._errors import (
    BusyError,
    DatabaseError,
    HrcoreError,
    LoadCancelledError,
    LoadFailedError,
    SourceFormatError,
    SourceNotFoundError,
)
from hrcore._lines import RowReader, utf8_checked
from hrcore._report import LoadReport
from hrcore._schema import STAGING_SCHEMA, ensure_schema
from hrcore._specs import TableSpec, get_table
from hrcore._stage import Stager, StopRequested, reference_ids
from hrcore._storage import SourceFile
from hrcore._write import Tally, Target, write_here

TASK = "hrcore.part"
Defer = Callable[[int, str, list[int]], None]  # queue a phase's jobs for these parts of a load


def stage_of(load_id: int, part: int) -> str:
    return f"{STAGING_SCHEMA}.stage_{load_id:d}_p{part:d}"


def ids_of(load_id: int) -> str:
    """The ids that the lines of a load's skipped parts start with."""
    return f"{STAGING_SCHEMA}.ids_{load_id:d}"


def identity_of(parts: list[SourceFile]) -> str:
    """One identity for the whole set of parts."""
    text = "\n".join(f"{p.uri} {p.identity}" for p in parts)
    return "parts=" + hashlib.sha256(text.encode()).hexdigest()[:32]


def begin(
    conn: Connection, spec: TableSpec, load_id: int, parts: list[SourceFile], *, verify: bool
) -> bool:
    """Record the parts of load ``load_id`` and which are to be skipped: those whose
    identity is that of the same part in the last load of the source, while the
    table is as that load left it. True when the whole load is skipped: every part
    would be, and no part of the last load is gone (its rows may have won ids)."""
    before = _changes.read(conn, _changes.watched(spec))
    found = execute(
        conn,
        """SELECT p.id, p.table_state FROM load_runs p, load_runs me
           WHERE me.id = $1 AND p.table_name = me.table_name AND p.source = me.source
             AND p.status IN ('succeeded', 'skipped') AND p.phase IS NOT NULL AND p.id <> me.id
           ORDER BY p.finished_at DESC LIMIT 1""",
        (load_id,),
    )
    last: dict[str, str] = {}
    last_id = None
    if found and found[0][1] == _changes.state(before) and not verify:
        last_id = int(found[0][0])
        last = dict(
            execute(conn, "SELECT uri, identity FROM load_parts WHERE load_id = $1", (last_id,))
        )
    skips = [last.get(p.uri) == p.identity for p in parts]
    execute(conn, "DELETE FROM load_parts WHERE load_id = $1", (load_id,))  # a plan retried
    for number, (part, skip) in enumerate(zip(parts, skips, strict=True)):
        execute(
            conn,
            """INSERT INTO load_parts (load_id, part, uri, identity, skip, same_as)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            (load_id, number, part.uri, part.identity, skip, last_id if skip else None),
        )
    execute(
        conn,
        f"""UPDATE load_runs SET phase = 'stage', counters_before = $2,
               advanced_by = '{PLANNED}' WHERE id = $1""",
        (load_id, _changes.state(before)),
    )
    gone = set(last) - {p.uri for p in parts}
    if last_id is not None and all(skips) and not gone:
        _carry(conn, load_id)
        execute(conn, "UPDATE load_parts SET status = 'skipped' WHERE load_id = $1", (load_id,))
        totals = execute(
            conn,
            """SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_rejected), 0)
               FROM load_parts WHERE load_id = $1""",
            (load_id,),
        )[0]
        _ledger.skip_parts(conn, load_id, last_id, int(totals[0]), int(totals[1]),
                           table_state=_changes.state(before))  # fmt: skip
        execute(conn, "UPDATE load_runs SET phase = 'done' WHERE id = $1", (load_id,))
        return True
    ids = ids_of(load_id)
    execute(conn, f"CREATE UNLOGGED TABLE IF NOT EXISTS {ids} (part integer, id bigint)")
    return False


def _carry(conn: Connection, load_id: int) -> None:
    """Skipped parts take over what the last load knew of them: their counts, lines
    and valid ids (which the next load's clash check needs)."""
    execute(
        conn,
        """UPDATE load_parts p SET ids = q.ids, rows_read = q.rows_read,
               rows_rejected = q.rows_rejected, lines = q.lines
           FROM load_parts q WHERE p.load_id = $1 AND p.skip AND q.load_id = p.same_as
             AND q.uri = p.uri""",
        (load_id,),
    )


@dataclass(frozen=True, slots=True)
class Part:
    """A part as its job finds it in the ledger."""

    load_id: int
    number: int
    spec: TableSpec
    uri: str
    status: str
    skip: bool
    batch_size: int
    batches: int | None
    line_offset: int | None
    batch_offset: int | None
    load_status: str

    @classmethod
    def read(cls, conn: Connection, load_id: int, number: int) -> Part:
        [row] = execute(
            conn,
            """SELECT r.table_name, p.uri, p.status, p.skip, r.batch_size, p.batches,
                      p.line_offset, p.batch_offset, r.status
               FROM load_parts p JOIN load_runs r ON r.id = p.load_id
               WHERE p.load_id = $1 AND p.part = $2""",
            (load_id, number),
        )
        table, uri, status, skip, batch_size, batches, line_offset, batch_offset, load = row
        return cls(load_id, number, get_table(table), uri, status, skip, batch_size, batches,
                   line_offset, batch_offset, load)  # fmt: skip


class _Counted:
    """A part's blocks, counting its physical lines on the way (a last line without
    its newline counts too), as the ledger numbers them."""

    def __init__(self, uri: str) -> None:
        self.uri, self.lines, self._last = uri, 0, b"\n"

    def __iter__(self) -> Iterator[bytes]:
        with closing(_storage.read_blocks(self.uri)) as blocks:
            for block in utf8_checked(blocks, self.uri):
                if block:
                    self.lines += block.count(b"\n")
                    self._last = block[-1:]
                yield block
        if self._last != b"\n":
            self.lines += 1


def stage_part(conn: Connection, part: Part, should_stop: Callable[[], bool], worker: str) -> None:
    """Phase 1 for one part, by ``worker``: its rows staged, or (a part to skip) the ids
    its lines start with noted."""
    execute(
        conn,
        """UPDATE load_parts SET attempts = attempts + 1, worker = $3
           WHERE load_id = $1 AND part = $2""",
        (part.load_id, part.number, worker),
    )
    blocks = _Counted(part.uri)
    if part.skip:
        execute(conn, f"DELETE FROM {ids_of(part.load_id)} WHERE part = {part.number:d}")
        for ids in line_start_ids(iter(blocks)):
            if should_stop():
                raise StopRequested
            numbers = pa.array([part.number] * len(ids), pa.int32())
            noted = pa.table({"part": numbers, "id": ids.to_arrow()})
            _stage.copy_in(conn, ids_of(part.load_id), noted)
        execute(
            conn,
            """UPDATE load_parts SET status = 'skipped', lines = $3
               WHERE load_id = $1 AND part = $2""",
            (part.load_id, part.number, blocks.lines),
        )
        return
    stage = stage_of(part.load_id, part.number)
    execute(conn, f"DROP TABLE IF EXISTS {stage}")  # an attempt before this one died
    _stage.create(conn, part.spec, stage)
    refs = reference_ids(conn, part.spec)
    stager = Stager(part.spec, RowReader().rows(iter(blocks)), refs, part.batch_size,
                    None, should_stop)  # fmt: skip
    for table, _ in stager.chunks():
        _stage.copy_in(conn, stage, table)
    execute(
        conn,
        f"""UPDATE load_parts SET status = 'staged', rows_read = $3, lines = $4, batches = $5,
               ids = (SELECT coalesce(array_agg({part.spec.key}), '{{}}') FROM {stage}
                      WHERE reasons IS NULL)
           WHERE load_id = $1 AND part = $2""",
        (part.load_id, part.number, stager.rows, blocks.lines, stager.batches),
    )


def _set_part(conn: Connection, part: Part, status: str) -> None:
    execute(
        conn,
        "UPDATE load_parts SET status = $3 WHERE load_id = $1 AND part = $2",
        (part.load_id, part.number, status),
    )


def write_part(conn: Connection, part: Part, should_stop: Callable[[], bool], tally: Tally) -> None:
    """Phase 3 for one part: its batches not yet committed, each in its own transaction."""
    assert part.batches is not None, "a staged part"
    assert part.batch_offset is not None, "a settled part"
    assert part.line_offset is not None, "a settled part"
    stage = stage_of(part.load_id, part.number)
    target = Target(part.spec, stage, part.load_id, probe=True, line_offset=part.line_offset,
                    batch_offset=part.batch_offset)  # fmt: skip
    done = {
        int(b) - part.batch_offset
        for (b,) in execute(
            conn,
            "SELECT batch FROM load_batches WHERE load_id = $1 AND batch BETWEEN $2 AND $3",
            (part.load_id, part.batch_offset, part.batch_offset + part.batches - 1),
        )
    }
    for batch in range(part.batches):
        if batch in done:
            continue
        if should_stop():
            raise StopRequested
        write_here(conn, target, range(batch, batch + 1), tally, None)
    _set_part(conn, part, "written")
    execute(conn, f"DROP TABLE IF EXISTS {stage}")


def settle(conn: Connection, load_id: int, spec: TableSpec) -> list[int]:
    """Phase 2 (all parts staged or noted): the skipped parts to stage after all, if
    any (the phase stays ``stage``); else duplicates resolved across parts, lines and
    batches numbered, the phase ``write``, and the parts to write.

    A skipped part is staged after all when the ids its lines start with meet the
    valid ids of a part being loaded, or the ids that a part of the last load held
    and that may have won over it then (a part changed or gone since)."""
    parts = execute(
        conn,
        """SELECT part, status, coalesce(lines, 0), coalesce(batches, 0) FROM load_parts
           WHERE load_id = $1 ORDER BY part""",
        (load_id,),
    )
    staged = [int(n) for n, status, _, _ in parts if status == "staged"]
    valid = " UNION ALL ".join(
        f"SELECT {n:d} AS part, line, {spec.key} AS id FROM {stage_of(load_id, n)} "
        "WHERE reasons IS NULL"
        for n in staged
    )
    if any(status == "skipped" for _, status, _, _ in parts):
        held_before = f"""SELECT unnest(q.ids) FROM load_parts q
            WHERE q.load_id = (SELECT max(same_as) FROM load_parts WHERE load_id = {load_id:d})
            AND q.uri NOT IN (SELECT uri FROM load_parts
                              WHERE load_id = {load_id:d} AND status = 'skipped')"""
        meeting = f"SELECT id FROM ({valid}) v UNION ALL {held_before}" if staged else held_before
        clashing = [
            int(n)
            for (n,) in execute(
                conn,
                f"""SELECT DISTINCT i.part FROM {ids_of(load_id)} i
                    JOIN load_parts p ON p.load_id = {load_id:d} AND p.part = i.part
                    WHERE p.status = 'skipped' AND i.id IN ({meeting})""",
            )
        ]
        if clashing:
            execute(
                conn,
                """UPDATE load_parts SET status = 'queued', skip = false, same_as = NULL
                   WHERE load_id = $1 AND part = ANY($2)""",
                (load_id, clashing),
            )
            return clashing
    if staged:  # the last valid row of an id wins, within a part and across parts
        execute(
            conn,
            f"""CREATE TEMP TABLE hrcore_winners ON COMMIT DROP AS
                SELECT DISTINCT ON (id) id, part, line FROM ({valid}) v
                WHERE id IN (SELECT id FROM ({valid}) w GROUP BY id HAVING count(*) > 1)
                ORDER BY id, part DESC, line DESC""",
        )
        for n in staged:
            execute(
                conn,
                f"""UPDATE {stage_of(load_id, n)} AS s SET reasons = 'duplicate_id'
                    FROM hrcore_winners w WHERE s.reasons IS NULL AND s.{spec.key} = w.id
                    AND ({n:d}, s.line) < (w.part, w.line)""",
            )
    line_offset = batch_offset = 0
    for n, _, lines, batches in parts:  # numbered as one file: skipped parts' lines too
        execute(
            conn,
            """UPDATE load_parts SET line_offset = $3, batch_offset = $4
               WHERE load_id = $1 AND part = $2""",
            (load_id, n, line_offset, batch_offset),
        )
        line_offset += int(lines)
        batch_offset += int(batches)
    execute(conn, "UPDATE load_runs SET phase = 'write' WHERE id = $1", (load_id,))
    return staged


def close(conn: Connection, load_id: int, spec: TableSpec) -> None:
    """Phase 4: the load ``succeeded``, with the state it left the table in when its
    own batches were the only writes since it began; its staging tables dropped."""
    before_text, batches = execute(
        conn,
        """SELECT counters_before, (SELECT count(*) FROM load_batches WHERE load_id = $1)
           FROM load_runs WHERE id = $1""",
        (load_id,),
    )[0]
    before = _changes.parse(str(before_text))
    left = _changes.left(conn, spec, before, _changes.BUMPS_PER_BATCH * int(batches))
    _carry(conn, load_id)
    execute(  # a written part's rejected rows, for a later load that skips it
        conn,
        """UPDATE load_parts p SET rows_rejected = (
               SELECT coalesce(sum(b.rows_rejected), 0) FROM load_batches b
               WHERE b.load_id = p.load_id AND b.batch >= p.batch_offset
                 AND b.batch < p.batch_offset + p.batches)
           WHERE p.load_id = $1 AND p.status = 'written'""",
        (load_id,),
    )
    execute(  # only the last load of a source keeps its parts' ids
        conn,
        """UPDATE load_parts SET ids = NULL WHERE ids IS NOT NULL AND load_id IN (
               SELECT o.id FROM load_runs o, load_runs me WHERE me.id = $1
               AND o.table_name = me.table_name AND o.source = me.source AND o.id <> me.id)""",
        (load_id,),
    )
    _ledger.finish(conn, load_id, staged=False, table_state=left)
    execute(conn, "UPDATE load_runs SET phase = 'done' WHERE id = $1", (load_id,))
    drop_staging(conn, load_id)


def drop_staging(conn: Connection, load_id: int) -> None:
    for (name,) in execute(
        conn,
        f"""SELECT tablename FROM pg_tables WHERE schemaname = '{STAGING_SCHEMA}'
            AND (tablename LIKE 'stage\\_{load_id:d}\\_p%' OR tablename = 'ids_{load_id:d}')""",
    ):
        execute(conn, f'DROP TABLE IF EXISTS {STAGING_SCHEMA}."{name}"')


def fail(url: str, load_id: int, part: int | None, reason: str) -> None:
    """A part failed for good: so does its load (the other parts' jobs find it over)."""
    with connect(url) as conn:
        if part is not None:
            execute(
                conn,
                """UPDATE load_parts SET status = 'failed', error = $3
                   WHERE load_id = $1 AND part = $2""",
                (load_id, part, reason),
            )
        still = scalar(conn, "SELECT status FROM load_runs WHERE id = $1", (load_id,))
        if still in ("queued", "running"):
            _ledger.stop_here(conn, load_id, "failed", reason)
            execute(conn, "UPDATE load_runs SET phase = 'done' WHERE id = $1", (load_id,))
        drop_staging(conn, load_id)


PLANNED = "plan:-1"  # load_runs.advanced_by once the plan job has planned the load
_WAITING = {"stage": "queued", "write": "staged"}  # a part's status while its phase waits


def parts_at(source: str, spec: TableSpec) -> list[SourceFile]:
    """The parts of a load's source as they are now (``<folder>/<table>-*.csv``: that
    folder's)."""
    folder = source.rsplit("/", 1)[0] if source.endswith("-*.csv") else source
    found = _storage.find_parts(folder, spec)
    if found is None:
        raise SourceNotFoundError(f"{source} holds no part files any more")
    return found.files


def run_part_job(url: str, load_id: int, number: int, phase: str, cancel: threading.Event,
                 defer: Defer, lock_timeout: float, worker: str,
                 verify: bool = False) -> None:  # fmt: skip
    """A queued load's job for one part (or, ``plan``, for the whole load: which parts,
    which skipped, decided when it runs): its phase's work, then, if it was the
    phase's last part, the step after it and the next phase's jobs (``defer``). A job
    whose part another job holds, or whose work is done (a retry), does nothing but
    that last step: a job queued twice does no harm, and the job that took a step,
    run again because its worker died before queueing the next jobs, queues them."""
    with connect(url) as conn:
        ensure_schema(conn, url)
        found = execute(
            conn,
            "SELECT table_name, source, status, phase, advanced_by FROM load_runs WHERE id = $1",
            (load_id,),
        )
        if not found or found[0][2] not in ("queued", "running"):
            return  # the load ended meanwhile (failed, say)
        table, source, _, now, by = found[0]
        spec = get_table(table)
        key = f"part:{load_id}:{number}"
        if not scalar(conn, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", (key,)):
            return  # another job works on this part now
        _locks.hold_for_load(conn, spec, None, lock_timeout)
        execute(
            conn,
            """UPDATE load_runs SET status = 'running', attempt = 1
               WHERE id = $1 AND status = 'queued'""",
            (load_id,),
        )
        follow: tuple[str, list[int]] | None
        if phase == "plan":
            follow = None
            if now == "plan":
                if begin(conn, spec, load_id, parts_at(source, spec), verify=verify):
                    drop_staging(conn, load_id)
                else:
                    follow = ("stage", waiting(conn, load_id))
            elif by == PLANNED and now == "stage":  # planned, then died before queueing
                follow = ("stage", waiting(conn, load_id))
        else:
            part = Part.read(conn, load_id, number)
            if part.status == _WAITING[phase]:
                if phase == "stage":
                    stage_part(conn, part, cancel.is_set, worker)
                else:
                    write_part(conn, part, cancel.is_set, Tally())
            follow = _after(conn, load_id, spec, phase, number)
        _locks.release_all(conn)
    if follow and follow[1]:
        defer(load_id, *follow)


def _after(
    conn: Connection, load_id: int, spec: TableSpec, phase: str, number: int
) -> tuple[str, list[int]] | None:
    """If ``phase`` is over for every part, the step after it, once (the load's row is
    held meanwhile), recorded as this job's; the phase whose jobs come next, and for
    which parts. A job that took such a step before (it is run again: its worker died
    before queueing the jobs after it) queues them again, once more."""
    me = f"{phase}:{number}"
    execute(conn, "BEGIN")
    try:
        now, by = execute(
            conn, "SELECT phase, advanced_by FROM load_runs WHERE id = $1 FOR UPDATE", (load_id,)
        )[0]
        follow = None
        if now == phase and not _parts_in(conn, load_id, _WAITING[phase]):
            execute(conn, "UPDATE load_runs SET advanced_by = $2 WHERE id = $1", (load_id, me))
            if phase == "stage":
                parts = settle(conn, load_id, spec)
                next_phase = scalar(conn, "SELECT phase FROM load_runs WHERE id = $1", (load_id,))
                follow = (str(next_phase), parts)
            else:
                close(conn, load_id, spec)
        elif by == me and now in _WAITING:
            follow = (str(now), _parts_in(conn, load_id, _WAITING[now]))
        execute(conn, "COMMIT")
    except BaseException:
        with suppress(HrcoreError):
            execute(conn, "ROLLBACK")
        raise
    return follow


def run_here(
    url: str,
    spec: TableSpec,
    source: str,
    parts: list[SourceFile],
    *,
    batch_size: int,
    threads: int,
    limits: Limits,
    cancel: threading.Event | None,
    verify: bool,
) -> LoadReport:
    """A load of parts, its phases run by ``threads`` threads of this process."""
    halt = threading.Event()  # set when one part fails: the others stop at a boundary
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def should_stop() -> bool:
        return halt.is_set() or (cancel is not None and cancel.is_set())

    with connect(url) as conn:
        ensure_schema(conn, url)
        _ledger.reap_stale(conn)
        _locks.hold_for_load(conn, spec, source, limits.lock_timeout)
        queued = scalar(
            conn,
            """SELECT min(id) FROM load_runs WHERE table_name = $1 AND source = $2
               AND status IN ('queued', 'running')""",
            (spec.name, source),
        )
        if queued is not None:  # on the queue: its jobs hold no lock of the files
            raise BusyError(f"{source} is being loaded into {spec.name} by load {queued}",
                            holder=int(queued))  # fmt: skip
        load_id = _ledger.start(conn, spec.name, source, identity_of(parts), batch_size)
        try:
            if begin(conn, spec, load_id, parts, verify=verify):
                drop_staging(conn, load_id)
                _locks.release_all(conn)
                return _ledger.report(conn, load_id)

            def each(numbers: list[int], work: Callable[[Connection, Part], None]) -> None:
                def one(number: int) -> None:
                    with connect(url) as own:
                        work(own, Part.read(own, load_id, number))

                with ThreadPoolExecutor(max_workers=threads) as pool:
                    try:
                        for done in [pool.submit(one, n) for n in numbers]:
                            done.result()
                    except BaseException:
                        halt.set()
                        raise

            tally = Tally()
            waiting = _parts_in(conn, load_id, "queued")
            for _ in range(len(parts) + 1):  # each round stages one skipped part at least
                each(waiting, lambda c, p: stage_part(c, p, should_stop, worker))
                execute(conn, "BEGIN")
                waiting = settle(conn, load_id, spec)
                execute(conn, "COMMIT")
                if scalar(conn, "SELECT phase FROM load_runs WHERE id = $1", (load_id,)) == "write":
                    break
            else:
                raise DatabaseError(f"load {load_id}: its parts did not settle (a bug)")
            each(waiting, lambda c, p: write_part(c, p, should_stop, tally))
            close(conn, load_id, spec)
        except BaseException as exc:
            with suppress(HrcoreError):
                execute(conn, "ROLLBACK")
            stopped = exc
        else:
            _locks.release_all(conn)
            return _ledger.report(conn, load_id)
    raise _stopped(url, spec, source, load_id, stopped)


def waiting(conn: Connection, load_id: int) -> list[int]:
    """The parts of a load still to be staged (or read for their ids)."""
    return _parts_in(conn, load_id, "queued")


def _parts_in(conn: Connection, load_id: int, status: str) -> list[int]:
    return [
        int(n)
        for (n,) in execute(
            conn,
            "SELECT part FROM load_parts WHERE load_id = $1 AND status = $2 ORDER BY part",
            (load_id, status),
        )
    ]


def _stopped(
    url: str, spec: TableSpec, source: str, load_id: int, exc: BaseException
) -> BaseException:
    """The error to raise for a load of parts that stopped, once its ledger entry says so."""
    cancelled = isinstance(exc, StopRequested | KeyboardInterrupt)
    status = "cancelled" if cancelled else "failed"
    reason = "cancelled: the load was asked to stop" if cancelled else first_line(exc)
    try:
        with connect(url) as conn:
            _ledger.stop_here(conn, load_id, status, reason)
            execute(conn, "UPDATE load_runs SET phase = 'done' WHERE id = $1", (load_id,))
            drop_staging(conn, load_id)
            report = _ledger.report(conn, load_id)
    except HrcoreError:  # the database is gone too: the next load reaps the entry
        return exc
    if isinstance(exc, SourceFormatError):
        return exc
    kind = LoadCancelledError if cancelled else LoadFailedError
    verb = "was cancelled" if cancelled else "failed"
    return kind(
        f"loading {spec.name} from the parts at {source} {verb} after {report.batches} "
        f"committed batches ({report.rows_read:,} rows): {reason}",
        report,
    )
