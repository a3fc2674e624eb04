"""Reading rows back: as Python values, and as the JSON PostgreSQL builds for the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import hrcore
import pytest

ROWS = [
    {"id": 4, "name": "Ann", "datetime": "2021-07-27T18:02:08.25+02:00", "department_id": 1,
     "job_id": 2},
    {"id": 9, "name": "Bob, Jr.", "datetime": "2021-01-01T00:00:00Z", "department_id": 3,
     "job_id": 1},
    {"id": 12, "name": 'Cy "C"', "datetime": "2020-12-31T23:59:59-01:00", "department_id": 2,
     "job_id": 3},
]  # fmt: skip


@pytest.fixture
def stored(refs: str) -> str:
    assert hrcore.load_rows("hired_employees", ROWS, database_url=refs).inserted == 3
    return refs


def test_pages_as_values_and_as_json_hold_the_same_rows(stored: str) -> None:
    values = hrcore.list_rows("hired_employees", limit=2, after=4, database_url=stored)
    assert [r["id"] for r in values] == [9, 12]
    assert values[1]["datetime"] == datetime(2021, 1, 1, 0, 59, 59, tzinfo=UTC)
    page = hrcore.list_rows_json("hired_employees", limit=2, after=4, database_url=stored)
    assert (page.rows, page.last) == (2, 12)
    assert json.loads(page.items) == [
        {**ROWS[1], "datetime": "2021-01-01T00:00:00Z"},
        {**ROWS[2], "datetime": "2021-01-01T00:59:59Z"},  # UTC, with a Z
    ]


def test_a_page_past_the_end_is_empty(stored: str) -> None:
    page = hrcore.list_rows_json("hired_employees", after=12, database_url=stored)
    assert (page.items, page.rows, page.last) == (b"[]", 0, None)
    assert hrcore.list_rows("hired_employees", after=12, database_url=stored) == []


def test_one_row_as_json_keeps_its_fraction_of_a_second(stored: str) -> None:
    row = json.loads(hrcore.get_row_json("hired_employees", 4, database_url=stored))
    assert row == {**ROWS[0], "datetime": "2021-07-27T16:02:08.25Z"}
    with pytest.raises(hrcore.NotFoundError, match="no hired_employees row with id 5"):
        hrcore.get_row_json("hired_employees", 5, database_url=stored)


@pytest.mark.parametrize("after", [-1, True, "1; DROP TABLE jobs", 1.5])
def test_only_a_whole_number_of_zero_or_more_is_an_id(stored: str, after: object) -> None:
    with pytest.raises(hrcore.UsageError, match="after must be an integer of 0 or more"):
        hrcore.list_rows_json("jobs", after=after, database_url=stored)  # type: ignore[arg-type]
    assert len(hrcore.list_rows("jobs", database_url=stored)) == 3


def test_rows_given_as_python_values_are_checked_as_their_text(refs: str) -> None:
    rows = [
        {"id": 1, "name": "Ann", "datetime": datetime(2021, 1, 1, tzinfo=UTC),
         "department_id": 1, "job_id": 1},
        {"id": 4, "name": "Di", "datetime": datetime(2021, 1, 1), "department_id": 1,
         "job_id": 1},
        {"id": 2, "name": "Bob", "datetime": "2021-01-01T00:00:00Z", "department_id": 1.0,
         "job_id": 1},
        {"id": 3, "name": " Cy ", "datetime": "2021-01-01T00:00:00Z", "department_id": "1",
         "job_id": 1},
    ]  # fmt: skip
    report = hrcore.load_rows("hired_employees", rows, database_url=refs)
    assert [(r.index, r.reasons) for r in report.rejected] == [
        (1, ["bad_datetime"]),  # no time zone
    ]
    stored = hrcore.list_rows("hired_employees", database_url=refs)
    # 1.0 is the integer 1, as JSON Schema reads numbers
    assert [(r["id"], r["name"], r["department_id"]) for r in stored] == [
        (1, "Ann", 1),
        (2, "Bob", 1),
        (3, "Cy", 1),
    ]
    logged = hrcore.list_rejections(report.load_id, database_url=refs)
    assert json.loads(logged[0].raw)["id"] == 4  # the ledger keeps the row as JSON
