"""``hrcore report``: the two metrics as one self-contained HTML file whose charts carry
the same numbers as the library's (and so the API's) answers."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import hrcore
import pytest

from tests.conftest import query
from tests.test_queue import BIN

SAMPLE = hrcore.SAMPLE_FOLDER / "hired_employees.csv"


class Elements(HTMLParser):
    """Every start tag of a page with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(page)
    return parser.found


def chart(page: str, figure: str) -> str:
    match = re.search(rf'<figure id="{figure}">(.*?)</figure>', page, re.DOTALL)
    assert match, figure
    return match.group(1)


def test_the_report_charts_carry_the_metrics_numbers(refs: str) -> None:
    hrcore.load(SAMPLE, database_url=refs)
    page = hrcore.metrics_report(2021, database_url=refs)

    by_quarter = hrcore.hires_by_quarter(2021, database_url=refs)
    expected: dict[str, dict[str, int]] = {}
    for row in by_quarter.iter_rows(named=True):
        totals = expected.setdefault(row["department"], dict.fromkeys(("Q1", "Q2", "Q3", "Q4"), 0))
        for q in totals:
            totals[q] += row[q]
    stacked = elements(chart(page, "quarters-chart"))
    groups = [a for tag, a in stacked if tag == "g" and a.get("class") == "bar"]
    assert [g["data-category"] for g in groups] == list(expected)  # one group per department
    assert [int(g["data-total"] or 0) for g in groups] == [
        sum(q.values()) for q in expected.values()
    ]
    drawn: dict[str, dict[str, int]] = {}
    department = ""
    for tag, a in stacked:
        if tag == "g" and a.get("class") == "bar":
            department = str(a["data-category"])
        elif tag == "rect" and "data-series" in a:
            drawn.setdefault(department, {})[str(a["data-series"])] = int(a["data-value"] or 0)
    assert drawn == expected

    above = hrcore.departments_above_mean(2021, database_url=refs)
    bars = [a for tag, a in elements(chart(page, "above-mean-chart")) if tag == "rect"
            and a.get("class") == "bar"]  # fmt: skip
    assert [(b["data-category"], int(b["data-value"] or 0)) for b in bars] == [
        (r["department"], r["hired"]) for r in above.iter_rows(named=True)
    ]
    [(mean,)] = query(  # computed here from the rows, not from the summary
        refs,
        """SELECT avg(n)::float8 FROM (SELECT d.id, count(e.id) AS n FROM departments d
           LEFT JOIN hired_employees e ON e.department_id = d.id
             AND extract(year FROM e.datetime AT TIME ZONE 'UTC') = 2021
           GROUP BY d.id) per_department""",
    )
    [line] = [a for tag, a in elements(page) if tag == "line" and a.get("class") == "mean"]
    assert float(line["data-value"] or 0) == mean
    assert all(b["data-value"] and int(b["data-value"]) > mean for b in bars)


def test_the_report_fetches_nothing_when_opened(refs: str) -> None:
    hrcore.load(SAMPLE, database_url=refs)
    page = hrcore.metrics_report(2021, database_url=refs)
    for tag, attributes in elements(page):
        assert not {"src", "href", "srcset", "action"} & set(attributes), tag
        assert tag not in ("script", "link", "img", "iframe", "object"), tag
    assert "url(" not in page
    assert "@import" not in page
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}


def test_hrcore_report_writes_the_page_and_refuses_bad_input_in_one_line(
    refs: str, tmp_path: Path
) -> None:
    hrcore.load(SAMPLE, database_url=refs)
    out = tmp_path / "report.html"

    def report(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "hrcore"), "report", "--database-url", refs, *options],
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    made = report("--year", "2021", "--out", str(out))
    assert made.returncode == 0, made.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    assert "<h1>Hires of 2021</h1>" in page
    bad_year = report("--year", "0", "--out", str(out))
    assert (bad_year.returncode, bad_year.stderr.count("\n")) == (2, 1)
    assert "year must be between 1 and 9999" in bad_year.stderr
    nowhere = report("--out", str(tmp_path / "missing" / "report.html"))
    assert (nowhere.returncode, nowhere.stderr.count("\n")) == (2, 1)
    assert "cannot write" in nowhere.stderr


@pytest.mark.parametrize(
    ("rejected", "ticks"),
    [(1, ["0", "1"]), (3, ["0", "1", "2", "3"]), (73, ["0", "20", "40", "60", "80"]),
     (1931, ["0", "500", "1,000", "1,500", "2,000"])],
)  # fmt: skip
def test_a_charts_axis_has_whole_ticks_up_to_just_above_its_highest_bar(
    rejected: int, ticks: list[str]
) -> None:
    report = hrcore.LoadReport(
        table="jobs", source="x", load_id=1, status="succeeded", rejections={"bad": rejected}
    )
    chart = hrcore.rejections_chart(report)
    labels = re.findall(
        r'<text x="[0-9.]+" y="[0-9.]+" text-anchor="end"[^>]*>([^<]*)</text>', chart
    )
    assert labels == ticks
    bar = re.search(r'class="bar"[^>]*height="([0-9.]+)"', chart)
    assert bar is not None
    assert float(bar[1]) == pytest.approx(220 * rejected / int(ticks[-1].replace(",", "")))
