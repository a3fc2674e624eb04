"""Challenge-shaped sample data: the three CSV files, any size, reproducible.

At the default dirt about 3.5% of employee rows have one empty field, like the
historic file; ``all_kinds=True`` mixes in every other kind of bad row as well.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from hrcore._errors import UsageError

DEPARTMENTS = (
    "Product Management", "Sales", "Research and Development", "Business Development",
    "Engineering", "Human Resources", "Services", "Support", "Marketing", "Training",
    "Legal", "Accounting",
)  # fmt: skip
_LEVELS = ("", "Senior ", "Junior ", "Assistant ", "VP ", "Head of ", "Lead ", "Chief ")
_ROLES = (
    "Accountant", "Analyst", "Architect", "Auditor", "Buyer", "Chemist", "Coordinator",
    "Designer", "Developer", "Editor", "Engineer", "Geologist", "Librarian", "Manager",
    "Nurse", "Operator", "Paralegal", "Pharmacist", "Programmer", "Recruiter",
    "Statistician", "Teacher", "Technician",
)  # fmt: skip
JOBS = tuple(f"{level}{role}".strip() for role in _ROLES for level in _LEVELS)[:183]
_FIRST = ("Harold", "Ty", "Lyman", "Lola", "Marlene", "Olympia", "Ana", "Jeanie", "Jo", "Chris",
          "D'Arcy", "Zoe", "Wm", "Li", "Ngozi", "Ines", "Raúl", "Søren")  # fmt: skip
_LAST = ("Cogdill", "Hallum", "Stroupe", "O'Brien", "Jones", "Smith, Jr.", "García", "Nguyen",
         "Müller", "Kowalski", "D'Angelo", "Okafor", "Tanaka", "Silva")  # fmt: skip

# placeholders swapped for raw bytes when written: bytes that are not UTF-8, an extra field
_RAW_BYTES = {"\x00BADUTF8\x00": b"\xff\xfe", "\x00EXTRA\x00": b",extra"}
_YEAR_SECONDS = 365 * 24 * 3600
_EPOCH_2020 = 1_577_836_800  # 2020-01-01T00:00:00Z
_CHUNK = 1_000_000


def _write_rows(path: Path, frame: pl.DataFrame, *, append: bool = False) -> None:
    text = frame.write_csv(include_header=False, quote_style="necessary")
    with path.open("ab" if append else "wb") as f:
        data = text.encode()
        for placeholder, raw in _RAW_BYTES.items():
            data = data.replace(placeholder.encode(), raw)
        f.write(data)


def _employees(
    start: int, n: int, rng: np.random.Generator, dirty: float, all_kinds: bool
) -> pl.DataFrame:
    ids = np.arange(start, start + n)
    seconds = _EPOCH_2020 + rng.integers(0, 3 * _YEAR_SECONDS, n)  # 2020 to 2022
    frame = pl.DataFrame(
        {
            "id": ids.astype(str),
            "name": [
                f"{_FIRST[a]} {_LAST[b]}"
                for a, b in rng.integers(0, [len(_FIRST), len(_LAST)], (n, 2))
            ],
            "datetime": pl.Series(seconds * 1_000_000)
            .cast(pl.Datetime("us", "UTC"))
            .dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "department_id": rng.integers(1, len(DEPARTMENTS) + 1, n).astype(str),
            "job_id": rng.integers(1, len(JOBS) + 1, n).astype(str),
        }
    )
    bad = np.flatnonzero(rng.random(n) < dirty)
    if bad.size == 0:
        return frame
    columns = {c: frame[c].to_list() for c in frame.columns}
    kinds = ["empty"] if not all_kinds else [
        "empty", "bad_integer", "id_out_of_range", "bad_datetime", "unknown_department",
        "unknown_job", "field_count", "duplicate_id", "encoding", "padded",
    ]  # fmt: skip
    for i, kind in zip(bad, rng.choice(kinds, bad.size), strict=True):
        if kind == "empty":
            columns[str(rng.choice(frame.columns))][i] = None  # written as an empty field
        elif kind == "bad_integer":
            columns["job_id"][i] = "seven"
        elif kind == "id_out_of_range":
            columns["id"][i] = "-" + columns["id"][i]
        elif kind == "bad_datetime":
            columns["datetime"][i] = "2021-02-30T10:00:00Z"
        elif kind == "unknown_department":
            columns["department_id"][i] = str(len(DEPARTMENTS) + 100)
        elif kind == "unknown_job":
            columns["job_id"][i] = str(len(JOBS) + 100)
        elif kind == "field_count":
            columns["job_id"][i] += "\x00EXTRA\x00"
        elif kind == "duplicate_id":
            columns["id"][i] = str(max(start, int(columns["id"][i]) - 1))
        elif kind == "encoding":
            columns["name"][i] += "\x00BADUTF8\x00"
        else:  # padded values are valid: trimmed on load
            columns["name"][i] = f"  {columns['name'][i]}  "
    return pl.DataFrame(columns)


def write_sample(
    out: str | os.PathLike[str],
    *,
    rows: int = 2000,
    seed: int = 0,
    dirty: float = 0.035,
    all_kinds: bool = False,
) -> dict[str, Path]:
    """Write departments.csv, jobs.csv and hired_employees.csv (``rows`` employees) to ``out``."""
    if rows < 0:
        raise UsageError(f"rows must be >= 0, not {rows}")
    if not 0.0 <= dirty <= 1.0:
        raise UsageError(f"dirty must be a fraction from 0 to 1, not {dirty}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "departments": folder / "departments.csv",
        "jobs": folder / "jobs.csv",
        "hired_employees": folder / "hired_employees.csv",
    }
    for name, values in (("departments", DEPARTMENTS), ("jobs", JOBS)):
        ids = [str(i) for i in range(1, len(values) + 1)]
        _write_rows(paths[name], pl.DataFrame({"id": ids, "name": list(values)}))
    rng = np.random.default_rng(seed)
    paths["hired_employees"].write_bytes(b"")
    for start in range(1, rows + 1, _CHUNK):
        n = min(_CHUNK, rows + 1 - start)
        _write_rows(
            paths["hired_employees"], _employees(start, n, rng, dirty, all_kinds), append=True
        )
    return paths
