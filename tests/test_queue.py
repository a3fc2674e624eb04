"""Loads as jobs: queued by the API or the CLI, run by real ``hrcore worker`` processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hrcore
import pytest
from hrcore_api.app import create_app
from hrcore_api.settings import Settings
from litestar.testing import TestClient

from tests.conftest import query, queued, run_queue, wait_until, write
from tests.test_faults import employee_rows

BIN = Path(sys.executable).parent
ROWS, BATCH = 60_000, 100
OF_LOAD = "FROM load_batches WHERE load_id = $1"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("big"), "hired_employees.csv", employee_rows(ROWS))


class Workers:
    """``hrcore worker`` processes of a test, with short heartbeats (a silent worker
    counts as dead after 2 s), each logging to a file; all stopped at the end."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder = url, folder
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *options: str) -> subprocess.Popen[str]:
        command = [str(BIN / "hrcore"), "worker", "--database-url", self.url,
                   "--heartbeat", "0.5", "--stalled-after", "2", *options]  # fmt: skip
        with (self.folder / f"worker-{len(self.started)}.log").open("w") as log:  # the child's now
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        self.started.append(process)
        return process

    def log(self, index: int) -> str:
        return (self.folder / f"worker-{index}.log").read_text()

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture
def workers(refs: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(refs, tmp_path)
    yield started
    started.stop_all()


def committed(url: str, load_id: int) -> int:
    return int(query(url, f"SELECT count(*) {OF_LOAD}", (load_id,))[0][0])


def job_of(url: str, load_id: int) -> tuple[Any, ...]:
    [job] = query(
        url,
        """SELECT j.status::text, j.attempts FROM procrastinate_jobs j
           JOIN load_runs r ON r.job_id = j.id WHERE r.id = $1""",
        (load_id,),
    )
    return job


def reconciles(report: hrcore.LoadReport) -> bool:
    return report.rows_read == (
        report.rows_inserted + report.rows_updated + report.rows_unchanged + report.rows_rejected
    )


def test_two_posts_of_the_same_file_are_one_load_run_by_a_worker(refs: str) -> None:
    with TestClient(app=create_app(Settings(database_url=refs))) as api:
        first = queued(api.post("/employees/batch"))
        second = queued(api.post("/employees/batch", json={"batch_size": 10}))
        other = queued(api.post("/jobs/batch"))  # another file: a load of its own
        assert first == second != other
        assert api.get(f"/loads/{first}").json()["status"] == "queued"
        assert query(refs, "SELECT count(*) FROM procrastinate_jobs") == [(2,)]
        run_queue(refs)
        done = api.get(f"/loads/{first}").json()
        again = queued(api.post("/employees/batch"))  # the first is over: a new load
    assert (done["status"], done["rows_read"], done["batches"]) == ("succeeded", 2000, 2)
    assert (done["attempt"], done["earlier_attempts"]) == (1, [])
    assert done["worker"]
    assert again not in (first, other)
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(done["rows_inserted"],)]


def test_the_cli_queues_a_load_and_a_worker_runs_it(refs: str, big_file: Path) -> None:
    def enqueue() -> dict[str, Any]:
        done = subprocess.run(
            [str(BIN / "hrcore"), "load", "--source", str(big_file), "--enqueue", "--json",
             "--batch-size", "500", "--database-url", refs],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        [load] = json.loads(done.stdout)["loads"]
        return dict(load)

    first, second = enqueue(), enqueue()
    assert first["status"] == "queued"
    assert second["load_id"] == first["load_id"]
    worker = subprocess.run(
        [str(BIN / "hrcore"), "worker", "--until-empty", "--database-url", refs],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stdout + worker.stderr
    report = hrcore.get_load(first["load_id"], database_url=refs)
    assert (report.status, report.rows_inserted, report.batches) == ("succeeded", ROWS, 120)
    assert job_of(refs, report.load_id) == ("succeeded", 1)


def test_a_worker_killed_mid_load_leaves_a_job_another_worker_finishes(
    refs: str, big_file: Path, workers: Workers
) -> None:
    load = hrcore.enqueue(big_file, batch_size=BATCH, database_url=refs)
    first = workers.start("--concurrency", "1", "--writers", "1")
    wait_until(lambda: committed(refs, load.load_id) >= 5, "five batches committed")
    first.kill()  # SIGKILL: no last word from the worker or its load
    first.wait(10)
    dead_batches = committed(refs, load.load_id)
    assert dead_batches < ROWS // BATCH
    workers.start()

    def over() -> bool:
        return hrcore.get_load(load.load_id, database_url=refs).status not in ("queued", "running")

    wait_until(over, "another worker finishes the load", timeout=180)
    report = hrcore.get_load(load.load_id, database_url=refs)
    assert report.status == "succeeded", report
    assert report.attempt == 2
    [dead] = report.earlier_attempts
    assert (dead.attempt, dead.status) == (1, "failed")
    assert dead.batches >= dead_batches  # what it had committed when it died
    assert dead.rows_written == dead.batches * BATCH
    assert "ended before the load finished" in (dead.error or "")
    assert dead.worker != report.worker
    # the retry read the whole file: the dead attempt's rows were there, unchanged
    assert reconciles(report)
    assert report.rows_read == ROWS
    assert report.rows_unchanged == dead.rows_written
    assert report.rows_inserted == ROWS - dead.rows_written
    assert report.batches == ROWS // BATCH
    assert query(refs, "SELECT count(*), count(DISTINCT id) FROM hired_employees") == [(ROWS, ROWS)]
    assert job_of(refs, load.load_id) == ("succeeded", 2)
    assert "lost its worker: queued again" in workers.log(1)


def test_sigterm_stops_a_workers_load_at_a_batch_boundary_and_requeues_it(
    refs: str, big_file: Path, workers: Workers
) -> None:
    load = hrcore.enqueue(big_file, batch_size=BATCH, database_url=refs)
    worker = workers.start("--grace", "0", "--writers", "1")
    wait_until(lambda: committed(refs, load.load_id) >= 3, "three batches committed")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0, workers.log(0)

    stopped = hrcore.get_load(load.load_id, database_url=refs)
    assert stopped.status == "cancelled"
    assert 3 <= stopped.batches < ROWS // BATCH
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(stopped.batches * BATCH,)]
    assert job_of(refs, load.load_id) == ("todo", 1)  # back on the queue, ready now
    assert "Traceback" not in workers.log(0)
    run_queue(refs)
    report = hrcore.get_load(load.load_id, database_url=refs)
    assert (report.status, report.attempt, report.rows_read) == ("succeeded", 2, ROWS)
    assert [(a.status, a.batches) for a in report.earlier_attempts] == [
        ("cancelled", stopped.batches)
    ]
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(ROWS,)]


def test_a_queued_load_whose_file_is_gone_fails_once_with_the_reason(
    refs: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "hired_employees.csv", employee_rows(10))
    load = hrcore.enqueue(path, database_url=refs)
    path.unlink()
    run_queue(refs)
    report = hrcore.get_load(load.load_id, database_url=refs)
    assert report.status == "failed"
    assert "no such file" in (report.error or "")
    assert job_of(refs, load.load_id) == ("failed", 1)  # not retried: nothing would change


def test_a_queued_load_whose_job_is_gone_is_failed_by_the_next_enqueue(refs: str) -> None:
    load = hrcore.enqueue(table="jobs", database_url=refs)
    query(refs, "DELETE FROM procrastinate_jobs")  # an operator cleared the queue
    again = hrcore.enqueue(table="jobs", database_url=refs)
    assert again.load_id != load.load_id
    report = hrcore.get_load(load.load_id, database_url=refs)
    assert (report.status, report.error) == ("failed", "its job ended before a worker ran the load")


def test_a_queued_load_of_an_unchanged_file_is_skipped_like_a_direct_one(
    refs: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "hired_employees.csv", employee_rows(30))
    first = hrcore.enqueue(path, database_url=refs)
    run_queue(refs)
    second = hrcore.enqueue(path, database_url=refs)
    run_queue(refs)
    again = hrcore.get_load(second.load_id, database_url=refs)
    assert (again.status, again.same_as) == ("skipped", first.load_id)
    # a direct load after a queued one skips too: the queued one recorded the file
    direct = hrcore.load(path, database_url=refs)
    assert (direct.status, direct.same_as) == ("skipped", first.load_id)
