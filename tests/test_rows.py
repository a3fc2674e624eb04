"""Loading a request's rows (``load_rows``): copied straight in when their ids are new,
upserted otherwise, with the same answer, ledger and summary either way."""

from __future__ import annotations

from typing import Any

import hrcore
import msgspec
from hrcore._db import connect, execute

from tests.conftest import InThread, query, summary_is_exact, wait_until, waiting_on_a_lock
from tests.test_api import employee


def outcomes(report: hrcore.RowsReport) -> list[str]:
    return [r.outcome for r in report.rows]


def ledger(url: str, load_id: int) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT status, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_rejected "
        "FROM load_runs WHERE id = $1",
        (load_id,),
    )


def stored(url: str, ids: list[int]) -> list[tuple[Any, ...]]:
    return query(url, "SELECT id, name FROM hired_employees WHERE id = ANY($1) ORDER BY id", (ids,))


def test_new_ids_with_a_bad_row_land_with_the_bad_row_logged(refs: str) -> None:
    hrcore.load_rows("hired_employees", [employee(i) for i in (1, 2, 100)], database_url=refs)
    rows = [employee(20), employee(21, job_id=9), employee(22)]  # 20-22: nothing stored there

    report = hrcore.load_rows("hired_employees", rows, database_url=refs)

    assert outcomes(report) == ["inserted", "rejected", "inserted"]
    assert [(r.index, r.reasons) for r in report.rejected] == [(1, ["unknown_job"])]
    assert ledger(refs, report.load_id) == [("succeeded", 3, 2, 0, 0, 1)]
    logged = "SELECT line_number, reasons FROM rejected_rows WHERE load_id = $1"
    assert query(refs, logged, (report.load_id,)) == [(2, ["unknown_job"])]
    assert stored(refs, [20, 21, 22]) == [(20, "N20"), (22, "N22")]
    assert summary_is_exact(refs)


def test_new_ids_among_stored_ones_are_upserted_with_the_stored_ones(refs: str) -> None:
    hrcore.load_rows("hired_employees", [employee(i) for i in (1, 2, 100)], database_url=refs)
    rows = [employee(50), employee(100, name="New100"), employee(150), employee(2)]

    report = hrcore.load_rows("hired_employees", rows, database_url=refs)

    assert outcomes(report) == ["inserted", "updated", "inserted", "unchanged"]
    assert ledger(refs, report.load_id) == [("succeeded", 4, 2, 1, 1, 0)]
    assert stored(refs, [50, 100, 150]) == [(50, "N50"), (100, "New100"), (150, "N150")]
    assert summary_is_exact(refs)


def test_an_id_repeated_in_new_ids_keeps_its_last_row(refs: str) -> None:
    rows = [employee(30, name="first"), employee(31), employee(30)]

    report = hrcore.load_rows("hired_employees", rows, database_url=refs)

    assert outcomes(report) == ["rejected", "inserted", "inserted"]
    assert [(r.index, r.reasons) for r in report.rejected] == [(0, ["duplicate_id"])]
    assert query(refs, f"SELECT raw FROM rejected_rows WHERE load_id = {report.load_id}") == [
        (msgspec.json.encode(rows[0]).decode(),)
    ]
    assert stored(refs, [30, 31]) == [(30, "N30"), (31, "N31")]
    assert ledger(refs, report.load_id) == [("succeeded", 3, 2, 0, 0, 1)]


def test_a_new_id_someone_writes_meanwhile_is_upserted_instead(refs: str) -> None:
    hrcore.load_rows("hired_employees", [employee(1)], database_url=refs)
    # 40-44 are free when the request looks, but a psql user is writing 42 meanwhile
    with connect(refs, autocommit=False) as other:
        execute(other, "INSERT INTO hired_employees VALUES (42, 'other', now(), 3, 3)")
        rows = [employee(i) for i in range(40, 45)]
        adding = InThread(lambda: hrcore.load_rows("hired_employees", rows, database_url=refs))
        wait_until(lambda: waiting_on_a_lock(refs, "COPY "), "the request's COPY waits for id 42")
        other.commit()
    report = adding.result()

    assert outcomes(report) == ["inserted", "inserted", "updated", "inserted", "inserted"]
    assert ledger(refs, report.load_id) == [("succeeded", 5, 4, 1, 0, 0)]
    assert query(refs, "SELECT name, job_id FROM hired_employees WHERE id = 42") == [("N42", 2)]
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(6,)]
    assert summary_is_exact(refs)
