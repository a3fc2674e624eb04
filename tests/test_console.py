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

    def check_clean(self) -> None:
        """No console error, no page error, no request beyond the server."""
        assert self.errors == []
        outside = [u for u in self.requests if not u.startswith((self.base, "data:"))]
        assert outside == []


@pytest.fixture
def console(
    db: str, browser: Browser, bucket: str, s3_endpoint: str, tmp_path: Path
) -> Iterator[Console]:
    for name in FILES.values():
        upload(s3_endpoint, bucket, name, SAMPLES / name)
    for name in ("departments.csv", "jobs.csv"):
        hrcore.load(f"s3://{bucket}/{name}", database_url=db)
    log = (tmp_path / "api.log").open("w+")
    env = {**os.environ, "DATABASE_URL": db, "S3_BUCKET_NAME": bucket, "HRCORE_API_TOKEN": TOKEN}
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
    expected: dict[str, int] = {}
    for item in by_quarter:
        expected[item["department"]] = expected.get(item["department"], 0) + sum(
            item[q] for q in ("Q1", "Q2", "Q3", "Q4")
        )
    drawn = {
        g.get_attribute("data-category"): int(g.get_attribute("data-total") or -1)
        for g in bars.all()
    }
    assert drawn == expected  # one bar group per department, each with the API's total
    assert len(drawn) > 1
    assert page.locator("#quarters-table tbody tr").count() == len(by_quarter)

    above = console.api("/metrics/departments-above-mean", params={"year": 2021})["items"]
    above_bars = page.locator("#above-mean-chart svg rect.bar")
    assert {
        b.get_attribute("data-category"): int(b.get_attribute("data-value") or -1)
        for b in above_bars.all()
    } == {a["department"]: a["hired"] for a in above}
    assert page.locator("#above-mean-chart svg line.mean").count() == 1
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

    wanted = second_page["items"][3]
    page.fill("#lookup-id", str(wanted["id"]))
    page.click("#lookup")
    expect(page.locator("#lookup-result")).to_contain_text(f"name: {wanted['name']}")
    console.screenshot("data")
    console.check_clean()


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
    console.check_clean()


def test_a_load_started_from_the_console_is_watched_until_it_succeeds(console: Console) -> None:
    console.open("actions")
    page = console.page
    page.select_option("#file-table", "employees")
    page.click("#file-form button[type=submit]")
    status = page.locator("#file-load-status")
    expect(status).to_have_attribute("data-status", "queued")
    expect(status).to_contain_text("waiting for a worker")

    InThread(lambda: run_queue(console.db)).result(timeout=120)  # a worker runs the job
    expect(status).to_have_attribute("data-status", "succeeded")
    load_id = int(query(console.db, "SELECT max(id) FROM load_runs")[0][0])
    report = console.api(f"/loads/{load_id}")
    assert report["status"] == "succeeded"
    assert report["rows_read"] == 2000
    expect(status).to_contain_text(f"{report['rows_read']:,} rows read")

    # the ledger shows it, and its rejected rows by reason and page by page
    page.click("nav a[data-view=loads]")
    row = page.locator(f"#loads-table tbody tr[data-load-id='{load_id}']")
    expect(row).to_have_attribute("data-status", "succeeded")
    row.locator("a").click()
    expect(page.locator("#load-title")).to_contain_text(f"Load {load_id}")
    drawn = page.locator("#rejections-chart svg rect.bar")
    expect(drawn.first).to_be_visible()
    assert {
        b.get_attribute("data-category"): int(b.get_attribute("data-value") or -1)
        for b in drawn.all()
    } == report["rejections"]
    rejected_rows = page.locator("#rejections-table tbody tr")
    expect(rejected_rows).to_have_count(min(50, report["rows_rejected"]))
    if report["rows_rejected"] > 50:
        page.click("#rejections-more")
        expect(rejected_rows).to_have_count(min(100, report["rows_rejected"]))
    console.screenshot("loads")
    console.check_clean()


def test_a_running_load_shows_its_progress_and_its_row_updates_live(console: Console) -> None:
    # a transaction holding the table keeps the load's first batch from committing:
    # the load runs, its first pass done, at 0 of its expected rows, until it ends
    with connect(console.db) as holder:
        execute(holder, "BEGIN")
        execute(holder, "LOCK TABLE hired_employees IN EXCLUSIVE MODE")
        loading = InThread(lambda: load_employees(console))
        running = "SELECT rows_expected > 0 FROM load_runs WHERE status = 'running'"
        wait_until(
            lambda: query(console.db, running) == [(True,)],
            "the load running, its first pass done",
        )
        console.open("loads")
        page = console.page
        row = page.locator("#loads-table tbody tr[data-status=running]")
        expect(row).to_have_count(1)
        bar = row.locator("progress")
        expect(bar).to_have_attribute("title", "0%")
        console.screenshot("loads-running")
        execute(holder, "COMMIT")
    report = loading.result(timeout=120)
    done = page.locator(f"#loads-table tbody tr[data-load-id='{report.load_id}']")
    expect(done).to_have_attribute("data-status", "succeeded")  # no click: it was polled
    expect(done.locator("progress")).to_have_count(0)
    expect(done.locator("td").nth(5)).to_have_text("2,000")
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
