"""The console (``GET /console``) and the report file, in a real headless Chromium.

Debian's Chromium (``/usr/bin/chromium``, or ``HRCORE_CHROMIUM``) driven by
Playwright; nothing is downloaded. ``hrcore-api`` runs as a process on loopback over
the sample data in a bucket of moto's S3 server. Every test fails on a console error
or an uncaught page error, and on a request to anywhere but the server under test.
Screenshots are saved in the test's temporary folder; with ``HRCORE_SCREENSHOTS``
set to a folder (``docs``), they are copied there too, for the README.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hrcore
import httpx
import pytest
from hrcore._db import connect, execute
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import InThread, query, run_queue, upload, wait_until
from tests.test_api import serve

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("HRCORE_CHROMIUM", "/usr/bin/chromium")
TOKEN = "console-test-token"
WAIT_MS = 30_000  # the longest any expectation on the page waits
expect.set_options(timeout=WAIT_MS)
SAMPLES = Path(hrcore.SAMPLE_FOLDER)
FILES = {"departments": "departments.csv", "jobs": "jobs.csv", "employees": "hired_employees.csv"}
QUARTERS = ("Q1", "Q2", "Q3", "Q4")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: on Debian or Ubuntu, "
            "apt-get install chromium (or set HRCORE_CHROMIUM to a Chromium binary)"
        )
    with sync_playwright() as driver:
        found = driver.chromium.launch(
            executable_path=CHROMIUM,
            # as root in a container: no sandbox; and none of Chromium's own traffic
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync",
            ],
        )  # fmt: skip
        yield found
        found.close()


@dataclass
class Console:
    """A server over a database and a bucket, and a browser tab on its console."""

    base: str
    db: str
    bucket: str
    page: Page
    folder: Path
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def api(self, path: str, **options: Any) -> Any:
        answer = httpx.get(
            f"{self.base}{path}", headers={"authorization": f"Bearer {TOKEN}"}, **options
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def open(self, view: str, *, token: bool = True) -> None:
        self.page.goto(f"{self.base}/console#{view}")
        if token:
            self.page.fill("#token", TOKEN)
            self.page.click("#token-form button[type=submit]")
            expect(self.page.locator("#token-state")).to_have_text("token kept for this tab")

    def screenshot(self, name: str) -> None:
        path = self.folder / f"console-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if os.environ.get("HRCORE_SCREENSHOTS"):
            shutil.copy(path, Path(os.environ["HRCORE_SCREENSHOTS"]) / path.name)

    def check_clean(self, *answered: int) -> None:
        """No console error, no page error, no request beyond the server. Chromium logs
        an error for each answer of status 4xx: those in ``answered`` are expected."""
        expected = [f"the server responded with a status of {n}" for n in answered]
        assert [e for e in self.errors if not any(x in e for x in expected)] == []
        outside = [u for u in self.requests if not u.startswith((self.base, "data:"))]
        assert outside == []


@pytest.fixture
def console(
    db: str,
    browser: Browser,
    bucket: str,
    s3_endpoint: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Console]:
    """The server with the token (unless a test's parameter says ``"open"``)."""
    for name in FILES.values():
        upload(s3_endpoint, bucket, name, SAMPLES / name)
    for name in ("departments.csv", "jobs.csv"):
        hrcore.load(f"s3://{bucket}/{name}", database_url=db)
    log = (tmp_path / "api.log").open("w+")
    env = {**os.environ, "DATABASE_URL": db, "S3_BUCKET_NAME": bucket, "HRCORE_API_TOKEN": TOKEN}
    if getattr(request, "param", None) == "open":
        del env["HRCORE_API_TOKEN"]
    server, base = serve(env, log=log)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    found = Console(base, db, bucket, page, tmp_path)
    page.on("console", lambda m: found.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: found.errors.append(str(e)))
    page.on("request", lambda r: found.requests.append(r.url))
    yield found
    context.close()
    server.terminate()
    server.wait(timeout=30)
    log.close()


def load_employees(console: Console) -> hrcore.LoadReport:
    return hrcore.load(f"s3://{console.bucket}/hired_employees.csv", database_url=console.db)


def test_the_metrics_charts_show_the_apis_numbers(console: Console) -> None:
    load_employees(console)
    console.open("metrics")
    page = console.page
    bars = page.locator("#quarters-chart svg g.bar")
    expect(bars.first).to_be_visible()
    by_quarter = console.api("/metrics/hires-by-quarter", params={"year": 2021})["items"]
    expected: dict[tuple[str, str], int] = {}  # (department, quarter): hires, from the API
    for item in by_quarter:
        for q in QUARTERS:
            key = (item["department"], q)
            expected[key] = expected.get(key, 0) + item[q]
    drawn = {
        (g.get_attribute("data-category"), r.get_attribute("data-series")): int(
            r.get_attribute("data-value") or -1
        )
        for g in bars.all()
        for r in g.locator("rect").all()
    }
    # one bar group per department (as the metric names them), a part per quarter,
    # each with the API's number; the bar's height says the same number
    assert drawn == expected
    assert bars.count() == len({d for d, _ in expected}) > 1
    heights = {
        g.get_attribute("data-category") or "": sum(
            float(r.get_attribute("height") or 0) for r in g.locator("rect").all()
        )
        for g in bars.all()
    }
    totals = {d: sum(n for (e, _), n in expected.items() if e == d) for d, _ in expected}
    tallest = max(totals, key=lambda d: totals[d])
    for department, height in heights.items():
        ratio = totals[department] / totals[tallest]
        assert height == pytest.approx(heights[tallest] * ratio, abs=0.05)
    assert page.locator("#quarters-table tbody tr").count() == len(by_quarter)

    above = console.api("/metrics/departments-above-mean", params={"year": 2021})["items"]
    above_bars = page.locator("#above-mean-chart svg rect.bar")
    assert {
        b.get_attribute("data-category"): int(b.get_attribute("data-value") or -1)
        for b in above_bars.all()
    } == {a["department"]: a["hired"] for a in above}
    # the mean: all of the year's hires over all departments (those without hires too)
    departments = len(console.api("/departments", params={"limit": 1000})["items"])
    mean = sum(expected.values()) / departments
    line = page.locator("#above-mean-chart svg line.mean")
    assert float(line.get_attribute("data-value") or -1) == pytest.approx(mean)
    assert all(a["hired"] > mean for a in above)
    console.screenshot("metrics")

    page.fill("#year", "1999")  # a year without hires: no bars
    page.click("#metrics-form button")
    expect(bars).to_have_count(0)
    expect(page.locator("#above-mean-table tbody tr")).to_have_count(0)
    console.check_clean()


def test_the_data_view_pages_through_a_table_and_looks_a_row_up(console: Console) -> None:
    load_employees(console)
    console.open("data")
    page = console.page
    page.select_option("#data-table", "employees")
    rows = page.locator("#data-rows tbody tr")
    expect(rows).to_have_count(50)
    first_page = console.api("/employees", params={"limit": 50})["items"]
    expect(rows.first.locator("td").first).to_have_text(str(first_page[0]["id"]))
    page.click("#data-next")
    second_page = console.api("/employees", params={"limit": 50, "after": first_page[-1]["id"]})
    expect(rows.first.locator("td").first).to_have_text(str(second_page["items"][0]["id"]))
    page.click("#data-previous")
    expect(rows.first.locator("td").first).to_have_text(str(first_page[0]["id"]))
    expect(page.locator("#data-previous")).to_be_hidden()

    wanted = second_page["items"][3]
    page.fill("#lookup-id", str(wanted["id"]))
    page.click("#lookup")
    expect(page.locator("#lookup-result")).to_contain_text(f"name: {wanted['name']}")
    console.screenshot("data")
    page.fill("#lookup-id", "987654")
    page.click("#lookup")
    expect(page.locator("#lookup-result")).to_have_text("No row of employees has id 987654.")
    console.check_clean(404)


def test_rows_sent_from_the_console_are_answered_row_by_row(console: Console) -> None:
    before = query(console.db, "SELECT count(*) FROM hired_employees")[0][0]
    csv = "\n".join(
        [
            "9001,Ada,2021-03-01T10:00:00Z,1,1",
            "9002,Grace,2021-05-01T10:00:00Z,2,2",
            "9003,Edsger,not a date,1,1",
            "9004,Barbara,2021-08-01T10:00:00Z,1,999999",
            "9005,Alan,2021-11-01T10:00:00Z,3,3",
        ]
    )
    upload_file = console.folder / "five-rows.csv"
    upload_file.write_text(csv + "\n")
    console.open("actions")
    page = console.page
    page.select_option("#rows-table", "employees")
    page.set_input_files("#rows-file", str(upload_file))
    expect(page.locator("#rows-csv")).to_have_value(csv + "\n")
    page.click("#rows-form button[type=submit]")

    outcome = page.locator("#rows-outcome tbody tr")
    expect(outcome).to_have_count(5)
    assert page.locator("#rows-outcome tr[data-outcome=inserted]").count() == 3
    rejected = page.locator("#rows-outcome tr[data-outcome=rejected]")
    assert rejected.count() == 2
    reasons = [r.locator("td").nth(3).inner_text() for r in rejected.all()]
    assert reasons == ["bad_datetime", "unknown_job"]  # rows 3 and 4, with their reasons
    expect(page.locator("#rows-summary")).to_contain_text("3 inserted")
    after = query(console.db, "SELECT count(*) FROM hired_employees")[0][0]
    assert after == before + 3
    console.screenshot("actions")

    page.click("#rows-form button[type=submit]")  # the same rows again: nothing changes
    expect(page.locator("#rows-outcome tr[data-outcome=unchanged]")).to_have_count(3)

    # a file that is not UTF-8 is sent as its bytes: its line is rejected, not mangled
    latin1 = console.folder / "latin-1.csv"
    latin1.write_bytes(
        "9006,Jos\u00e9,2021-03-01T10:00:00Z,1,1\n9007,Ana,2021-03-01T10:00:00Z,1,1\n".encode(
            "latin-1"
        )
    )
    page.set_input_files("#rows-file", str(latin1))
    page.click("#rows-form button[type=submit]")
    expect(page.locator("#rows-outcome tbody tr")).to_have_count(2)
    expect(page.locator("#rows-outcome tr[data-outcome=rejected] td").nth(3)).to_have_text(
        "encoding"
    )
    assert query(console.db, "SELECT name FROM hired_employees WHERE id >= 9006") == [("Ana",)]

    # a refused request (no rows) says why, and the last answer is no longer shown
    page.fill("#rows-csv", "")
    page.click("#rows-form button[type=submit]")
    expect(page.locator("#message")).to_contain_text("400")
    expect(page.locator("#rows-outcome tbody tr")).to_have_count(0)
    console.check_clean(400)


def test_a_load_started_from_the_console_is_watched_until_it_succeeds(console: Console) -> None:
    console.open("actions")
    page = console.page
    page.select_option("#file-table", "employees")
    page.click("#file-form button[type=submit]")
    status = page.locator("#file-load-status")
    expect(status).to_have_attribute("data-status", "queued")
    expect(status).to_contain_text("waiting for a worker")
    load_id = int(query(console.db, "SELECT max(id) FROM load_runs")[0][0])

    # its page, opened while it waits, follows it to the end with no click
    page.goto(f"{console.base}/console#loads/{load_id}")
    expect(page.locator("#rejections-chart")).to_have_text("No row of this load was rejected.")
    InThread(lambda: run_queue(console.db)).result(timeout=120)  # a worker runs the job
    report = console.api(f"/loads/{load_id}")
    assert (report["status"], report["rows_read"]) == ("succeeded", 2000)
    assert report["rows_rejected"] > 50
    row = page.locator(f"#loads-table tbody tr[data-load-id='{load_id}']")
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#load-summary")).to_contain_text("2,000 rows read")
    drawn = page.locator("#rejections-chart svg rect.bar")
    expect(drawn.first).to_be_visible()
    assert {
        b.get_attribute("data-category"): int(b.get_attribute("data-value") or -1)
        for b in drawn.all()
    } == report["rejections"]
    rejected_rows = page.locator("#rejections-table tbody tr")
    expect(rejected_rows).to_have_count(50)  # a page at a time
    first_line = console.api(f"/loads/{load_id}/rejections", params={"limit": 1})["items"][0]
    expect(rejected_rows.first.locator("td").first).to_have_text(str(first_line["line_number"]))
    page.click("#rejections-more")
    expect(rejected_rows).to_have_count(min(100, report["rows_rejected"]))
    console.screenshot("loads")

    # the same file again: skipped, and its page shows the rejected rows of the load it repeats
    page.goto(f"{console.base}/console#actions")
    page.select_option("#file-table", "employees")
    page.click("#file-form button[type=submit]")
    expect(status).to_have_attribute("data-status", "queued")
    InThread(lambda: run_queue(console.db)).result(timeout=120)
    expect(status).to_have_attribute("data-status", "skipped")
    skipped = int(query(console.db, "SELECT max(id) FROM load_runs")[0][0])
    page.goto(f"{console.base}/console#loads/{skipped}")
    expect(page.locator("#rejections-note")).to_contain_text(f"load {load_id}")
    expect(rejected_rows).to_have_count(50)
    console.check_clean()


def test_a_running_load_shows_its_progress_and_its_row_updates_live(console: Console) -> None:
    # an uncommitted row with an id of the file's second batch (of 4) holds that batch:
    # the load runs, its other batches committed, part of the way, until it is let go
    ids = [line.split(",")[0] for line in (SAMPLES / FILES["employees"]).read_text().splitlines()]
    held = int(ids[749])  # line 750
    with connect(console.db, autocommit=False) as holder:
        execute(holder, f"INSERT INTO hired_employees VALUES ({held}, 'x', now(), 1, 1)")
        loading = InThread(
            lambda: hrcore.load(
                f"s3://{console.bucket}/hired_employees.csv", database_url=console.db,
                batch_size=500,
            )
        )  # fmt: skip
        partway = """SELECT r.rows_expected > 0 AND count(b.batch) = 3 FROM load_runs r
            JOIN load_batches b ON b.load_id = r.id WHERE r.status = 'running' GROUP BY r.id"""
        wait_until(lambda: query(console.db, partway) == [(True,)], "3 of 4 batches committed")
        console.open("loads")
        page = console.page
        row = page.locator("#loads-table tbody tr[data-status=running]")
        expect(row).to_have_count(1)
        report = console.api(f"/loads/{row.get_attribute('data-load-id')}")
        share = round(100 * report["rows_read"] / report["rows_expected"])
        assert 0 < share < 100
        expect(row.locator("progress")).to_have_attribute("title", f"{share}%")
        console.screenshot("loads-running")
        holder.rollback()
    done = loading.result(timeout=120)
    row = page.locator(f"#loads-table tbody tr[data-load-id='{done.load_id}']")
    expect(row).to_have_attribute("data-status", "succeeded")  # no click: it was polled
    expect(row.locator("progress")).to_have_count(0)
    expect(row.locator("td").nth(5)).to_have_text("2,000")
    console.check_clean()


def test_without_the_token_the_console_says_what_it_would_unlock(console: Console) -> None:
    console.open("loads", token=False)
    page = console.page
    expect(page.locator("#token-state")).to_have_text("no token: only the health line is shown")
    locked = page.locator("#view-loads .locked")
    expect(locked).to_be_visible()
    expect(locked).to_contain_text("the metrics, the data")
    expect(page.locator("#health")).to_contain_text("database up")
    page.click("nav a[data-view=metrics]")
    expect(page.locator("#view-metrics .locked")).to_be_visible()
    asked = {u.removeprefix(console.base).split("?")[0] for u in console.requests}
    assert asked <= {"/console", "/console/console.css", "/console/console.js", "/", "/health-db"}

    # typed once, the token is kept for this tab, across a reload; not for another tab
    page.fill("#token", TOKEN)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#view-metrics .locked")).to_be_hidden()
    page.reload()
    expect(page.locator("#token-state")).to_have_text("token kept for this tab")
    other = page.context.new_page()
    other.goto(f"{console.base}/console#loads")
    expect(other.locator("#token-state")).to_have_text("no token: only the health line is shown")
    other.close()
    console.check_clean()


def test_a_wrong_token_is_refused_and_one_that_cannot_be_sent_is_not_kept(
    console: Console,
) -> None:
    console.open("metrics", token=False)
    page = console.page
    page.fill("#token", "s\u00e9cret\u20ac")  # not ASCII: no header can carry it
    page.click("#token-form button[type=submit]")
    expect(page.locator("#message")).to_contain_text("visible ASCII")
    expect(page.locator("#token-state")).to_have_text("no token: only the health line is shown")
    page.fill("#token", "wrong")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#message")).to_contain_text("refused the token (401)")
    expect(page.locator("#token-state")).to_have_text("the API refused this token")
    page.fill("#token", TOKEN)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#quarters-chart svg")).to_be_visible()
    expect(page.locator("#message")).to_be_hidden()
    console.check_clean(401)


@pytest.mark.parametrize("console", ["open"], indirect=True)
def test_with_no_token_configured_everything_works_without_one(console: Console) -> None:
    load_employees(console)
    console.open("metrics", token=False)
    page = console.page
    expect(page.locator("#token-state")).to_have_text("this server needs no token")
    expect(page.locator("#quarters-chart svg g.bar").first).to_be_visible()
    page.click("nav a[data-view=actions]")
    page.fill("#rows-csv", "77,Ops\n")
    page.click("#rows-form button[type=submit]")
    expect(page.locator("#rows-outcome tr[data-outcome=inserted]")).to_have_count(1)
    assert query(console.db, "SELECT department FROM departments WHERE id = 77") == [("Ops",)]
    console.check_clean()


def test_the_report_file_opens_with_both_charts_and_fetches_nothing(
    console: Console, tmp_path: Path
) -> None:
    load_employees(console)
    out = tmp_path / "report.html"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "hrcore"),
            "report",
            "--year",
            "2021",
            "--out",
            str(out),
        ],
        env={**os.environ, "DATABASE_URL": console.db},
        check=True,
        timeout=120,
    )
    page = console.page
    page.goto(out.as_uri())
    expect(page.locator("#quarters-chart svg g.bar").first).to_be_visible()
    expect(page.locator("#above-mean-chart svg line.mean")).to_have_count(1)
    assert page.locator("#above-mean-chart svg rect.bar").count() > 0
    assert console.requests == [out.as_uri()]
    assert console.errors == []
