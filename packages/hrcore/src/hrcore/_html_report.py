"""The two metrics as one self-contained HTML page: tables and inline SVG charts, drawn
from the same library calls as the API and the CLI, with nothing fetched when it is
opened (``hrcore report``)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

import polars as pl

from hrcore._figures import above_mean_chart, hires_by_quarter_chart
from hrcore._metrics import check_year, departments_above_mean, hires_by_quarter, mean_hires
from hrcore._pool import ConnectionPool

_STYLE = """body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px}
td.n{text-align:right}h2{margin-top:2em}figure{margin:0;overflow-x:auto}"""


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{v:,}</td>' if isinstance(v, int) else f"<td>{escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def metrics_report(
    year: int = 2021, *, database_url: str | None = None, pool: ConnectionPool | None = None
) -> str:
    """The page: hires by quarter (a table, and quarters stacked per department) and the
    departments above the mean (a table, and bars with the mean drawn as a line)."""
    year = check_year(year)
    by_quarter = hires_by_quarter(year, database_url=database_url, pool=pool)
    above = departments_above_mean(year, database_url=database_url, pool=pool)
    mean = mean_hires(year, database_url=database_url, pool=pool)
    quarters_chart = hires_by_quarter_chart(by_quarter, year)
    above_chart = above_mean_chart(above, mean, year)
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hrcore: hires of {year}</title>
<style>{_STYLE}</style></head><body>
<h1>Hires of {year}</h1>
<p>Made by hrcore on {made}. Quarters are UTC.</p>
<h2 id="hires-by-quarter">Hires by quarter, per department and job</h2>
<figure id="quarters-chart">{quarters_chart}</figure>
{_table(by_quarter)}
<h2 id="departments-above-mean">Departments that hired more than the mean ({mean:,.2f})</h2>
<figure id="above-mean-chart">{above_chart}</figure>
{_table(above)}
</body></html>
"""
