"""Fault injection with real processes: loads killed at five points, Ctrl-C, PostgreSQL and
S3 dying mid-load, backups killed mid-way. Every wait here is bounded.

After each fault: only whole batches are committed, the ledger says what happened
(the dead load ``failed`` once the next load has looked, a stopped one
``cancelled``) and a re-run converges to exactly the file's rows.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

import boto3
import hrcore
import pytest
from hrcore._db import connect, execute
from hrcore._storage import BLOCK_BYTES
from moto.server import ThreadedMotoServer

from tests.conftest import InThread, query, wait_until, write
from tests.servers import OwnServer
from tests.servers import own_server as own_server  # the fixture

ROWS, BATCH = 200_000, 1000


def employee_rows(n: int) -> str:
    return "".join(f"{i},Name {i},2021-0{i % 9 + 1}-15T10:00:00Z,{i % 3 + 1},{i % 3 + 1}\n"
                   for i in range(1, n + 1))  # fmt: skip


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("big")
    return write(folder, "hired_employees.csv", employee_rows(ROWS))


def start_load(url: str, path: Path, *options: str) -> subprocess.Popen[str]:
    """``hrcore load`` of the employees file as its own process (one writer, 1000-row batches)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hrcore.cli", "load", "hired_employees", "--source", str(path),
         "--database-url", url, "--batch-size", str(BATCH), "--writers", "1", "--silent",
         *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def running_load(url: str) -> tuple[int, int] | None:
    """(id, owner backend pid) of the running load, if there is one."""
    found = query(url, "SELECT id, owner_pid FROM load_runs WHERE status = 'running'")
    return (int(found[0][0]), int(found[0][1])) if found else None


OF_LOAD = "FROM load_batches WHERE load_id = $1"


def committed_batches(url: str, load_id: int) -> list[int]:
    return [b for (b,) in query(
        url, "SELECT batch FROM load_batches WHERE load_id = $1 ORDER BY batch", (load_id,)
    )]  # fmt: skip


def backend(url: str, pid: int) -> tuple[str, str | None, str] | None:
    """(state, wait event type, query) of a backend, or None once it is gone."""
    found = query(
        url, "SELECT state, wait_event_type, query FROM pg_stat_activity WHERE pid = $1", (pid,)
    )
    return (found[0][0], found[0][1], found[0][2]) if found else None


def writers(url: str, load_id: int) -> list[int]:
    """The backends of a load's writers: they say which load they write for."""
    return [pid for (pid,) in query(
        url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = $1",
        (f"hrcore writer of load {load_id}",),
    )]  # fmt: skip


def batches_of(path: Path) -> list[list[int]]:
    """The ids of each batch a load of ``path`` makes (a clean file, one row per line):
    the rows as each block read completes them (a batch never spans two blocks), then
    by BATCH rows."""
    data, batches, start = path.read_bytes(), [], 0
    for block_end in range(BLOCK_BYTES, len(data) + BLOCK_BYTES, BLOCK_BYTES):
        end = data.rfind(b"\n", 0, min(block_end, len(data))) + 1  # rows whole by then
        ids = [int(row.split(b",", 1)[0]) for row in data[start:end].splitlines()]
        batches += [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]
        start = end
    return batches


def only_whole_batches(url: str, load_id: int, path: Path) -> None:
    """The table holds exactly the rows of the load's committed batches, each batch
    whole, and the ledger counts them."""
    batches = committed_batches(url, load_id)
    expected = sorted((i,) for b in batches for i in batches_of(path)[b])
    assert query(url, "SELECT id FROM hired_employees ORDER BY id") == expected
    sums = "SELECT count(*), coalesce(sum(rows_inserted), 0) FROM load_batches WHERE load_id = $1"
    assert query(url, sums, (load_id,)) == [(len(batches), len(expected))]


def rerun_converges(url: str, path: Path, dead: int, status: str = "failed") -> None:
    """The next load marks the dead one, and leaves the table equal to the file."""
    before = query(url, "SELECT count(*) FROM hired_employees")[0][0]
    rerun = hrcore.load(path, database_url=url, batch_size=BATCH)
    assert (rerun.status, rerun.rows_read, rerun.rows_rejected) == ("succeeded", ROWS, 0)
    assert (rerun.rows_inserted, rerun.rows_unchanged) == (ROWS - before, before)
    assert query(url, "SELECT count(*), min(id), max(id) FROM hired_employees") == [(ROWS, 1, ROWS)]
    assert query(url, "SELECT status FROM load_runs WHERE id = $1", (dead,)) == [(status,)]
    assert query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'hrcore_staging'") == [
        (0,)
    ]


def kill(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate(timeout=30)  # reaps it and closes its pipes


def until_stopped_between_batches(url: str, process: subprocess.Popen[str], load_id: int) -> None:
    """Freeze the loader when its writer is idle between two batches."""
    wait_until(lambda: len(committed_batches(url, load_id)) >= 3, "three batches committed")

    def frozen_while_idle() -> bool:
        process.send_signal(signal.SIGSTOP)
        states = [backend(url, pid) for pid in writers(url, load_id)]
        if states and all(s is not None and s[0] == "idle" for s in states):
            return True
        process.send_signal(signal.SIGCONT)
        return False

    wait_until(frozen_while_idle, "the loader frozen between two batches")


@pytest.mark.parametrize("point", ["reading", "writing", "between_batches", "inside_a_batch",
                                   "finishing"])  # fmt: skip
def test_a_load_killed_at_any_point_commits_whole_batches_and_a_rerun_converges(
    refs: str, big_file: Path, point: str
) -> None:
    blockers = ExitStack()
    blocker = None
    if point == "inside_a_batch":  # an uncommitted row of batch 50 holds that batch inside
        blocker = blockers.enter_context(connect(refs, autocommit=False))
        execute(blocker, "INSERT INTO hired_employees VALUES (50500, 'x', now(), 1, 1)")
    process = start_load(refs, big_file)
    try:
        wait_until(lambda: running_load(refs) is not None, "the load starts")
        load = running_load(refs)
        assert load is not None
        load_id, pid = load
        if point == "writing":  # while batches are being read and written
            wait_until(lambda: committed_batches(refs, load_id) != [], "a batch committed")
        elif point == "between_batches":
            until_stopped_between_batches(refs, process, load_id)
        elif point == "inside_a_batch":
            wait_until(
                lambda: any((backend(refs, w) or ("", "", ""))[1] == "Lock"
                            for w in writers(refs, load_id)),
                "batch 50 waits inside its statement",
            )  # fmt: skip
        elif point == "finishing":  # the ledger's last word waits on the load's own row
            blocker = blockers.enter_context(connect(refs, autocommit=False))
            execute(blocker, f"SELECT 1 FROM load_runs WHERE id = {load_id} FOR NO KEY UPDATE")
            wait_until(lambda: (backend(refs, pid) or ("", "", ""))[2].startswith(
                "UPDATE load_runs r SET status"), "the load waits to say it is done")  # fmt: skip
        sessions = [pid, *writers(refs, load_id)]
        kill(process)
        # the server drops a dead client's statement, even one waiting for a lock
        wait_until(lambda: all(backend(refs, s) is None for s in sessions), "its sessions end")
    finally:
        if process.poll() is None:
            kill(process)
        if blocker is not None:
            blocker.rollback()
        blockers.close()

    assert query(refs, "SELECT status FROM load_runs WHERE id = $1", (load_id,)) == [("running",)]
    only_whole_batches(refs, load_id, big_file)
    if point == "finishing":  # every batch was committed
        assert query(refs, "SELECT count(*) FROM hired_employees") == [(ROWS,)]
    rerun_converges(refs, big_file, load_id)
    assert query(
        refs, "SELECT rows_inserted, batches FROM load_runs WHERE id = $1", (load_id,)
    ) == (query(refs, f"SELECT coalesce(sum(rows_inserted), 0), count(*) {OF_LOAD}", (load_id,)))


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_a_load_at_a_batch_boundary(
    refs: str, big_file: Path, sent: signal.Signals
) -> None:
    process = start_load(refs, big_file, "--json")
    wait_until(lambda: running_load(refs) is not None, "the load starts")
    load = running_load(refs)
    assert load is not None
    wait_until(lambda: len(committed_batches(refs, load[0])) >= 3, "three batches committed")
    process.send_signal(sent)
    _, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert "cancelled" in err
    assert len(err.strip().splitlines()) == 1
    [(rows, batches)] = query(refs, f"SELECT sum(rows_inserted), count(*) {OF_LOAD}", (load[0],))
    assert 0 < rows < ROWS
    assert query(refs, "SELECT status, rows_inserted, batches FROM load_runs WHERE id = $1",
                 (load[0],)) == [("cancelled", rows, batches)]  # fmt: skip
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(rows,)]
    rerun_converges(refs, big_file, load[0], status="cancelled")


def test_postgresql_stopped_mid_load_is_a_clear_error_and_a_rerun_converges(
    own_server: OwnServer, big_file: Path, tmp_path: Path
) -> None:
    url = own_server.url
    for name in ("departments.csv", "jobs.csv"):
        hrcore.load(write(tmp_path, name, "1,A\n2,B\n3,C\n"), database_url=url)
    five_batches = threading.Event()

    def note(progress: hrcore.Progress) -> None:
        if progress.phase == "write" and progress.done >= 5 * BATCH:
            five_batches.set()

    loading = InThread(
        lambda: hrcore.load(big_file, database_url=url, batch_size=BATCH, writers=1, progress=note)
    )
    assert five_batches.wait(120)
    own_server.stop("immediate")
    failure = loading.outcome()

    assert isinstance(failure, hrcore.LoadFailedError)
    report = failure.report
    assert report.status == "failed"
    assert report.error
    assert report.batches >= 5
    assert report.rows_read == report.rows_inserted >= 5 * BATCH
    own_server.start()
    assert query(url, "SELECT count(*) FROM hired_employees")[0][0] >= report.rows_inserted
    dead = report.load_id
    # the unlogged staging table went with the crash: the counts must still agree
    assert query(url, "SELECT count(*) FROM hired_employees") == query(
        url, "SELECT sum(rows_inserted) FROM load_batches WHERE load_id = $1", (dead,)
    )
    rerun_converges(url, big_file, dead)


def test_s3_dying_mid_read_is_a_clear_error_and_a_rerun_converges(
    refs: str, big_file: Path
) -> None:
    def serve() -> tuple[ThreadedMotoServer, str]:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        s3.create_bucket(Bucket="faults")
        s3.upload_file(str(big_file), "faults", "hired_employees.csv")
        return server, endpoint

    server, endpoint = serve()

    def stop_s3_after_the_first_block(progress: hrcore.Progress) -> None:
        if progress.phase == "read":
            server.stop()

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        failure = InThread(
            lambda: hrcore.load(
                "s3://faults/",
                table="hired_employees",
                database_url=refs,
                progress=stop_s3_after_the_first_block,
            )
        ).outcome(120)
        assert isinstance(failure, hrcore.LoadFailedError)
        assert "reading s3://faults/hired_employees.csv failed" in str(failure)
        assert failure.report.status == "failed"
        # what the writers committed before the read broke: whole batches, in the ledger
        committed = "SELECT coalesce(sum(rows_inserted), 0) FROM load_batches WHERE load_id = $1"
        assert query(refs, "SELECT count(*) FROM hired_employees") == query(
            refs, committed, (failure.report.load_id,)
        )

        server, endpoint = serve()
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        try:
            again = hrcore.load("s3://faults/", table="hired_employees", database_url=refs)
        finally:
            server.stop()
    assert (again.status, again.rows_inserted + again.rows_unchanged) == ("succeeded", ROWS)
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(ROWS,)]


def fill_employees(url: str, rows: int) -> None:
    query(url, f"""INSERT INTO hired_employees
        SELECT g, 'Employee ' || g, timestamptz '2021-01-01 00:00:00+00' + g * interval '1 minute',
               1 + g % 3, 1 + g % 3 FROM generate_series(1, {rows:d}) AS g""")  # fmt: skip


def test_a_backup_killed_midway_leaves_nothing_under_a_backup_name(
    refs: str, tmp_path: Path
) -> None:
    fill_employees(refs, 1_000_000)
    folder = tmp_path / "backups"
    process = subprocess.Popen(
        [sys.executable, "-m", "hrcore.cli", "backup", "hired_employees", "--to", str(folder),
         "--database-url", refs],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: any(p.stat().st_size > 0 for p in folder.glob(".*.partial")),
                   "the backup is being written")  # fmt: skip
    finally:
        kill(process)

    assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == []
    assert hrcore.list_backups("hired_employees", location=folder) == []


def test_a_backup_to_s3_failing_midway_leaves_no_object(
    refs: str, s3_endpoint: str, bucket: str
) -> None:
    fill_employees(refs, 1_000_000)
    backing = InThread(
        lambda: hrcore.backup("hired_employees", to=f"s3://{bucket}/backups/", database_url=refs)
    )
    streaming = (
        "FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'hrcore' "
        "AND query LIKE 'COPY (SELECT id, name%' AND pid <> pg_backend_pid()"
    )
    wait_until(lambda: query(refs, f"SELECT count(*) {streaming}") == [(1,)], "the backup streams")
    query(refs, f"SELECT pg_terminate_backend(pid) {streaming}")
    failure = backing.outcome()
    assert isinstance(failure, hrcore.DatabaseError)
    listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 0
    assert hrcore.list_backups("hired_employees", location=f"s3://{bucket}/backups/") == []
