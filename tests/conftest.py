"""Shared fixtures: a real PostgreSQL database and a real S3 emulator (moto's server)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

import boto3
import hrcore
import pytest
from hrcore import _embedded
from hrcore._db import connect, execute
from moto.server import ThreadedMotoServer

T = TypeVar("T")
DATA_TABLES = ("hired_employees", "jobs", "departments")
LEDGER_TABLES = ("rejected_rows", "load_batches", "load_runs")
QUEUE_TABLES = ("procrastinate_jobs", "procrastinate_workers")


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url() -> str:
    """HRCORE_TEST_DATABASE_URL when set (CI), else the embedded server."""
    return os.environ.get("HRCORE_TEST_DATABASE_URL") or _embedded.start()


@pytest.fixture(scope="session")
def database(server_url: str) -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    name = f"hrcore_test_{uuid.uuid4().hex[:12]}"
    with connect(server_url) as conn:
        execute(conn, f"CREATE DATABASE {name}")
    url = with_database(server_url, name)
    with connect(url) as conn:
        hrcore.init_schema(conn)
    yield url
    with connect(server_url) as conn:
        execute(conn, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def db(database: str) -> str:
    """The session database, emptied: each test starts with no rows and no loads."""
    with connect(database) as conn:
        tables = ", ".join(DATA_TABLES + LEDGER_TABLES + QUEUE_TABLES)
        execute(conn, f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return database


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait for a condition to hold (checked every 20 ms), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.02)


class InThread(Generic[T]):
    """Work run in a thread of its own, started at once. :meth:`outcome` is what it
    returned or the exception it raised; it fails the test if the work still runs."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._done: list[T | BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._done.append(work())
        except BaseException as exc:
            self._done.append(exc)

    def outcome(self, timeout: float = 60.0) -> T | BaseException:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"still running after {timeout:g} s: a hang"
        return self._done[0]

    def result(self, timeout: float = 60.0) -> T:
        """What the work returned; what it raised is raised here."""
        done = self.outcome(timeout)
        if isinstance(done, BaseException):
            raise done
        return done


def run_queue(url: str) -> None:
    """Run the queued loads of ``url`` with a real worker, until none is ready."""
    hrcore.run_worker(database_url=url, until_empty=True)


def queued(answer: Any) -> int:
    """The load id of a ``POST /{table}/batch`` answer: a 202 pointing at the load."""
    assert answer.status_code == 202, answer.text
    load_id = int(answer.json()["load_id"])
    assert answer.headers["location"] == f"/loads/{load_id}"
    assert answer.json()["status"] in ("queued", "running")
    return load_id


def query(url: str, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    with connect(url) as conn:
        return execute(conn, sql, params)


SUMMARY = """SELECT y, q, d, j, sum(n)::bigint FROM (
    SELECT year, quarter, department_id, job_id, hires FROM hire_counts
    UNION ALL SELECT u.* FROM hire_count_deltas AS h,
        unnest(h.years, h.quarters, h.department_ids, h.job_ids, h.hires) AS u
) AS s(y, q, d, j, n) GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4"""
FROM_THE_TABLE = """SELECT extract(year FROM datetime AT TIME ZONE 'UTC')::int,
    extract(quarter FROM datetime AT TIME ZONE 'UTC')::int, department_id, job_id,
    count(*)::bigint FROM hired_employees GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"""


def waiting_on_a_lock(url: str, statement: str) -> bool:
    """Whether one session of this database waits on a lock in a statement that starts
    with ``statement``."""
    return query(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE $1",
        (statement + "%",),
    ) == [(1,)]


def summary_is_exact(url: str) -> bool:
    """The metrics' summary (folded counts plus deltas) equals a count of the table."""
    return query(url, SUMMARY) == query(url, FROM_THE_TABLE)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


REFERENCE_CSV = {
    "departments.csv": "1,Supply Chain\n2,Maintenance\n3,Staff\n",
    "jobs.csv": "1,Recruiter\n2,Manager\n3,Analyst\n",
}


@pytest.fixture
def refs(db: str, tmp_path: Path) -> str:
    """Departments 1-3 and jobs 1-3 loaded; returns the database URL."""
    for name, text in REFERENCE_CSV.items():
        hrcore.load(write(tmp_path, name, text), database_url=db)
    return db


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback, with the AWS environment pointing at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
    )
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


_AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A new empty bucket on the emulator."""
    name = f"hr-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def upload(endpoint: str, bucket: str, key: str, path: Path) -> None:
    boto3.client("s3", endpoint_url=endpoint).upload_file(str(path), bucket, key)
