"""The charts of the two metrics and of a load's rejections, as SVG text, drawn from
the frames and reports the library's calls return: the report file, the API and the
console show the same numbers as ``/metrics/...`` and ``/loads/{id}``."""

from __future__ import annotations

import polars as pl

from hrcore._charts import bars, bars_with_line, stacked_bars
from hrcore._report import LoadReport

QUARTERS = ("Q1", "Q2", "Q3", "Q4")


def quarters_by_department(frame: pl.DataFrame) -> pl.DataFrame:
    """Hires by quarter summed over jobs: one row per department, in the frame's order."""
    return frame.group_by("department", maintain_order=True).agg(pl.col(q).sum() for q in QUARTERS)


def hires_by_quarter_chart(by_quarter: pl.DataFrame, year: int) -> str:
    """Quarters stacked per department, from :func:`hrcore.hires_by_quarter`'s frame."""
    departments = quarters_by_department(by_quarter)
    return stacked_bars(
        departments["department"].to_list(),
        {q: departments[q].to_list() for q in QUARTERS},
        f"Hires of {year} by quarter, per department",
    )


def above_mean_chart(above: pl.DataFrame, mean: float, year: int) -> str:
    """The departments above the mean as bars, and the mean as a line, from
    :func:`hrcore.departments_above_mean`'s frame and :func:`hrcore.mean_hires`."""
    return bars_with_line(
        above["department"].to_list(),
        above["hired"].to_list(),
        mean,
        "mean",
        f"Departments that hired more than the mean in {year}",
    )


def rejections_chart(report: LoadReport) -> str:
    """A load's rejected rows counted by reason (a row with two reasons counts under
    both), most frequent first."""
    counted = sorted(report.rejections.items(), key=lambda kv: (-kv[1], kv[0]))
    return bars(
        [reason for reason, _ in counted],
        [n for _, n in counted],
        f"Rows of load {report.load_id} rejected, by reason",
    )
