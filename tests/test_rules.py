"""Every rule of the data dictionary, checked through a real load: what lands, what is
rejected, with which reasons, line numbers and raw values."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import hrcore
import pytest

from tests.conftest import query, write

GOOD = "1,Ann,2021-07-27T16:02:08Z,1,2"


def load_employees(db: str, tmp_path: Path, content: str | bytes) -> hrcore.LoadReport:
    return hrcore.load(write(tmp_path, "hired_employees.csv", content), database_url=db)


def rejected(db: str, load_id: int) -> list[tuple[int, str, list[str]]]:
    rows = query(
        db,
        "SELECT line_number, raw, reasons FROM rejected_rows WHERE load_id = $1 "
        "ORDER BY line_number",
        (load_id,),
    )
    return [(int(n), raw, list(reasons)) for n, raw, reasons in rows]


@pytest.mark.parametrize(
    ("line", "reasons"),
    [
        ("2,,2021-07-27T16:02:08Z,1,2", ["missing_field"]),
        ("2,Bo,,1,2", ["missing_field"]),
        ("2,Bo,2021-07-27T16:02:08Z,,2", ["missing_field"]),
        ("2,   ,2021-07-27T16:02:08Z,1,2", ["missing_field"]),
        ("two,Bo,2021-07-27T16:02:08Z,1,2", ["bad_integer"]),
        ("2.0,Bo,2021-07-27T16:02:08Z,1,2", ["bad_integer"]),
        ("2,Bo,2021-07-27T16:02:08Z,1,x", ["bad_integer"]),
        ("0,Bo,2021-07-27T16:02:08Z,1,2", ["id_out_of_range"]),
        ("-2,Bo,2021-07-27T16:02:08Z,1,2", ["id_out_of_range"]),
        ("2147483648,Bo,2021-07-27T16:02:08Z,1,2", ["id_out_of_range"]),
        ("99999999999999999999999,Bo,2021-07-27T16:02:08Z,1,2", ["id_out_of_range"]),
        ("2,Bo,2021-07-27 16:02:08,1,2", ["bad_datetime"]),
        ("2,Bo,2021-07-27T16:02:08,1,2", ["bad_datetime"]),  # no time zone
        ("2,Bo,2021-02-30T10:00:00Z,1,2", ["bad_datetime"]),  # no such day
        ("2,Bo,2021-07-27T25:00:00Z,1,2", ["bad_datetime"]),  # no such hour
        ("2,Bo,yesterday,1,2", ["bad_datetime"]),
        ("2,Bo,0000-01-01T00:00:00Z,1,2", ["bad_datetime"]),  # no year 0 in PostgreSQL
        ("2,Bo,0000-01-01T00:00:00+00:00,1,2", ["bad_datetime"]),
        ("2,Bo,9999-12-31T23:00:00-05:00,1,2", ["bad_datetime"]),  # year 10000 in UTC
        ("2,Bo,2021-06-30T23:59:60Z,1,2", ["bad_datetime"]),  # a leap second
        ("2,Bo,2021-07-27T16:02:08Z,9,2", ["unknown_department"]),
        ("2,Bo,2021-07-27T16:02:08Z,1,9", ["unknown_job"]),
        ("2,Bo,2021-07-27T16:02:08Z,9,9", ["unknown_department", "unknown_job"]),
        ("2,Bo,2021-07-27T16:02:08Z,1", ["field_count"]),
        ("2,Bo,2021-07-27T16:02:08Z,1,2,3", ["field_count"]),
        ('2,"Bo,2021-07-27T16:02:08Z,1,2', ["bad_quoting"]),
        ("x,,nope,0,", ["missing_field", "bad_integer", "id_out_of_range", "bad_datetime"]),
    ],
)
def test_a_row_breaking_a_rule_is_rejected_with_its_reasons(
    refs: str, tmp_path: Path, line: str, reasons: list[str]
) -> None:
    report = load_employees(refs, tmp_path, f"{GOOD}\n{line}\n")

    assert (report.rows_read, report.rows_inserted, report.rows_rejected) == (2, 1, 1)
    assert rejected(refs, report.load_id) == [(2, line, reasons)]
    assert query(refs, "SELECT id FROM hired_employees") == [(1,)]


def test_bytes_that_are_not_utf8_reject_the_row(refs: str, tmp_path: Path) -> None:
    report = load_employees(
        refs, tmp_path, GOOD.encode() + b"\n2,B\xffo,2021-07-27T16:02:08Z,1,2\n"
    )

    [(line, raw, reasons)] = rejected(refs, report.load_id)
    assert (line, reasons) == (2, ["encoding"])
    assert raw == "2,B\ufffdo,2021-07-27T16:02:08Z,1,2"
    assert report.rows_inserted == 1


def test_valid_values_are_stored_typed_trimmed_and_in_utc(refs: str, tmp_path: Path) -> None:
    content = (
        '1,"Smith, John",2021-07-27T16:02:08Z,1,2\r\n'
        "2,  Ann O'Neil  ,2021-07-27T16:02:08-05:00,2,3\r\n"
        " 3 ,Zoë,2021-12-31T23:59:59.250+01:00, 3 , 1"  # no final newline
    )
    report = load_employees(refs, tmp_path, content)

    assert (report.rows_inserted, report.rows_rejected) == (3, 0)
    assert query(
        refs, "SELECT id, name, datetime, department_id, job_id FROM hired_employees ORDER BY id"
    ) == [
        (1, "Smith, John", datetime(2021, 7, 27, 16, 2, 8, tzinfo=UTC), 1, 2),
        (2, "Ann O'Neil", datetime(2021, 7, 27, 21, 2, 8, tzinfo=UTC), 2, 3),
        (3, "Zoë", datetime(2021, 12, 31, 22, 59, 59, 250000, tzinfo=UTC), 3, 1),
    ]


def test_the_last_of_repeated_ids_wins_and_earlier_ones_are_duplicates(
    refs: str, tmp_path: Path
) -> None:
    content = (
        "1,First,2021-01-01T00:00:00Z,1,1\n"
        "2,Other,2021-01-01T00:00:00Z,1,1\n"
        "1,Second,2021-01-01T00:00:00Z,1,1\n"
        "1,,2021-01-01T00:00:00Z,1,1\n"  # invalid: does not take part in the duplicate rule
        "1,Third,2021-01-01T00:00:00Z,1,1\n"
    )
    report = load_employees(refs, tmp_path, content)

    assert query(refs, "SELECT id, name FROM hired_employees ORDER BY id") == [
        (1, "Third"),
        (2, "Other"),
    ]
    assert [(n, r) for n, _, r in rejected(refs, report.load_id)] == [
        (1, ["duplicate_id"]),
        (3, ["duplicate_id"]),
        (4, ["missing_field"]),
    ]
    assert report.rejections == {"duplicate_id": 2, "missing_field": 1}


def test_repeated_ids_far_apart_across_batches_are_found(refs: str, tmp_path: Path) -> None:
    lines = [f"{i},N{i},2021-01-01T00:00:00Z,1,1" for i in range(1, 301)] + [
        "5,Last,2021-01-01T00:00:00Z,1,1"
    ]
    report = hrcore.load(
        write(tmp_path, "hired_employees.csv", "\n".join(lines)), database_url=refs, batch_size=7
    )

    assert [(n, r) for n, _, r in rejected(refs, report.load_id)] == [(5, ["duplicate_id"])]
    assert query(refs, "SELECT name FROM hired_employees WHERE id = 5") == [("Last",)]
    assert (report.rows_inserted, report.rows_rejected) == (300, 1)


def test_departments_and_jobs_follow_the_same_rules(db: str, tmp_path: Path) -> None:
    content = "1,Sales\n2,\n0,Legal\n1,Sales again\nx,Staff\n3,Accounting,extra\n"
    report = hrcore.load(write(tmp_path, "departments.csv", content), database_url=db)

    assert query(db, "SELECT id, department FROM departments") == [(1, "Sales again")]
    assert [(n, r) for n, _, r in rejected(db, report.load_id)] == [
        (1, ["duplicate_id"]),
        (2, ["missing_field"]),
        (3, ["id_out_of_range"]),
        (5, ["bad_integer"]),
        (6, ["field_count"]),
    ]


def test_blank_lines_are_not_rows_but_line_numbers_stay_true(refs: str, tmp_path: Path) -> None:
    report = load_employees(refs, tmp_path, f"{GOOD}\n\n   \n2,,x,1,1\n\n")

    assert report.rows_read == 2
    assert [n for n, _, _ in rejected(refs, report.load_id)] == [4]


def test_a_quoted_field_may_span_lines_and_its_row_is_numbered_where_it_starts(
    refs: str, tmp_path: Path
) -> None:
    content = (
        '1,"Ann\nO\'Neil, ""Jr""",2021-07-27T16:02:08Z,1,2\n'
        "2,,2021-07-27T16:02:08Z,1,2\n"
        '3,"Bo\r\nLee",2021-07-27T16:02:08Z,1,2\r\n'
    )
    report = load_employees(refs, tmp_path, content)

    assert (report.rows_read, report.rows_inserted, report.rows_rejected) == (3, 2, 1)
    assert query(refs, "SELECT id, name FROM hired_employees ORDER BY id") == [
        (1, 'Ann\nO\'Neil, "Jr"'),
        (3, "Bo\r\nLee"),
    ]
    assert rejected(refs, report.load_id) == [(3, "2,,2021-07-27T16:02:08Z,1,2", ["missing_field"])]


def test_a_nul_byte_rejects_its_row_only(refs: str, tmp_path: Path) -> None:
    report = load_employees(
        refs, tmp_path, GOOD.encode() + b"\n2,B\x00o,2021-07-27T16:02:08Z,1,2\n3,C,x,1,2\n"
    )

    assert report.status == "succeeded"
    assert (report.rows_inserted, report.rejections) == (1, {"nul_byte": 1, "bad_datetime": 1})
    assert rejected(refs, report.load_id)[0] == (
        2,
        "2,B\u2400o,2021-07-27T16:02:08Z,1,2",
        ["nul_byte"],
    )


def test_a_real_replacement_character_is_data_not_an_encoding_error(
    refs: str, tmp_path: Path
) -> None:
    report = load_employees(refs, tmp_path, "1,Ann \ufffd,2021-07-27T16:02:08Z,1,2\n")
    assert (report.rows_inserted, report.rows_rejected) == (1, 0)
    assert query(refs, "SELECT name FROM hired_employees") == [("Ann \ufffd",)]


def test_an_utf16_file_is_a_clear_error_and_loads_nothing(refs: str, tmp_path: Path) -> None:
    with pytest.raises(hrcore.SourceFormatError, match="UTF-16"):
        load_employees(refs, tmp_path, (GOOD + "\n").encode("utf-16"))
    assert query(
        refs,
        "SELECT status, rows_read, error LIKE '%UTF-16%' FROM load_runs "
        "WHERE table_name = 'hired_employees'",
    ) == [("failed", 0, True)]
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(0,)]


def test_an_over_long_line_is_rejected_and_the_rest_loads(refs: str, tmp_path: Path) -> None:
    content = f"{GOOD}\n2,{'x' * 200_000},2021-07-27T16:02:08Z,1,2\n3,C,2021-07-27T16:02:08Z,1,2"
    report = load_employees(refs, tmp_path, content)

    assert (report.rows_read, report.rows_inserted, report.rejections) == (
        3,
        2,
        {"line_too_long": 1},
    )
    [(line, raw, _)] = rejected(refs, report.load_id)
    assert line == 2
    assert raw.startswith("2,xxx")
    assert raw.endswith(" ...")
    assert len(raw) < 1100


def test_json_rows_take_integral_floats_as_integers_and_refuse_fractions(refs: str) -> None:
    report = hrcore.load_rows(
        "employees",
        [
            {"id": 7.0, "name": "A", "datetime": "2021-01-01T00:00:00Z", "department_id": 1.0,
             "job_id": 2},
            {"id": 8.5, "name": "B", "datetime": "2021-01-01T00:00:00Z", "department_id": 1,
             "job_id": 2},
        ],
        database_url=refs,
    )  # fmt: skip
    assert report.inserted == 1
    assert [(r.index, r.reasons) for r in report.rejected] == [(1, ["bad_integer"])]
    assert query(refs, "SELECT id, department_id FROM hired_employees") == [(7, 1)]
