"""The HTTP API through Litestar's test client (and once as a real server process),
against real PostgreSQL and moto's S3 server."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import hrcore
import httpx
import pytest
from hrcore_api import create_app
from hrcore_api.settings import Settings
from litestar.testing import TestClient

from tests.conftest import query, queued, run_queue, summary_is_exact, upload, write

DEPARTMENTS = "1,Sales\n2,Legal\n3,Staff\n"
JOBS = "1,Analyst\n2,Manager\n"


def client(**settings: Any) -> TestClient[Any]:
    return TestClient(app=create_app(Settings(**settings)))


@pytest.fixture
def api(refs: str) -> Iterator[TestClient[Any]]:
    """A client of an app on the test database (departments and jobs 1-3 loaded)."""
    with client(database_url=refs) as c:
        yield c


def employee(i: int, **changes: Any) -> dict[str, Any]:
    row = {
        "id": i,
        "name": f"N{i}",
        "datetime": "2021-03-01T10:00:00Z",
        "department_id": 1,
        "job_id": 2,
    }
    return {**row, **changes}


def test_index_and_database_health(api: TestClient[Any]) -> None:
    index = api.get("/")
    assert index.status_code == 200
    assert index.json()["name"] == "hrcore"
    assert "/employees" in index.json()["links"]["tables"]
    health = api.get("/health-db")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"


def test_database_down_is_503_without_the_password() -> None:
    with client(database_url="postgresql://u:s3cret@127.0.0.1:1/x") as c:
        answer = c.get("/health-db")
    assert answer.status_code == 503
    assert answer.json()["error"] == "database_unavailable"
    assert "s3cret" not in answer.text


def test_s3_health_lists_the_bucket_or_answers_503(
    refs: str, bucket: str, tmp_path: Path, s3_endpoint: str
) -> None:
    upload(s3_endpoint, bucket, "jobs.csv", write(tmp_path, "jobs.csv", JOBS))
    with client(database_url=refs, s3_bucket=bucket) as c:
        listed = c.get("/health-s3")
    assert listed.status_code == 200
    assert listed.json()["files"] == [{"uri": f"s3://{bucket}/jobs.csv", "size": len(JOBS)}]
    with client(database_url=refs, s3_bucket="no-such-bucket") as c:
        assert c.get("/health-s3").status_code == 503


def test_batch_loads_a_tables_file_from_the_bucket(
    db: str, bucket: str, tmp_path: Path, s3_endpoint: str
) -> None:
    upload(s3_endpoint, bucket, "departments.csv", write(tmp_path, "departments.csv", DEPARTMENTS))
    upload(s3_endpoint, bucket, "exports/jobs-2.csv", write(tmp_path, "jobs.csv", JOBS + "3,\n"))
    with client(database_url=db, s3_bucket=bucket) as c:
        departments_id = queued(c.post("/departments/batch"))
        jobs_id = queued(c.post("/jobs/batch", json={"key": "exports/jobs-2.csv", "batch_size": 1}))
        assert c.get(f"/loads/{jobs_id}").json()["status"] == "queued"
        assert query(db, "SELECT count(*) FROM jobs") == [(0,)]  # nothing ran yet
        run_queue(db)
        departments = c.get(f"/loads/{departments_id}")
        jobs = c.get(f"/loads/{jobs_id}")

    assert departments.json()["status"] == "succeeded"
    assert departments.json()["rows_inserted"] == 3
    assert departments.json()["source"] == f"s3://{bucket}/departments.csv"
    body = jobs.json()
    assert (body["rows_read"], body["rows_inserted"], body["rows_rejected"], body["batches"]) == (
        3,
        2,
        1,
        3,
    )
    assert query(db, "SELECT count(*) FROM jobs") == [(2,)]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"key": "../secret.csv"}, 400),
        ({"key": "/etc/passwd"}, 400),
        ({"key": "s3://other-bucket/jobs.csv"}, 400),
        ({"key": "a/../../b.csv"}, 400),
        ({"batch_size": 0}, 400),
        ({"batch_size": 1001}, 400),
        ({"unknown": 1}, 400),
        ({"key": "missing.csv"}, 404),
    ],
)
def test_batch_refuses_keys_outside_the_source_and_bad_options(
    db: str, bucket: str, body: dict[str, Any], status: int
) -> None:
    with client(database_url=db, s3_bucket=bucket) as c:
        answer = c.post("/jobs/batch", json=body)
    assert answer.status_code == status
    assert set(answer.json()) == {"error", "detail"}
    assert query(db, "SELECT count(*) FROM load_runs") == [(0,)]


def test_posted_rows_land_and_invalid_ones_are_answered_and_logged(
    api: TestClient[Any], refs: str
) -> None:
    rows = [
        employee(1),
        employee(2, name=""),
        employee(3, datetime="2021-02-30T00:00:00Z"),
        employee(4, job_id=9),
    ]
    answer = api.post("/employees", json={"rows": rows})

    assert answer.status_code == 200
    body = answer.json()
    assert (body["received"], body["inserted"], body["updated"], body["unchanged"]) == (4, 1, 0, 0)
    assert body["rejected"] == [
        {"index": 1, "reasons": ["missing_field"], "row": rows[1]},
        {"index": 2, "reasons": ["bad_datetime"], "row": rows[2]},
        {"index": 3, "reasons": ["unknown_job"], "row": rows[3]},
    ]
    assert query(refs, "SELECT id FROM hired_employees") == [(1,)]
    logged = query(
        refs,
        "SELECT line_number, reasons FROM rejected_rows WHERE load_id = $1 ORDER BY 1",
        (body["load_id"],),
    )
    assert logged == [(2, ["missing_field"]), (3, ["bad_datetime"]), (4, ["unknown_job"])]

    again = api.post("/employees", json={"rows": [employee(1), employee(5)]}).json()
    assert (again["inserted"], again["unchanged"]) == (1, 1)


def test_each_posted_row_is_answered_with_what_became_of_it(api: TestClient[Any]) -> None:
    api.post("/employees", json={"rows": [employee(1), employee(2)]})
    rows = [
        employee(1),  # as stored: unchanged
        employee(2, name="Renamed"),  # updated
        employee(3, job_id=9),  # rejected
        employee(4, name="first"),  # the same id again below: the last one wins
        employee(4),  # inserted
    ]
    body = api.post("/employees", json={"rows": rows}).json()
    assert body["rows"] == [
        {"index": 0, "outcome": "unchanged"},
        {"index": 1, "outcome": "updated"},
        {"index": 2, "outcome": "rejected"},
        {"index": 3, "outcome": "rejected"},
        {"index": 4, "outcome": "inserted"},
    ]
    assert [r["reasons"] for r in body["rejected"]] == [["unknown_job"], ["duplicate_id"]]

    # CSV: a row's index is that of the line it starts on (blank lines and quoted
    # line breaks count)
    text = (
        '5,"two\nlines",2021-03-01T10:00:00Z,1,2\n\n'
        "6,Ann,not a date,1,2\n7,Bo,2021-03-01T10:00:00Z,1,2\n"
    )
    as_csv = api.post("/employees", content=text, headers={"content-type": "text/csv"}).json()
    assert as_csv["rows"] == [
        {"index": 0, "outcome": "inserted"},
        {"index": 3, "outcome": "rejected"},
        {"index": 4, "outcome": "inserted"},
    ]


def test_a_csv_body_follows_the_same_rules(api: TestClient[Any], refs: str) -> None:
    text = '1,"Smith, John",2021-03-01T10:00:00Z,1,2\n2,Ann,not a date,1,2\n'
    answer = api.post("/employees", content=text, headers={"content-type": "text/csv"})

    assert answer.status_code == 200
    assert answer.json()["inserted"] == 1
    assert answer.json()["rejected"] == [
        {"index": 1, "reasons": ["bad_datetime"], "row": "2,Ann,not a date,1,2"}
    ]
    assert query(refs, "SELECT name FROM hired_employees") == [("Smith, John",)]


def test_1000_rows_are_accepted_and_1001_refused_without_writing(
    api: TestClient[Any], refs: str
) -> None:
    ok = api.post("/employees", json={"rows": [employee(i) for i in range(1, 1001)]})
    assert ok.status_code == 200
    assert ok.json()["inserted"] == 1000

    too_many = api.post("/employees", json={"rows": [employee(i) for i in range(2001, 3002)]})
    assert too_many.status_code == 400
    lines = "".join(f"{i},N,2021-03-01T10:00:00Z,1,1\n" for i in range(2001, 3002))
    too_many_csv = api.post("/employees", content=lines, headers={"content-type": "text/csv"})
    assert too_many_csv.status_code == 400
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(1000,)]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        ('{"rows": []}', "application/json", 400),
        ("{not json", "application/json", 400),
        ('{"rows": [{"id": 1, "salary": 3}]}', "application/json", 400),
        ('{"rows": [[1, "x"]]}', "application/json", 400),
        ('{"items": []}', "application/json", 400),
        ("", "text/csv", 400),
        ("1,Sales", "application/xml", 415),
    ],
)
def test_malformed_bodies_are_4xx_and_write_nothing(
    api: TestClient[Any], refs: str, content: str, content_type: str, status: int
) -> None:
    before = query(refs, "SELECT count(*) FROM load_runs")
    answer = api.post("/departments", content=content, headers={"content-type": content_type})
    assert answer.status_code == status
    assert set(answer.json()) == {"error", "detail"}
    assert query(refs, "SELECT count(*) FROM load_runs") == before


def test_a_body_over_the_size_limit_is_413(refs: str) -> None:
    with client(database_url=refs, max_body_bytes=1000) as c:
        answer = c.post("/employees", json={"rows": [employee(i) for i in range(1, 100)]})
    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"


def test_pages_walk_a_whole_table_without_gaps_or_repeats(
    api: TestClient[Any], refs: str, tmp_path: Path
) -> None:
    ids = list(range(1, 2400, 3))
    write(
        tmp_path,
        "hired_employees.csv",
        "".join(f"{i},N{i},2021-03-01T10:00:00Z,1,1\n" for i in ids),
    )
    import hrcore

    hrcore.load(tmp_path / "hired_employees.csv", database_url=refs)
    seen: list[int] = []
    path: str | None = "/employees?limit=150"
    pages = 0
    while path:
        page = api.get(path).json()
        seen += [row["id"] for row in page["items"]]
        path, pages = page["next"], pages + 1
    assert seen == ids
    assert pages == -(-len(ids) // 150) + (len(ids) % 150 == 0)
    first = api.get("/employees?limit=1").json()["items"][0]
    assert first == {
        "id": 1,
        "name": "N1",
        "datetime": "2021-03-01T10:00:00Z",
        "department_id": 1,
        "job_id": 1,
    }


def test_one_row_by_id_and_404(api: TestClient[Any]) -> None:
    assert api.get("/departments/2").json() == {"id": 2, "department": "Maintenance"}
    row = employee(7, datetime="2021-07-27T18:02:08.5+02:00")
    assert api.post("/employees", json={"rows": [row]}).json()["inserted"] == 1
    stored = {**row, "datetime": "2021-07-27T16:02:08.5Z"}  # in UTC, with a Z
    assert api.get("/employees/7").json() == stored
    assert api.get("/employees?after=6&limit=1").json()["items"] == [stored]
    missing = api.get("/departments/99")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


@pytest.mark.parametrize("limit", ["0", "1001", "x"])
def test_a_bad_page_size_is_400(api: TestClient[Any], limit: str) -> None:
    assert api.get(f"/jobs?limit={limit}").status_code == 400


def test_metrics_as_json_and_csv(api: TestClient[Any]) -> None:
    api.post(
        "/employees", json={"rows": [employee(1), employee(2, datetime="2021-07-01T00:00:00Z")]}
    )
    as_json = api.get("/metrics/hires-by-quarter?year=2021").json()
    assert as_json == {
        "items": [
            {"department": "Supply Chain", "job": "Manager", "Q1": 1, "Q2": 0, "Q3": 1, "Q4": 0}
        ]
    }
    as_csv = api.get(
        "/metrics/departments-above-mean", params={"year": 2021}, headers={"accept": "text/csv"}
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(as_csv.text))) == [
        ["id", "department", "hired"],
        ["1", "Supply Chain", "2"],
    ]
    assert api.get("/metrics/hires-by-quarter?year=0").status_code == 400


def svg_numbers(chart: str, element: str, value: str) -> dict[str, int]:
    """What a chart's bars say: their category and number (data-* attributes)."""
    found = re.findall(
        rf'<{element} class="bar"[^>]*data-category="([^"]*)"[^>]*{value}="([0-9]+)"', chart
    )
    return {category: int(n) for category, n in found}


def test_metrics_and_rejections_as_charts_with_the_same_numbers(api: TestClient[Any]) -> None:
    api.post(
        "/employees",
        json={
            "rows": [
                employee(1),
                employee(2, department_id=2, datetime="2021-07-01T00:00:00Z"),
                employee(3, department_id=2),
                employee(4, name=""),
                employee(5, job_id=9),
                employee(6, job_id=9, name=""),
            ]
        },
    )
    svg = {"accept": "image/svg+xml"}
    chart = api.get("/metrics/hires-by-quarter?year=2021", headers=svg)
    assert chart.headers["content-type"].startswith("image/svg+xml")
    assert chart.text.startswith("<svg")
    assert svg_numbers(chart.text, "g", "data-total") == {"Supply Chain": 1, "Maintenance": 2}

    above = api.get("/metrics/departments-above-mean?year=2021", headers=svg).text
    items = api.get("/metrics/departments-above-mean?year=2021").json()["items"]
    assert svg_numbers(above, "rect", "data-value") == {i["department"]: i["hired"] for i in items}
    assert re.search(r'class="mean"[^>]*data-value="1.0"', above)  # 3 hires, 3 departments

    # one URL, three bodies: caches are told that the answer depends on Accept
    for accept in ("image/svg+xml", "text/csv", "application/json", "text/html, */*;q=0.8"):
        answer = api.get("/metrics/hires-by-quarter?year=2021", headers={"accept": accept})
        assert answer.headers["vary"] == "Accept"
        wanted = accept if "html" not in accept else "application/json"
        assert answer.headers["content-type"].startswith(wanted)

    load_id = api.get("/loads?limit=1").json()["items"][0]["load_id"]
    assert api.get(f"/loads/{load_id}/rejections").headers["vary"] == "Accept"
    reasons = api.get(f"/loads/{load_id}/rejections", headers=svg).text
    assert svg_numbers(reasons, "rect", "data-value") == {"missing_field": 2, "unknown_job": 2}
    assert api.get("/loads/999/rejections", headers=svg).status_code == 404


def test_the_console_page_is_served_to_anyone_and_reads_need_the_token(refs: str) -> None:
    with client(database_url=refs, api_token="t0ken") as c:
        assert c.get("/").json()["token_required"] is True
        page = c.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script src="/console/console.js"' in page.text
        script = c.get("/console/console.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert c.get("/console/console.css").status_code == 200
        # its own files, no framing by others, no guessing of types
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert script.headers["x-content-type-options"] == "nosniff"
        assert c.get("/console/nothing.js").status_code == 404
        assert (
            c.get("/metrics/hires-by-quarter", headers={"accept": "image/svg+xml"}).status_code
            == 401
        )
    with client(database_url=refs) as c:
        assert c.get("/").json()["token_required"] is False


def test_the_ledger_pages_loads_and_rejections(api: TestClient[Any]) -> None:
    rows = [employee(i, name="" if i % 2 else f"N{i}") for i in range(1, 8)]
    load_id = api.post("/employees", json={"rows": rows}).json()["load_id"]

    newest = api.get("/loads?limit=1").json()
    assert newest["items"][0]["load_id"] == load_id
    assert newest["next"] == f"/loads?limit=1&before={load_id}"
    report = api.get(f"/loads/{load_id}").json()
    assert (report["rows_read"], report["rows_rejected"], report["status"]) == (7, 4, "succeeded")
    first = api.get(f"/loads/{load_id}/rejections?limit=3").json()
    second = api.get(first["next"]).json()
    assert [r["line_number"] for r in first["items"] + second["items"]] == [1, 3, 5, 7]
    assert second["next"] is None
    assert api.get("/loads/999999").status_code == 404
    assert api.get("/loads/999999/rejections").status_code == 404


def test_backups_listed_and_restored(
    refs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default backup folder is ./backups
    with client(database_url=refs) as api:
        made = api.post("/backups/jobs")
        assert made.status_code == 201
        assert made.json()["rows"] == 3
        listed = api.get("/backups/jobs").json()["items"]
        assert [item["uri"] for item in listed] == [made.json()["uri"]]
        query(refs, "UPDATE jobs SET job = 'x'")
        restored = api.post("/restores/jobs", json={"uri": made.json()["uri"]})
        assert restored.status_code == 200
        assert query(refs, "SELECT job FROM jobs ORDER BY id") == [
            ("Recruiter",),
            ("Manager",),
            ("Analyst",),
        ]
        # a name that is not one of the listed backups names no backup: 404
        assert api.post("/restores/jobs", json={"uri": "/etc/passwd"}).status_code == 404


def test_a_token_guards_everything_but_the_public_routes(refs: str) -> None:
    with client(database_url=refs, api_token="t0ken") as c:
        for path in ("/", "/health-db", "/schema/openapi.json"):
            assert c.get(path).status_code == 200, path
        assert c.get("/jobs").status_code == 401
        assert c.get("/jobs", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/jobs", json={"rows": [{"id": 9, "job": "x"}]}).status_code == 401
        assert c.get("/jobs", headers={"authorization": "Bearer t0ken"}).status_code == 200
    assert query(refs, "SELECT count(*) FROM jobs WHERE id = 9") == [(0,)]


ACCEPTED = ["Bearer t0ken", "bearer t0ken", "BEARER t0ken", "bEaReR t0ken", "Bearer   t0ken",
            "Bearer\tt0ken"]  # fmt: skip
REFUSED = [
    None, "", "t0ken", "Bearer", "Bearer ", "Bearer wrong", "Bearer T0KEN", "Bearer t0ke",
    "Bearer t0ken0", "Bearer t0ken junk", "Bearer t0ken,", "Bearert0ken", "Bearer Bearer t0ken",
    "Basic dDBrZW4=", "Basic t0ken", "Token t0ken", "bearer: t0ken", "Bearer t\u00f6ken",
]  # fmt: skip


def test_the_bearer_scheme_is_case_insensitive_and_the_token_exact(refs: str) -> None:
    with client(database_url=refs, api_token="t0ken") as c:

        def status(authorization: str | None) -> int:
            sent = {} if authorization is None else {b"authorization": authorization.encode()}
            return c.get("/jobs", headers=sent).status_code

        answers = {value: status(value) for value in ACCEPTED + REFUSED}
    expected: dict[str | None, int] = {
        **dict.fromkeys(ACCEPTED, 200),
        **dict.fromkeys(REFUSED, 401),
    }
    assert answers == expected


def test_options_allows_every_method_of_the_path() -> None:
    with client(database_url="postgresql://u@127.0.0.1:1/x") as c:  # OPTIONS needs no database
        documented = c.get("/schema/openapi.json").json()["paths"]
        allowed = {}
        for path, operations in documented.items():
            answer = c.options(re.sub(r"\{[^}]+\}", "1", path))
            assert answer.status_code == 204, path
            allowed[path] = set(answer.headers["allow"].split(", "))
            served = {key.upper() for key in operations} & {"GET", "POST", "PUT", "PATCH", "DELETE"}
            assert allowed[path] == served | {"OPTIONS"}, path
    several = {path for path, methods in allowed.items() if len(methods) > 2}
    assert several >= {"/departments", "/jobs", "/employees", "/backups/{table}"}
    assert allowed["/loads"] == {"GET", "OPTIONS"}
    with client(database_url="postgresql://u@127.0.0.1:1/x", api_token="t0ken") as c:
        assert c.options("/jobs").status_code == 401  # OPTIONS is guarded like the rest
        answer = c.options("/jobs", headers={"authorization": "Bearer t0ken"})
        assert set(answer.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}


def test_openapi_describes_the_endpoints_and_their_bodies(api: TestClient[Any]) -> None:
    spec = api.get("/schema/openapi.json").json()
    body = spec["paths"]["/employees"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/csv"}
    assert body["application/json"]["schema"]["properties"]["rows"]["maxItems"] == 1000
    assert api.post("/employees", json=body["application/json"]["example"]).status_code == 200
    assert (
        "example"
        in spec["paths"]["/jobs/batch"]["post"]["requestBody"]["content"]["application/json"]
    )
    assert {
        "/employees",
        "/employees/batch",
        "/employees/{row_id}",
        "/metrics/hires-by-quarter",
        "/loads/{load_id}/rejections",
    } <= set(spec["paths"])


def test_openapi_documents_the_error_answers_as_they_are(api: TestClient[Any]) -> None:
    spec = api.get("/schema/openapi.json").json()
    error = spec["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "detail"}
    one_row = spec["paths"]["/employees/{row_id}"]["get"]["responses"]
    assert set(one_row) == {"200", "400", "401", "404", "503"}
    assert one_row["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    missing = api.get("/employees/999")
    assert missing.status_code == 404
    assert set(missing.json()) == set(error["required"])
    table = spec["paths"]["/backups/{table}"]["get"]["parameters"][0]["schema"]
    assert table["enum"] == ["departments", "jobs", "employees", "hired_employees"]
    assert api.get("/backups/salaries").status_code == 400
    year = spec["paths"]["/metrics/hires-by-quarter"]["get"]["parameters"][0]["schema"]
    assert (year["minimum"], year["maximum"]) == (1, 9999)


def test_a_method_not_allowed_says_which_are(api: TestClient[Any]) -> None:
    answer = api.delete("/jobs")
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) >= {"GET", "POST"}
    assert answer.json()["error"] == "method_not_allowed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    env: dict[str, str], *options: str, log: IO[str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """``hrcore-api`` as a process of its own, once it answers; and its base URL.

    Its output is a pipe read by ``communicate()`` at the end, or the file ``log`` for
    a server that answers many requests (a pipe nobody reads fills up at 64 KiB of
    log lines, and then the server blocks on its next one).
    """
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "hrcore-api"), "--port", str(port), *options],
        env=env,
        stdout=subprocess.PIPE if log is None else log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health-db").status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            output, _ = server.communicate(timeout=10)
            if log is not None:
                log.seek(0)
                output = log.read()
            raise AssertionError(f"hrcore-api did not become healthy:\n{output}")
        time.sleep(0.1)  # a polling interval, not a timing assumption


def test_the_server_process_serves_the_api(refs: str) -> None:
    server, base = serve({**os.environ, "DATABASE_URL": refs, "HRCORE_API_TOKEN": "abc"})
    try:
        answer = httpx.post(
            f"{base}/jobs",
            json={"rows": [{"id": 7, "job": "Pilot"}]},
            headers={"authorization": "Bearer abc"},
        )
        assert answer.status_code == 200
        assert answer.json()["inserted"] == 1
        assert "x-request-id" in answer.headers
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    logged = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert {"event": "request", "method": "POST", "path": "/jobs", "status": 200} in [
        {k: entry.get(k) for k in ("event", "method", "path", "status")} for entry in logged
    ]
    assert query(refs, "SELECT job FROM jobs WHERE id = 7") == [("Pilot",)]


def test_with_no_configuration_workers_serve_the_embedded_database_and_the_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hrcore import _embedded

    for name in ("DATABASE_URL", "S3_BUCKET_NAME", "HRCORE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HRCORE_HOME", str(tmp_path / "home"))
    try:
        server, base = serve(dict(os.environ), "--workers", "2")
        try:
            files = httpx.get(f"{base}/health-s3").json()["files"]
            assert sorted(Path(f["uri"]).name for f in files) == [
                "departments.csv", "hired_employees.csv", "jobs.csv"
            ]  # fmt: skip
            load_id = queued(httpx.post(f"{base}/departments/batch"))
            run_queue(hrcore.database_url())  # the embedded server of HRCORE_HOME
            loaded = httpx.get(f"{base}/loads/{load_id}").json()
            assert (loaded["status"], loaded["rows_read"]) == ("succeeded", 12)
            pages = [httpx.get(f"{base}/departments?limit=5").json() for _ in range(8)]
            assert {page["next"] for page in pages} == {"/departments?limit=5&after=5"}
        finally:
            server.terminate()
            server.communicate(timeout=10)
        assert (tmp_path / "home" / "pgdata").is_dir()  # the embedded server, in HRCORE_HOME
    finally:
        _embedded.stop()


def test_a_password_in_the_url_query_never_reaches_a_caller() -> None:
    with client(database_url="postgresql://u@127.0.0.1:1/x?password=topsecret") as c:
        answer = c.get("/health-db")
        listing = c.get("/jobs")
    assert answer.status_code == 503
    assert listing.status_code == 503
    assert "topsecret" not in answer.text + listing.text


def test_integers_too_big_for_anything_are_answered_not_crashed(api: TestClient[Any]) -> None:
    huge = 2**64
    answer = api.post(
        "/departments",
        json={"rows": [{"id": huge, "department": "x"}, {"id": 9, "department": "y"}]},
    )
    assert answer.status_code == 200
    assert answer.json()["rejected"] == [
        {"index": 0, "reasons": ["id_out_of_range"], "row": {"id": huge, "department": "x"}}
    ]
    assert answer.json()["inserted"] == 1
    for path in (
        f"/departments/{huge}",
        f"/departments?after={huge}",
        f"/loads?before={huge}",
        f"/loads/{huge}",
    ):
        assert api.get(path).status_code == 400, path


def test_concurrent_posts_keep_the_hire_counts_exact(api: TestClient[Any], refs: str) -> None:
    import threading

    failures: list[int] = []

    def post(first: int) -> None:
        with client(database_url=refs) as c:
            for k in range(15):
                rows = [
                    employee(first + k * 10 + i, department_id=(k + i) % 3 + 1) for i in range(10)
                ]
                rows[0]["name"] = f"renamed {k}"  # an update too, when the id exists
                if c.post("/employees", json={"rows": rows}).status_code != 200:
                    failures.append(k)

    threads = [threading.Thread(target=post, args=(start,)) for start in (1, 5, 101)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert failures == []
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(250,)]
    assert summary_is_exact(refs)


def test_bodies_and_bounds_as_the_openapi_document_says(api: TestClient[Any], refs: str) -> None:
    """What schemathesis found (tests/test_openapi_fuzz.py), pinned down."""
    # JSON Schema's integer holds 2.0; 2.5 is not one; a key given is a string
    load_id = queued(api.post("/jobs/batch", json={"batch_size": 2.0}))
    run_queue(refs)
    assert api.get(f"/loads/{load_id}").json()["batches"] == 92  # 183 sample jobs
    assert api.post("/jobs/batch", json={"batch_size": 2.5}).status_code == 400
    assert api.post("/jobs/batch", json={"key": None}).status_code == 400
    # ids and cursors up to 2**53 - 1, which every JSON reader keeps exact
    assert api.get(f"/loads/{2**53 - 1}").status_code == 404
    assert api.get(f"/loads/{2**53}").status_code == 400
    assert api.get(f"/jobs?after={2**53 - 1}").json() == {"items": [], "next": None}
    # a number that is no id is a rejected row, like any other bad value
    rows = api.post("/jobs", json={"rows": [{"id": 1.5, "job": "x"}, {"id": 999, "job": "y"}]})
    assert rows.status_code == 200
    assert rows.json()["rejected"] == [
        {"index": 0, "reasons": ["bad_integer"], "row": {"id": 1.5, "job": "x"}}
    ]
    assert rows.json()["inserted"] == 1
    # the key's byte budget is what the source's name leaves of 1024 bytes
    spec = api.get("/schema/openapi.json").json()
    body = spec["paths"]["/jobs/batch"]["post"]["requestBody"]["content"]["application/json"]
    budget = body["schema"]["properties"]["key"]["maxLength"]
    key = ("d/" * budget)[: budget - 1] + "x"  # short parts: no name is too long for the disk
    assert api.post("/jobs/batch", json={"key": key}).status_code == 404  # no such file
    assert api.post("/jobs/batch", json={"key": key + "x"}).status_code == 400
