"""Rows and rules in memory, without a database: how bytes become rows, and every reason."""

from __future__ import annotations

import polars as pl
import pytest
from hrcore import REASONS, SourceFormatError
from hrcore._lines import RowReader, check_utf8_csv, rows_of_text
from hrcore._specs import HIRED_EMPLOYEES, JOBS
from hrcore._validate import validate

REFS = {
    "departments": pl.Series("id", [1, 2, 3], dtype=pl.Int64),
    "jobs": pl.Series("id", [1, 2, 3], dtype=pl.Int64),
}
GOOD = "1,Ann,2021-07-27T16:02:08Z,1,2"


def rows(*blocks: bytes, cap: int = 1 << 16) -> list[tuple[int, str]]:
    """(line, text) of every row read from the blocks."""
    frames = list(RowReader(cap).rows(blocks))
    return [(r["line"], r["text"]) for f in frames for r in f.iter_rows(named=True)]


def reasons_of(line: str | bytes) -> list[str]:
    """The reasons one employee row is rejected for (empty when it is valid)."""
    data = line if isinstance(line, bytes) else line.encode()
    checked = validate(rows_of_text(data), HIRED_EMPLOYEES, REFS)
    assert checked.height == 1
    found = checked["reasons"][0]
    return found.split(",") if found else []


EVERY_REASON: list[tuple[str | bytes, list[str]]] = [
    (GOOD, []),
    (b"1,B\xffo,2021-07-27T16:02:08Z,1,2", ["encoding"]),
    (b"1,Bo\x00b,2021-07-27T16:02:08Z,1,2", ["nul_byte"]),
    ('1,"Bo,2021-07-27T16:02:08Z,1,2', ["bad_quoting"]),
    ('1,"Bo"x,2021-07-27T16:02:08Z,1,2', ["bad_quoting"]),
    ("1,Bo,2021-07-27T16:02:08Z,1", ["field_count"]),
    ("1,Bo,2021-07-27T16:02:08Z,1,2,3", ["field_count"]),
    ("1,,2021-07-27T16:02:08Z,1,2", ["missing_field"]),
    ("1,  ,2021-07-27T16:02:08Z,1,2", ["missing_field"]),
    ("one,Bo,2021-07-27T16:02:08Z,1,2", ["bad_integer"]),
    ("1.0,Bo,2021-07-27T16:02:08Z,1,2", ["bad_integer"]),
    ("0,Bo,2021-07-27T16:02:08Z,1,2", ["id_out_of_range"]),
    ("2147483648,Bo,2021-07-27T16:02:08Z,1,2", ["id_out_of_range"]),
    ("1,Bo,2021-07-27T16:02:08,1,2", ["bad_datetime"]),
    ("1,Bo,2021-02-29T10:00:00Z,1,2", ["bad_datetime"]),
    ("1,Bo,2021-06-30T23:59:60Z,1,2", ["bad_datetime"]),  # a leap second
    ("1,Bo,2021-06-30T23:59:60.5+00:00,1,2", ["bad_datetime"]),
    ("1,Bo,2016-12-31T23:59:60Z,1,2", ["bad_datetime"]),
    ("1,Bo,9999-12-31T23:00:00-05:00,1,2", ["bad_datetime"]),
    ("1,Bo,2021-07-27T 6:02:08Z,1,2", ["bad_datetime"]),  # found by the property test
    ("1,Bo,2021- 7-27T16:02:08Z,1,2", ["bad_datetime"]),
    ("1,Bo,2021-07-27T16:02: 8Z,1,2", ["bad_datetime"]),
    ("1,Bo,+021-07-27T16:02:08Z,1,2", ["bad_datetime"]),
    ("1,Bo,0000-07-27T16:02:08Z,1,2", ["bad_datetime"]),  # no year 0
    (" +7 ,  Bo ,2021-07-27T16:02:08Z, 01,2", []),  # signs, zeros and blanks are fine
    ("1,Bo,2021-07-27T16:02:08Z,9,2", ["unknown_department"]),
    ("1,Bo,2021-07-27T16:02:08Z,1,9", ["unknown_job"]),
    ("x,,no,0,", ["missing_field", "bad_integer", "id_out_of_range", "bad_datetime"]),
]


@pytest.mark.parametrize(("line", "reasons"), EVERY_REASON)
def test_every_reason_of_a_row(line: str | bytes, reasons: list[str]) -> None:
    assert reasons_of(line) == reasons
    assert all(r in REASONS for r in reasons)


def test_rows_checked_together_keep_their_order_and_each_its_own_reasons() -> None:
    """Valid rows in the common form are typed in one pass and the others checked
    rule by rule; the result is still in the order of the lines."""
    lines = pl.concat(
        rows_of_text(line if isinstance(line, bytes) else line.encode())
        for line, _ in EVERY_REASON * 2
    ).with_columns(line=pl.int_range(1, 2 * len(EVERY_REASON) + 1, dtype=pl.Int64))
    checked = validate(lines, HIRED_EMPLOYEES, REFS)

    assert checked["line"].to_list() == lines["line"].to_list()
    assert [r.split(",") if r else [] for r in checked["reasons"]] == [
        reasons for _, reasons in EVERY_REASON * 2
    ]
    assert checked.filter(pl.col("reasons").is_null())["name"].to_list() == ["Ann", "Bo"] * 2


def test_a_quoted_name_is_kept_without_its_quotes() -> None:
    text = b"".join(
        b"%d,%s,2021-07-27T16:02:08Z,1,2\n" % (i, name)
        for i, name in enumerate([b'"Bo"', b'"B""o"', b'" Bo "'], 1)
    )
    checked = validate(rows_of_text(text), HIRED_EMPLOYEES, REFS)

    assert checked["reasons"].to_list() == [None, None, None]
    assert checked["name"].to_list() == ["Bo", 'B"o', "Bo"]


def test_a_real_replacement_character_is_a_valid_name() -> None:
    assert reasons_of("1,Ann \ufffd Lee,2021-07-27T16:02:08Z,1,2") == []


def test_a_quoted_field_may_hold_commas_quotes_and_line_breaks() -> None:
    text = b'1,"Smith, ""J""\r\nJohn",2021-07-27T16:02:08Z,1,2\r\n2,Bo,2021-07-27T16:02:08Z,1,2\n'
    checked = validate(rows_of_text(text), HIRED_EMPLOYEES, REFS)

    assert checked["reasons"].to_list() == [None, None]
    assert checked["name"].to_list() == ['Smith, "J"\r\nJohn', "Bo"]
    assert checked["line"].to_list() == [1, 3]
    assert checked["raw"][0] == '1,"Smith, ""J""\r\nJohn",2021-07-27T16:02:08Z,1,2'


def test_a_nul_is_shown_in_raw_as_a_symbol_and_its_fields_are_not_kept() -> None:
    checked = validate(rows_of_text(b"1,Bo\x00b,2021-07-27T16:02:08Z,1,2"), HIRED_EMPLOYEES, REFS)

    assert checked["raw"][0] == "1,Bo\u2400b,2021-07-27T16:02:08Z,1,2"
    assert checked.select("id", "name", "datetime").row(0) == (None, None, None)


def test_second_60_is_refused_but_59_and_fractions_are_kept() -> None:
    checked = validate(
        rows_of_text(b"1,A,2021-06-30T23:59:59Z,1,1\n2,B,2021-06-30T23:59:59.999+00:00,1,1\n"),
        HIRED_EMPLOYEES,
        REFS,
    )
    assert checked["reasons"].to_list() == [None, None]
    assert [d.second for d in checked["datetime"]] == [59, 59]


def test_rows_start_where_their_first_line_does_and_blank_lines_are_not_rows() -> None:
    data = b'1,a\n\n  \n2,"x\ny",z\n3,b\r\n4,c'  # no final newline
    assert rows(data) == [(1, "1,a"), (4, '2,"x\ny",z'), (6, "3,b"), (7, "4,c")]


def test_rows_are_the_same_whatever_the_blocks() -> None:
    data = b'1,a\n2,"multi\r\nline ""quoted""",x\n3,\xe2\x82\xac\n4,"open\n5,c\n'
    whole = rows(data)
    for size in (1, 2, 3, 5, 8, 13):
        blocks = [data[i : i + size] for i in range(0, len(data), size)]
        assert rows(*blocks) == whole
    assert whole[2] == (4, "3,\u20ac")


def test_a_quote_never_closed_leaves_its_first_line_alone_and_reading_goes_on() -> None:
    assert rows(b'1,a\n2,"open\n3,b\n4,c\n') == [(1, "1,a"), (2, '2,"open'), (3, "3,b"), (4, "4,c")]


def test_broken_quoting_inside_a_row_does_not_swallow_the_next_rows() -> None:
    data = b'1,"a"b,x\n2,ok\n3,"c\n4,ok\n'
    assert rows(data) == [(1, '1,"a"b,x'), (2, "2,ok"), (3, '3,"c'), (4, "4,ok")]


def test_a_quoted_field_open_past_the_cap_leaves_its_first_line_alone() -> None:
    data = b'1,"open\n' + b"y\n" * 40 + b'2,"closes",late"\n3,ok\n'
    found = rows(data, cap=50)
    assert found[0] == (1, '1,"open')
    assert found[-1] == (43, "3,ok")


def test_an_utf8_byte_order_mark_at_the_start_is_not_part_of_the_first_row() -> None:
    data = b"\xef\xbb\xbf1,a\n2,b\n"
    assert rows(data) == [(1, "1,a"), (2, "2,b")]
    assert rows(*(data[i : i + 1] for i in range(len(data)))) == rows(data)  # a split mark
    assert rows(b"\xef\xbb") == [(1, "\ufffd")]  # a piece of a mark alone: a row


def test_a_line_past_the_cap_is_one_rejected_row_and_memory_stays_bounded() -> None:
    reader = RowReader(max_row_bytes=1000)
    found: list[pl.DataFrame] = []
    blocks = [b"1,a\n", *([b"x" * 4096] * 300), b"\n2,b\n"]  # a 1.2 MB line
    for block in blocks:
        found += list(reader._feed(block, final=False))
        assert len(reader.carry) <= 1000 + 4096
    found += list(reader._feed(b"", final=True))
    frame = pl.concat(found)

    assert frame["line"].to_list() == [1, 2, 3]
    assert frame["too_long"].to_list() == [False, True, False]
    assert len(frame["text"][1]) < 1100
    checked = validate(frame, JOBS, {})
    assert checked["reasons"].to_list() == [None, "line_too_long", None]


def test_an_utf16_file_is_refused_before_anything_is_read() -> None:
    for head in ("1,Sales\n".encode("utf-16"), "1,Sales\n2,Legal\n".encode("utf-16-le")):
        with pytest.raises(SourceFormatError, match="UTF-16"):
            check_utf8_csv(head, "departments.csv")
    check_utf8_csv(b"1,Sales\n", "departments.csv")


def test_json_rows_follow_the_rules_of_csv_rows() -> None:
    fields = pl.DataFrame(
        {
            "line": [1, 2, 3],
            "text": ["{}", "{}", "{}"],
            "f0": ["1", "2", "3"],
            "f1": ["a\nb", "c\x00d", " e "],
            "n_fields": [2, 2, 2],
        },
        schema_overrides={"n_fields": pl.Int32},
    )
    checked = validate(fields, JOBS, {})
    assert checked["reasons"].to_list() == [None, "nul_byte", None]
    assert checked["job"].to_list() == ["a\nb", None, "e"]
