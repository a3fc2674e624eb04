"""The HTTP API when things go wrong: a database or S3 that does not answer, a
password in the URL, a broken schema, NUL bytes, oversized names, a blocking call on
the event loop, and a SIGTERM in the middle of a load. Real PostgreSQL, real S3
emulators (moto's server, started and stopped here), a real server process."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import hrcore
import httpx
import pytest
from hrcore_api import create_app
from hrcore_api.settings import Settings
from litestar.testing import TestClient
from moto.server import ThreadedMotoServer

from tests.conftest import (
    InThread,
    query,
    queued,
    run_queue,
    upload,
    with_database,
    write,
)
from tests.test_api import employee

Call = tuple[str, str, dict[str, Any]]


def client(**settings: Any) -> TestClient[Any]:
    return TestClient(app=create_app(Settings(**settings)))


def is_error(answer: httpx.Response, status: int) -> bool:
    """An answer of that status whose body is exactly ``{"error", "detail"}``."""
    if answer.status_code != status:
        return False
    body = answer.json()
    return set(body) == {"error", "detail"} and all(isinstance(v, str) for v in body.values())


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def logged_text(records: list[logging.LogRecord]) -> str:
    """Everything the log records say, as a formatter would write it (tracebacks too)."""
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in records)


# -- 1. a password never reaches a caller, nor the log; SQL text never reaches a caller


DATABASE_CALLS: list[Call] = [
    ("GET", "/health-db", {}),
    ("GET", "/jobs", {}),
    ("GET", "/jobs/1", {}),
    ("POST", "/jobs", {"json": {"rows": [{"id": 1, "job": "x"}]}}),
    ("POST", "/jobs", {"content": "1,x\n", "headers": {"content-type": "text/csv"}}),
    ("GET", "/metrics/hires-by-quarter", {}),
    ("GET", "/metrics/departments-above-mean", {}),
    ("POST", "/jobs/batch", {}),
    ("POST", "/employees/batch", {"json": {"batch_size": 10}}),
    ("GET", "/loads", {}),
]


@pytest.mark.parametrize(
    ("url", "pieces"),
    [
        ("postgresql://bob:Sup3r@S3cret@127.0.0.1:1/db", ["Sup3r", "S3cret"]),
        ("postgresql://bob:my pass@127.0.0.1:1/db", ["my pass", "my%20pass", "my+pass"]),
        ("postgresql://bob:Sup3r%40S3cret@127.0.0.1:1/db", ["Sup3r", "S3cret"]),
        ("postgresql://bob@127.0.0.1:1/db?password=Sup3rS3cret", ["Sup3r", "S3cret"]),
    ],
)
def test_a_password_never_reaches_a_caller_or_the_log(
    url: str, pieces: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = {}
    with client(database_url=url) as c:
        for method, path, options in DATABASE_CALLS:
            answers[method, path] = c.request(method, path, **options)
    assert {key: is_error(answer, 503) for key, answer in answers.items()} == dict.fromkeys(
        answers, True
    )
    said = "\n".join(answer.text for answer in answers.values())
    logged = logged_text(caplog.records)
    assert "database_unavailable" in said
    assert "health-db" in logged  # the log was captured: the failed check is in it
    for piece in pieces:
        assert piece not in said, piece
        assert piece not in logged, piece


@pytest.fixture
def throwaway(server_url: str) -> Iterator[str]:
    """A database of its own with hrcore's schema, for a test to break; dropped after."""
    name = f"hrcore_broken_{uuid.uuid4().hex[:10]}"
    query(server_url, f"CREATE DATABASE {name}")
    url = with_database(server_url, name)
    with hrcore.connect(url) as conn:
        hrcore.init_schema(conn)
    hrcore.load_rows("departments", [{"id": 1, "department": "Sales"}], database_url=url)
    hrcore.load_rows("jobs", [{"id": 1, "job": "Analyst"}], database_url=url)
    yield url
    query(server_url, f"DROP DATABASE {name} WITH (FORCE)")


SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|COPY|FROM|WHERE|ORDER BY|LINE \d+)\b")


@pytest.mark.parametrize(
    ("breakage", "calls"),
    [
        (
            "ALTER TABLE jobs RENAME COLUMN job TO title",
            [
                ("GET", "/jobs", {}),
                ("GET", "/jobs/1", {}),
                ("POST", "/jobs", {"json": {"rows": [{"id": 2, "job": "x"}]}}),
                ("POST", "/backups/jobs", {}),
                ("GET", "/metrics/hires-by-quarter", {}),
            ],
        ),
        (
            "ALTER TABLE hired_employees RENAME COLUMN name TO full_name",
            [
                ("GET", "/employees", {}),
                # a valid row: a rejected one would never reach the table
                ("POST", "/employees", {"json": {"rows": [employee(1, job_id=1)]}}),
                ("POST", "/backups/employees", {}),
            ],
        ),
        (
            "DROP TABLE load_batches CASCADE",
            [
                ("POST", "/jobs", {"json": {"rows": [{"id": 2, "job": "x"}]}}),
                ("POST", "/departments/batch", {}),
                ("GET", "/loads", {}),
            ],
        ),
    ],
)
def test_a_failing_statement_is_a_503_without_its_sql(
    throwaway: str,
    breakage: str,
    calls: list[Call],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # backups go to ./backups
    query(throwaway, breakage)
    with client(database_url=throwaway) as c:
        answers = {(m, p): c.request(m, p, **options) for m, p, options in calls}
    assert {key: is_error(a, 503) for key, a in answers.items()} == dict.fromkeys(answers, True)
    for key, answer in answers.items():
        detail = answer.json()["detail"]
        assert "does not exist" in detail, key  # it still says what went wrong
        assert not SQL_WORDS.search(detail), (key, detail)


# -- 2. NUL bytes and line breaks in names


def test_a_nul_byte_rejects_its_row_and_the_others_land(api: TestClient[Any], refs: str) -> None:
    as_json = api.post(
        "/jobs", json={"rows": [{"id": 11, "job": "a\u0000b"}, {"id": 12, "job": "ok"}]}
    )
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["rejected"] == [
        {"index": 0, "reasons": ["nul_byte"], "row": {"id": 11, "job": "a\u0000b"}}
    ]
    assert as_json.json()["inserted"] == 1

    as_csv = api.post("/jobs", content=b"21,a\x00b\n22,ok\n", headers={"content-type": "text/csv"})
    assert as_csv.status_code == 200, as_csv.text
    assert [(r["index"], r["reasons"]) for r in as_csv.json()["rejected"]] == [(0, ["nul_byte"])]
    assert as_csv.json()["inserted"] == 1
    assert query(refs, "SELECT id, job FROM jobs WHERE id > 10 ORDER BY id") == [
        (12, "ok"),
        (22, "ok"),
    ]
    logged = query(refs, "SELECT reasons FROM rejected_rows ORDER BY load_id")
    assert logged == [(["nul_byte"],), (["nul_byte"],)]


def test_a_line_break_in_a_name_is_kept(api: TestClient[Any], refs: str) -> None:
    as_json = api.post("/jobs", json={"rows": [{"id": 31, "job": "two\nlines"}]})
    as_csv = api.post(
        "/jobs",
        content=b'32,"two\nlines"\n33,"Smith, ""J"""\n',
        headers={"content-type": "text/csv"},
    )
    assert (as_json.status_code, as_json.json()["inserted"]) == (200, 1)
    assert (as_csv.status_code, as_csv.json()["inserted"], as_csv.json()["rejected"]) == (
        200,
        2,
        [],
    )
    assert query(refs, "SELECT id, job FROM jobs WHERE id > 30 ORDER BY id") == [
        (31, "two\nlines"),
        (32, "two\nlines"),
        (33, 'Smith, "J"'),
    ]
    assert api.get("/jobs/32").json() == {"id": 32, "job": "two\nlines"}


@pytest.fixture
def api(refs: str) -> Iterator[TestClient[Any]]:
    with client(database_url=refs) as c:
        yield c


# -- 3. S3 that does not answer is a 503; an oversized name is a 400


S3_CALLS: list[Call] = [
    ("GET", "/health-s3", {}),
    ("POST", "/backups/jobs", {}),
    ("GET", "/backups/jobs", {}),
    (
        "POST",
        "/restores/jobs",
        {"json": {"uri": "s3://hr-data/backups/jobs-20260101T000000Z.avro"}},
    ),
    ("POST", "/employees/batch", {}),
    ("POST", "/jobs/batch", {"json": {"key": "jobs.csv"}}),
]


def aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def test_s3_that_does_not_answer_is_a_503(refs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    aws_env(monkeypatch, f"http://127.0.0.1:{dead_port()}")
    with client(database_url=refs, s3_bucket="hr-data") as c:
        answers = {(m, p): c.request(m, p, **options) for m, p, options in S3_CALLS}
    assert {key: is_error(a, 503) for key, a in answers.items()} == dict.fromkeys(answers, True)
    assert {a.json()["error"] for a in answers.values()} == {"source_unavailable"}
    assert not any("Traceback" in a.text for a in answers.values())
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(0,)]


def test_an_s3_server_that_stops_is_a_503(
    refs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        aws_env(monkeypatch, endpoint)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="hr-data")
        rows = "".join(f"{i},N{i},2021-03-01T10:00:00Z,1,1\n" for i in range(1, 11))
        upload(
            endpoint, "hr-data", "hired_employees.csv", write(tmp_path, "hired_employees.csv", rows)
        )
        upload(endpoint, "hr-data", "jobs.csv", write(tmp_path, "jobs.csv", "1,Analyst\n"))
        with client(database_url=refs, s3_bucket="hr-data") as c:
            assert c.get("/health-s3").status_code == 200
            made = c.post("/backups/jobs")
            assert made.status_code == 201, made.text
            assert c.get("/backups/jobs").json()["items"][0]["uri"] == made.json()["uri"]
            load_id = queued(c.post("/employees/batch"))
            run_queue(refs)
            assert c.get(f"/loads/{load_id}").json()["rows_inserted"] == 10
            server.stop()
            calls = [
                *S3_CALLS[:3],
                ("POST", "/restores/jobs", {"json": {"uri": made.json()["uri"]}}),
                *S3_CALLS[4:],
            ]
            answers = {(m, p): c.request(m, p, **options) for m, p, options in calls}
    finally:
        server.stop()
    assert {key: is_error(a, 503) for key, a in answers.items()} == dict.fromkeys(answers, True)
    assert not any("Traceback" in a.text for a in answers.values())
    assert query(refs, "SELECT job FROM jobs ORDER BY id") == [
        ("Recruiter",),
        ("Manager",),
        ("Analyst",),
    ]


def test_a_5000_character_key_or_uri_is_a_400_before_s3_is_asked(
    refs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_env(monkeypatch, f"http://127.0.0.1:{dead_port()}")  # asking S3 would be a 503
    long = "k" * 5000
    with client(database_url=refs, s3_bucket="hr-data") as c:
        answers = [
            c.post("/employees/batch", json={"key": long}),
            c.post("/jobs/batch", json={"key": f"exports/{long}.csv"}),
            c.post("/restores/jobs", json={"uri": f"s3://hr-data/backups/{long}.avro"}),
            c.post("/restores/jobs", json={"uri": long}),
            c.post("/restores/jobs", json={"uri": ""}),
        ]
    assert [is_error(a, 400) for a in answers] == [True] * len(answers), [a.text for a in answers]
    assert all(len(a.text) < 2000 for a in answers)  # the name is not echoed back whole
    assert query(refs, "SELECT count(*) FROM load_runs") == [(1 + 1,)]  # departments, jobs


# -- 4. blocking library calls run in worker threads, never on the event loop


BLOCKING = [
    "check_database", "list_files", "hires_by_quarter", "departments_above_mean", "list_loads",
    "get_load", "list_rejections", "backup", "list_backups", "restore", "enqueue", "load_rows",
    "list_rows_json", "get_row_json",
]  # fmt: skip


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_no_blocking_library_call_runs_on_the_event_loop(
    refs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "jobs.csv", "4,Pilot\n")
    calls: list[tuple[str, bool]] = []

    def spy(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def called(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, _on_event_loop()))
            return function(*args, **kwargs)

        return called

    for name in BLOCKING:
        monkeypatch.setattr(hrcore, name, spy(name, getattr(hrcore, name)))
    with client(database_url=refs, s3_bucket=None) as c:
        made = c.post("/backups/jobs").json()
        answers = [
            c.get("/health-db"),
            c.get("/health-s3"),
            c.get("/metrics/hires-by-quarter"),
            c.get("/metrics/departments-above-mean"),
            c.post("/jobs", json={"rows": [{"id": 5, "job": "x"}, {"id": 6, "job": ""}]}),
            c.get("/loads"),
            c.get("/loads/1"),
            c.get("/loads/3/rejections"),
            c.get("/jobs"),
            c.get("/jobs/5"),
            c.get("/backups/jobs"),
            c.post("/restores/jobs", json={"uri": made["uri"]}),
            c.post("/jobs/batch"),
        ]
    assert [a.status_code for a in answers] == [200] * (len(answers) - 1) + [202], [
        a.text for a in answers
    ]
    assert {name for name, _ in calls} == set(BLOCKING)
    assert [name for name, on_loop in calls if on_loop] == []


def test_a_file_load_asked_for_while_the_file_loads_answers_that_load(refs: str) -> None:
    from tests.test_load import Paused

    holding = Paused()
    sample = hrcore.SAMPLE_FOLDER / "hired_employees.csv"  # the API's default source
    holder = InThread(
        lambda: hrcore.load(sample, database_url=refs, batch_size=50, writers=1, progress=holding)
    )
    try:
        assert holding.paused.wait(60)
        [running] = hrcore.list_loads(limit=1, database_url=refs)
        with client(database_url=refs) as api:
            answer = api.post("/employees/batch")
        assert queued(answer) == running.load_id
        assert answer.json()["status"] == "running"
    finally:
        holding.release.set()
        assert holder.result().status == "succeeded"
    assert query(refs, "SELECT count(*) FROM procrastinate_jobs") == [(0,)]  # no twin queued
