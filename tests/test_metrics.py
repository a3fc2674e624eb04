"""The two metrics, on small fixtures whose answers are written by hand."""

from __future__ import annotations

from pathlib import Path

import hrcore
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import query, write

DEPARTMENTS = "1,Zeta\n2,alpha\n3,Beta\n4,Empty\n"
JOBS = "1,Analyst\n2,analyst\n3,Zoo Keeper\n"
EMPLOYEES = """\
1,A,2021-01-01T00:00:00Z,1,1
2,B,2021-03-31T23:59:59Z,1,1
3,C,2021-04-01T00:00:00Z,1,1
4,D,2021-12-31T23:59:59Z,1,3
5,E,2022-01-01T00:00:00Z,1,1
6,F,2020-12-31T23:59:59Z,2,1
7,G,2021-03-31T20:00:00-05:00,2,2
8,H,2021-07-01T02:00:00+03:00,3,2
9,I,2021-12-31T22:00:00-03:00,3,1
10,J,2021-06-15T12:00:00Z,3,1
"""
# 7 is 2021-04-01T01:00Z (Q2); 8 is 2021-06-30T23:00Z (Q2); 9 is 2022-01-01T01:00Z (not 2021)


EXPECTED_2021 = [
    ("Beta", "Analyst", 0, 1, 0, 0),
    ("Beta", "analyst", 0, 1, 0, 0),
    ("Zeta", "Analyst", 2, 1, 0, 0),
    ("Zeta", "Zoo Keeper", 0, 0, 0, 1),
    ("alpha", "analyst", 0, 1, 0, 0),
]


@pytest.fixture
def hires(db: str, tmp_path: Path) -> str:
    write(tmp_path, "departments.csv", DEPARTMENTS)
    write(tmp_path, "jobs.csv", JOBS)
    write(tmp_path, "hired_employees.csv", EMPLOYEES)
    hrcore.load_all(tmp_path, database_url=db)
    return db


def quarters(rows: list[tuple[str, str, int, int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["department", "job", "Q1", "Q2", "Q3", "Q4"], orient="row"
    ).cast({"Q1": pl.Int64, "Q2": pl.Int64, "Q3": pl.Int64, "Q4": pl.Int64})


def test_hires_by_quarter_counts_each_pair_per_utc_quarter_in_byte_order(hires: str) -> None:
    assert_frame_equal(hrcore.hires_by_quarter(2021, database_url=hires), quarters(EXPECTED_2021))


def test_hires_by_quarter_of_other_years(hires: str) -> None:
    assert_frame_equal(
        hrcore.hires_by_quarter(2022, database_url=hires),
        quarters([("Beta", "Analyst", 1, 0, 0, 0), ("Zeta", "Analyst", 1, 0, 0, 0)]),
    )
    empty = hrcore.hires_by_quarter(1999, database_url=hires)
    assert empty.height == 0
    assert empty.columns == ["department", "job", "Q1", "Q2", "Q3", "Q4"]


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Tokyo", "Pacific/Kiritimati"])
def test_quarters_are_utc_whatever_the_session_time_zone(
    db: str, tmp_path: Path, zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGTZ", zone)  # libpq sets the session TimeZone from it
    assert query(db, "SELECT current_setting('TimeZone')") == [(zone,)]
    write(tmp_path, "departments.csv", DEPARTMENTS)
    write(tmp_path, "jobs.csv", JOBS)
    write(tmp_path, "hired_employees.csv", EMPLOYEES)
    hrcore.load_all(tmp_path, database_url=db)

    assert_frame_equal(hrcore.hires_by_quarter(2021, database_url=db), quarters(EXPECTED_2021))


def test_departments_above_the_mean_count_departments_without_hires_as_zero(hires: str) -> None:
    # 2021 hires: Zeta 4, alpha 1, Beta 2, Empty 0 -> mean 1.75
    expected = pl.DataFrame(
        {"id": [1, 3], "department": ["Zeta", "Beta"], "hired": [4, 2]},
        schema={"id": pl.Int32, "department": pl.String, "hired": pl.Int64},
    )
    assert_frame_equal(hrcore.departments_above_mean(2021, database_url=hires), expected)


def test_departments_above_the_mean_ties_order_by_id(db: str, tmp_path: Path) -> None:
    write(tmp_path, "departments.csv", "5,E\n2,B\n9,Z\n")
    write(tmp_path, "jobs.csv", "1,J\n")
    write(
        tmp_path,
        "hired_employees.csv",
        "1,a,2021-05-05T00:00:00Z,9,1\n2,b,2021-05-05T00:00:00Z,5,1\n",
    )
    hrcore.load_all(tmp_path, database_url=db)
    # hires 1, 1, 0 -> mean 0.67: both departments with one hire, by id
    assert hrcore.departments_above_mean(2021, database_url=db).rows() == [(5, "E", 1), (9, "Z", 1)]
    assert hrcore.departments_above_mean(2020, database_url=db).height == 0


@pytest.mark.parametrize("year", [0, 10000, -1, "2021", 2021.0, True])
def test_a_bad_year_is_a_usage_error(db: str, year: object) -> None:
    with pytest.raises(hrcore.UsageError, match="year"):
        hrcore.hires_by_quarter(year, database_url=db)  # type: ignore[arg-type]
    with pytest.raises(hrcore.UsageError, match="year"):
        hrcore.departments_above_mean(year, database_url=db)  # type: ignore[arg-type]


def test_the_answers_follow_updates_deletes_restores_and_truncates(
    hires: str, tmp_path: Path
) -> None:
    moved = "1,A,2021-08-01T00:00:00Z,3,2\n"  # from Zeta/Analyst Q1 to Beta/analyst Q3
    update = tmp_path / "update"
    update.mkdir()
    hrcore.load(write(update, "hired_employees.csv", moved), database_url=hires)
    query(hires, "DELETE FROM hired_employees WHERE id = 4")  # Zeta/Zoo Keeper Q4

    assert_frame_equal(
        hrcore.hires_by_quarter(2021, database_url=hires),
        quarters(
            [
                ("Beta", "Analyst", 0, 1, 0, 0),
                ("Beta", "analyst", 0, 1, 1, 0),
                ("Zeta", "Analyst", 1, 1, 0, 0),
                ("alpha", "analyst", 0, 1, 0, 0),
            ]
        ),
    )
    saved = hrcore.backup("hired_employees", to=tmp_path, database_url=hires)
    query(hires, "TRUNCATE hired_employees")
    assert hrcore.hires_by_quarter(2021, database_url=hires).height == 0
    assert hrcore.departments_above_mean(2021, database_url=hires).height == 0

    hrcore.restore("hired_employees", from_=saved.uri, database_url=hires)
    # 2021: Beta 3, Zeta 2, alpha 1, Empty 0 -> mean 1.5
    expected = [(3, "Beta", 3), (1, "Zeta", 2)]
    assert hrcore.departments_above_mean(2021, database_url=hires).rows() == expected


def test_two_jobs_with_the_same_title_in_a_department_are_one_row(db: str, tmp_path: Path) -> None:
    write(tmp_path, "departments.csv", "1,Sales\n2,Sales\n3,Legal\n")
    write(tmp_path, "jobs.csv", "1,Analyst\n2,Analyst\n3,Clerk\n")
    write(
        tmp_path,
        "hired_employees.csv",
        "1,a,2021-01-05T00:00:00Z,1,1\n2,b,2021-04-05T00:00:00Z,1,2\n"
        "3,c,2021-07-05T00:00:00Z,2,2\n4,d,2021-10-05T00:00:00Z,3,3\n"
        "5,e,2021-06-30T23:59:60Z,3,3\n",  # second 60: rejected, not moved into Q3
    )
    hrcore.load_all(tmp_path, database_url=db)

    assert_frame_equal(
        hrcore.hires_by_quarter(2021, database_url=db),
        quarters([("Legal", "Clerk", 0, 0, 0, 1), ("Sales", "Analyst", 1, 1, 1, 0)]),
    )
