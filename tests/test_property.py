"""Property tests: generated hired_employees files, good rows mixed with every kind of bad
row, loaded for real and compared with an independent oracle of the rules.

The oracle below reads DESIGN.md's rules, not the library: RFC 4180 rows through the
``csv`` module (strict) over the decoded text, each row numbered by the line it starts
on, with the loader's recovery rule for broken quoting (a row whose quoting fails, or
whose quoted field is still open at the end of the file or after 64 KiB, is its first
line alone, rejected ``bad_quoting``, and reading resumes at the next line); then the
field rules, then repeated ids (the last valid row wins). It imports nothing from
hrcore's private modules.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hrcore
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.conftest import query, write

# ---------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------

MAX_ID = 2_147_483_647
ROW_CAP = 64 * 1024  # a row (with its line ends) longer than this is not taken whole
RAW_KEPT = 1000  # characters of an over-long row kept in the ledger
KNOWN_DEPARTMENTS = KNOWN_JOBS = frozenset({1, 2, 3})  # what the `refs` fixture loads
REASON_ORDER = (
    "encoding",
    "nul_byte",
    "line_too_long",
    "bad_quoting",
    "field_count",
    "missing_field",
    "bad_integer",
    "id_out_of_range",
    "bad_datetime",
    "unknown_department",
    "unknown_job",
    "duplicate_id",
)

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})"
)

Stored = tuple[str, datetime, int, int]


@dataclass
class Row:
    line: int  # where the row starts, counting every physical line from 1
    raw: str  # what the ledger keeps
    reasons: list[str]
    values: Stored | None = None
    id: int | None = None


@dataclass
class Expected:
    rows: list[Row]
    table: dict[int, Stored]

    @property
    def rejected(self) -> dict[int, tuple[str, str]]:
        return {r.line: (r.raw, ",".join(r.reasons)) for r in self.rows if r.reasons}


def utc_datetime(value: str) -> datetime | None:
    """ISO 8601 with a zone, a real date and time (no second 60), in UTC years 1-9999."""
    match = _DATETIME.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7) or "", match.group(8)
    try:  # no year 0, no Feb 30, no hour 25, no second 60
        local = datetime(year, month, day, hour, minute, second, int(fraction[:6].ljust(6, "0")))
    except ValueError:
        return None
    offset = timedelta(0)
    if zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes) * (1 if zone[0] == "+" else -1)
    try:
        return (local - offset).replace(tzinfo=UTC)
    except OverflowError:  # the UTC year is before 1 or after 9999
        return None


def _id_reasons(value: str) -> tuple[int | None, list[str]]:
    if value == "":
        return None, ["missing_field"]
    if _INTEGER.fullmatch(value) is None:
        return None, ["bad_integer"]
    number = int(value)
    if not 1 <= number <= MAX_ID:
        return None, ["id_out_of_range"]
    return number, []


def _field_reasons(fields: list[str]) -> tuple[list[str], Stored | None, int | None]:
    """Reasons of a row of the right shape, its stored values and its id."""
    id_text, name, when, department_text, job_text = (f.strip() for f in fields)
    found: set[str] = set()
    ids: list[int | None] = []
    for text in (id_text, department_text, job_text):
        number, reasons = _id_reasons(text)
        ids.append(number)
        found.update(reasons)
    if name == "":
        found.add("missing_field")
    stamp = None
    if when == "":
        found.add("missing_field")
    else:
        stamp = utc_datetime(when)
        if stamp is None:
            found.add("bad_datetime")
    row_id, department, job = ids
    if department is not None and department not in KNOWN_DEPARTMENTS:
        found.add("unknown_department")
    if job is not None and job not in KNOWN_JOBS:
        found.add("unknown_job")
    reasons = [r for r in REASON_ORDER if r in found]
    if reasons:
        return reasons, None, row_id
    assert stamp is not None
    assert department is not None
    assert job is not None
    return [], (name, stamp, department, job), row_id


def _physical_lines(data: bytes) -> list[bytes]:
    """Every line with its newline (the last one gets one if it lacks it)."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    pieces = data.split(b"\n")
    lines = [p + b"\n" for p in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1] + b"\n")
    return lines


def _record_from(lines: list[bytes], first: int) -> tuple[list[str] | None, int]:
    """The RFC 4180 record that starts at line ``first`` (csv, strict) and how many lines
    it takes; (None, 1) when its quoting is broken or it does not end within the cap."""

    def texts() -> Iterator[str]:
        total = 0
        for line in lines[first:]:
            total += len(line)
            if total > ROW_CAP:
                return
            yield line.decode("utf-8", "replace")

    reader = csv.reader(texts(), strict=True)
    try:
        record = next(reader)
    except (csv.Error, StopIteration):
        return None, 1
    return record, reader.line_num


def oracle(data: bytes) -> Expected:
    lines = _physical_lines(data)
    rows: list[Row] = []
    i = 0
    while i < len(lines):
        one = lines[i][:-1].removesuffix(b"\r")
        if len(one) > ROW_CAP:  # over-long: rejected whatever it holds
            raw = one[:RAW_KEPT].decode("utf-8", "replace") + " ..."
            rows.append(Row(i + 1, raw, ["line_too_long"]))
            i += 1
            continue
        fields, taken = _record_from(lines, i)
        text = b"".join(lines[i : i + taken])[:-1].removesuffix(b"\r")
        decoded = text.decode("utf-8", "replace")
        if decoded.strip() == "":  # blank lines are not rows
            i += taken
            continue
        shape = []
        if decoded.encode() != text:
            shape.append("encoding")
        if "\x00" in decoded:
            shape.append("nul_byte")
        if fields is None:
            shape.append("bad_quoting")
        elif len(fields) != 5:
            shape.append("field_count")
        row = Row(i + 1, decoded.replace("\x00", "\u2400"), shape)
        if not shape:
            assert fields is not None
            row.reasons, row.values, row.id = _field_reasons(fields)
        rows.append(row)
        i += taken
    last_line: dict[int, int] = {}
    for row in rows:
        if not row.reasons and row.id is not None:
            last_line[row.id] = row.line
    table: dict[int, Stored] = {}
    for row in rows:
        if not row.reasons and row.id is not None:
            if row.line < last_line[row.id]:
                row.reasons = ["duplicate_id"]
            else:
                assert row.values is not None
                table[row.id] = row.values
    return Expected(rows, table)


def test_the_oracle_reads_the_rules_as_written() -> None:
    """A few hand-made answers, so that the oracle itself is checked."""
    data = (
        b"\xef\xbb\xbf1, O'Brien ,2021-07-27T16:02:08Z,1,1\r\n"
        b"\r\n"
        b'2,"Smith, ""J""\nline two",2021-07-27T16:02:08+02:00,2,3\n'
        b"3,X,2021-02-30T00:00:00Z,4,1\n"
        b'4,"open,2021-07-27T16:02:08Z,1,1\n'
        b"1,Again,2021-07-27T23:59:60Z,1,1\n"
        b"5,A\xffB,2021-07-27T16:02:08Z,1,1\n"
        b"1,Last,9999-12-31T23:00:00-00:30,3,3"
    )
    expected = oracle(data)
    assert [(r.line, r.reasons) for r in expected.rows] == [
        (1, ["duplicate_id"]),
        (3, []),
        (5, ["bad_datetime", "unknown_department"]),
        (6, ["bad_quoting"]),
        (7, ["bad_datetime"]),
        (8, ["encoding"]),
        (9, []),
    ]
    assert expected.table == {
        2: ('Smith, "J"\nline two', datetime(2021, 7, 27, 14, 2, 8, tzinfo=UTC), 2, 3),
        1: ("Last", datetime(9999, 12, 31, 23, 30, tzinfo=UTC), 3, 3),
    }
    assert utc_datetime("9999-12-31T23:00:00-02:00") is None
    assert utc_datetime("0000-01-01T00:00:00Z") is None
    assert utc_datetime("2021-07-27T16:02:08") is None


# ---------------------------------------------------------------------------------------
# The generators
# ---------------------------------------------------------------------------------------
# The first choice of each sampled_from, and 0 of each integers, is the plain case:
# hypothesis shrinks towards it, so a failing file shrinks to its one bad feature.

PADDING = st.sampled_from(["", "", "", " ", "  ", "\t", "\u00a0"])
BLANK_LINES = st.sampled_from(["", " ", "\t", " \u00a0 "])
LINE_ENDS = st.sampled_from(["\n", "\r\n"])
# bytes that are not UTF-8 (never FF FE / FE FF: a file starting so is refused as UTF-16)
NOT_UTF8 = st.sampled_from([b"\xff", b"\xe9", b"\xc3(", b"\x80", b"\xed\xa0\x80", b"\xf0\x9f"])

EMPLOYEE_IDS = st.one_of(st.integers(1, 20), st.sampled_from([MAX_ID, 123_456_789]))
REFERENCE_IDS = st.integers(1, 3)
UNKNOWN_REFERENCES = [4, 7, 1_000_000, MAX_ID]
ID_FORMS = st.sampled_from(["{}"] * 6 + ["0{}", "+{}", "00{}"])  # all the integer n
MISSING = ["", " ", "  ", "\t"]  # empty, or whitespace only
BAD_INTEGERS = ["abc", "1.5", "1e3", "12a", "0x1F", "\u0661\u0662", "- 5", "5 6", "one"]
OUT_OF_RANGE = ["0", "-0", "-3", "2147483648", "99999999999999999999", "-2147483648", "+0"]

NAME_CHARS = st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCXYZ'-. \u00e9\u00f1\u00fc\ufffd"))
NAME_QUOTING_CHARS = st.sampled_from([",", '"', "'", "\ufffd", " "])


@st.composite
def good_name(draw: st.DrawFn, multiline: bool) -> str:
    """A name: letters, apostrophes, a real U+FFFD, maybe commas and quotes (to be
    quoted), maybe line breaks (then no quotes), maybe surrounding whitespace."""
    name = draw(st.text(NAME_CHARS, min_size=1, max_size=12))
    if draw(st.booleans()):
        name += draw(st.text(NAME_QUOTING_CHARS, min_size=1, max_size=3))
        name += draw(st.text(NAME_CHARS, max_size=6))
    if multiline and draw(st.integers(0, 3)) == 3:
        name = name.replace('"', "'")
        for _ in range(draw(st.integers(1, 2))):
            at = draw(st.integers(0, len(name)))
            name = name[:at] + draw(LINE_ENDS) + name[at:]
    if name.strip() == "":
        name = "N" + name
    return draw(PADDING) + name + draw(PADDING)


@st.composite
def good_datetime(draw: st.DrawFn) -> str:
    """ISO 8601 with Z or an offset, a fraction sometimes; near years 1 and 9999 too,
    where an offset can push the UTC year out of range."""
    year = draw(st.one_of(st.sampled_from([2021, 2020, 1970, 1, 9999]), st.integers(1, 9999)))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28 if month == 2 else 30))
    hour, minute, second = (
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )
    if year in (1, 9999) and draw(st.booleans()):  # the first or last hours of the range
        month, day, hour = (1, 1, 0) if year == 1 else (12, 31, 23)
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if draw(st.integers(0, 4)) == 4:
        text += "." + draw(st.text(st.sampled_from("0123456789"), min_size=1, max_size=6))
    if draw(st.integers(0, 2)) == 2:
        sign = draw(st.sampled_from("+-"))
        text += f"{sign}{draw(st.integers(0, 14)):02d}:{draw(st.sampled_from([0, 30, 45])):02d}"
    else:
        text += "Z"
    return text


BAD_DATETIMES = [
    "2021-07-27T16:02:08",  # no zone
    "2021-07-27",  # no time
    "2021-07-27 16:02:08Z",  # not ISO 8601's T
    "2021-02-30T10:00:00Z",  # no Feb 30
    "2021-02-29T10:00:00Z",  # 2021 is not a leap year
    "2021-04-31T10:00:00Z",
    "2021-13-01T10:00:00Z",
    "2021-00-10T10:00:00Z",
    "2021-07-00T10:00:00Z",
    "2021-07-27T25:00:00Z",  # hour 25
    "2021-07-27T16:60:00Z",
    "2021-07-27T23:59:60Z",  # second 60: a leap second is refused
    "2016-12-31T23:59:60Z",
    "2021-07-27T23:59:60.5Z",
    "2021-07-27T23:59:60+01:00",
    "0000-01-01T00:00:00Z",  # no year 0
    "0000-06-15T12:00:00+01:00",
    "9999-12-31T23:00:00-02:00",  # UTC 10000-01-01
    "9999-12-31T23:59:59.999-00:01",
    "0001-01-01T00:30:00+01:00",  # UTC year 0
    "2021-07-27T16:02:08Zjunk",
    "27/07/2021 16:02:08",
    "yesterday",
    "2021-07-27T16:02:08+25:00",
    # 20 characters like 2021-07-27T16:02:08Z, but not ISO 8601 (space-padded, signed year)
    "2021-07-27T 6:02:08Z",
    "2021- 7-27T16:02:08Z",
    "2021-07-27T16:02: 8Z",
    "+021-07-27T16:02:08Z",
]

FIELD_DEFECTS = [
    "missing",
    "missing",
    "bad_integer",
    "id_out_of_range",
    "bad_datetime",
    "bad_datetime",
    "unknown_department",
    "unknown_job",
]
ROW_DEFECTS = ["field_count", "junk_after_quote", "open_quote", "not_utf8", "nul", "too_long"]
QUOTING_DEFECTS = ("junk_after_quote", "open_quote")


def quoted(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'


def encode(field: str, quote: bool) -> str:
    if quote or any(c in field for c in ',"\r\n'):
        return quoted(field)
    return field


@st.composite
def row_text(draw: st.DrawFn) -> bytes:
    """One row, good or with one or two defects (maybe of several lines, without its
    final line end)."""
    defects = [
        draw(st.sampled_from(FIELD_DEFECTS + ROW_DEFECTS))
        for _ in range(draw(st.sampled_from([0] * 5 + [1] * 4 + [2])))
    ]
    if "too_long" in defects and draw(st.integers(0, 3)) < 3:
        defects.remove("too_long")  # over-long rows are big: keep them rare
    quoting = next((d for d in defects if d in QUOTING_DEFECTS), None)
    fields = [
        draw(ID_FORMS).format(draw(EMPLOYEE_IDS)),
        draw(good_name(multiline=quoting != "open_quote")),
        draw(good_datetime()),
        draw(ID_FORMS).format(draw(REFERENCE_IDS)),
        draw(ID_FORMS).format(draw(REFERENCE_IDS)),
    ]
    for defect in defects:
        if defect == "missing":
            fields[draw(st.integers(0, 4))] = draw(st.sampled_from(MISSING))
        elif defect in ("bad_integer", "id_out_of_range"):
            values = BAD_INTEGERS if defect == "bad_integer" else OUT_OF_RANGE
            fields[draw(st.sampled_from([0, 3, 4]))] = draw(st.sampled_from(values))
        elif defect == "bad_datetime":
            fields[2] = draw(st.sampled_from(BAD_DATETIMES))
        elif defect in ("unknown_department", "unknown_job"):
            at = 3 if defect == "unknown_department" else 4
            fields[at] = draw(ID_FORMS).format(draw(st.sampled_from(UNKNOWN_REFERENCES)))
    fields = [f if i == 1 else draw(PADDING) + f + draw(PADDING) for i, f in enumerate(fields)]
    if "too_long" in defects:
        fields[1] = "x" * draw(st.integers(ROW_CAP + 100, ROW_CAP + 5000))
    if "field_count" in defects:
        if draw(st.booleans()):
            del fields[draw(st.integers(0, len(fields) - 1))]
        else:
            fields.insert(draw(st.integers(0, len(fields))), draw(st.sampled_from(["x", "", "1"])))
    encoded = [encode(f, draw(st.integers(0, 5)) == 5) for f in fields]
    if quoting == "junk_after_quote":  # "Ann"x: a closed quote with more after it
        at = draw(st.integers(0, len(encoded) - 1))
        encoded[at] = quoted(fields[at]) + draw(st.sampled_from(["x", " ", "1", "'"]))
    elif quoting == "open_quote":  # "Ann,...: a quote never closed on its line
        at = draw(st.integers(0, len(encoded) - 1))
        encoded[at] = '"' + fields[at].replace('"', "")
        for later in range(at + 1, len(encoded)):  # the rest of the row is inside it
            encoded[later] = encoded[later].replace('"', "")
    data = [e.encode() for e in encoded]
    for defect in defects:
        if defect not in ("not_utf8", "nul"):
            continue
        at = draw(st.integers(0, len(data) - 1))
        insert = draw(NOT_UTF8) if defect == "not_utf8" else b"\x00"
        body = data[at]
        if body.startswith(b'"'):  # first or last in the quoted text, never amid a ""
            pos = draw(st.sampled_from([1, max(1, len(body) - 1)]))
        else:
            pos = draw(st.integers(0, len(body)))
        data[at] = body[:pos] + insert + body[pos:]
    return b",".join(data)


@st.composite
def employee_files(draw: st.DrawFn) -> bytes:
    """A whole hired_employees.csv: rows and blank lines, LF or CRLF, BOM or not,
    a final newline or not."""
    line = st.one_of(row_text(), row_text(), row_text(), BLANK_LINES.map(str.encode))
    groups = draw(st.lists(st.lists(line, min_size=1, max_size=4), max_size=15))
    items = [item for group in groups for item in group]
    out = b"\xef\xbb\xbf" if draw(st.integers(0, 9)) == 9 else b""
    for item in items:
        out += item + draw(LINE_ENDS).encode()
    no_final_newline = draw(st.booleans())
    if items and no_final_newline:
        out = out.removesuffix(b"\n").removesuffix(b"\r")
    head = out[:4096]
    if len(head) >= 4 and head.count(0) * 4 >= min(len(head), 4096):
        # mostly NUL bytes: the loader (rightly) refuses such a file as UTF-16 text
        out = b"100,Padding Row,2021-01-01T00:00:00Z,1,1\n" * 2 + out
    return out


BATCH_SIZES = st.one_of(st.sampled_from([1, 2, 3, 7, 1000]), st.integers(1, 1000))


# ---------------------------------------------------------------------------------------
# The properties
# ---------------------------------------------------------------------------------------


def _reset(url: str) -> None:
    query(
        url,
        "TRUNCATE hired_employees, rejected_rows, load_batches, load_runs RESTART IDENTITY CASCADE",
    )


def _table(url: str) -> dict[int, Stored]:
    rows = query(url, "SELECT id, name, datetime, department_id, job_id FROM hired_employees")
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def _rejected(url: str, load_id: int) -> dict[int, tuple[str, str]]:
    rows = query(
        url,
        "SELECT line_number, raw, array_to_string(reasons, ',') FROM rejected_rows "
        "WHERE load_id = $1",
        (load_id,),
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def _counts(report: hrcore.LoadReport) -> dict[str, int]:
    return {
        "read": report.rows_read,
        "inserted": report.rows_inserted,
        "updated": report.rows_updated,
        "unchanged": report.rows_unchanged,
        "rejected": report.rows_rejected,
    }


# a failing file with an over-long row is printed whole, whatever its size
LARGE_REPR = pytest.mark.filterwarnings("ignore:Generating overly large repr")
SETTINGS = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@LARGE_REPR
@settings(SETTINGS, max_examples=60)  # CI stays under 20 minutes on a slow day
@given(data=employee_files(), batch_size=BATCH_SIZES)
def test_a_load_reconciles_and_the_table_is_the_rules_answer(
    refs: str, tmp_path: Path, data: bytes, batch_size: int
) -> None:
    _reset(refs)
    expected = oracle(data)
    note(f"expected rows: {[(r.line, r.reasons) for r in expected.rows]}")

    report = hrcore.load(
        write(tmp_path, "hired_employees.csv", data), database_url=refs, batch_size=batch_size
    )

    counts = _counts(report)
    assert report.status == "succeeded", report.error
    assert counts["read"] == (
        counts["inserted"] + counts["updated"] + counts["unchanged"] + counts["rejected"]
    )
    assert counts == {
        "read": len(expected.rows),
        "inserted": len(expected.table),
        "updated": 0,
        "unchanged": 0,
        "rejected": len(expected.rejected),
    }
    assert _rejected(refs, report.load_id) == expected.rejected
    assert report.rejections == dict(
        Counter(reason for row in expected.rows for reason in row.reasons)
    )
    assert _table(refs) == expected.table


@LARGE_REPR
@settings(SETTINGS, max_examples=15)
@given(data=employee_files(), batch_size=BATCH_SIZES)
def test_loading_the_same_file_again_changes_nothing(
    refs: str, tmp_path: Path, data: bytes, batch_size: int
) -> None:
    _reset(refs)
    path = write(tmp_path, "hired_employees.csv", data)
    first = hrcore.load(path, database_url=refs, batch_size=batch_size)
    table = _table(refs)

    again = hrcore.load(path, database_url=refs, batch_size=batch_size, verify=True)
    skipped = hrcore.load(path, database_url=refs, batch_size=batch_size)

    assert (first.status, again.status, skipped.status) == ("succeeded", "succeeded", "skipped")
    assert _counts(skipped) == _counts(again)
    assert first.rows_read == first.rows_inserted + first.rows_rejected
    assert _counts(again) == {
        "read": first.rows_read,
        "inserted": 0,
        "updated": 0,
        "unchanged": first.rows_inserted,
        "rejected": first.rows_rejected,
    }
    assert _rejected(refs, again.load_id) == _rejected(refs, first.load_id)
    assert _table(refs) == table
