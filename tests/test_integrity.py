"""Referential integrity as the database keeps it for every writer (hrcore, the API, a
restore, someone with psql), including two writers racing on real connections."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hrcore
import pytest
from hrcore._db import Connection, connect, execute

from tests.conftest import InThread, query, wait_until, waiting_on_a_lock, write

EMPLOYEE = "INSERT INTO hired_employees VALUES ({id}, 'x', '2021-05-05T00:00:00Z', {dept}, {job})"


@pytest.fixture
def company(db: str, tmp_path: Path) -> str:
    write(tmp_path, "departments.csv", "1,Sales\n2,Legal\n5,Spare\n")
    write(tmp_path, "jobs.csv", "1,Analyst\n2,Clerk\n7,Spare\n")
    write(
        tmp_path,
        "hired_employees.csv",
        "1,A,2021-01-01T00:00:00Z,1,1\n2,B,2021-04-01T00:00:00Z,2,2\n",
    )
    hrcore.load_all(tmp_path, database_url=db)
    return db


def refused(url: str, sql: str) -> hrcore.DatabaseError:
    with pytest.raises(hrcore.DatabaseError) as error:
        query(url, sql)
    return error.value


def orphans(url: str) -> list[tuple[int, ...]]:
    return query(
        url,
        """SELECT e.id FROM hired_employees e
           WHERE NOT EXISTS (SELECT FROM departments d WHERE d.id = e.department_id)
              OR NOT EXISTS (SELECT FROM jobs j WHERE j.id = e.job_id) ORDER BY e.id""",
    )


@pytest.mark.parametrize(
    "sql",
    [
        EMPLOYEE.format(id=9, dept=99, job=1),
        EMPLOYEE.format(id=9, dept=1, job=99),
        "INSERT INTO hired_employees SELECT g, 'x', now(), CASE WHEN g = 15 THEN 42 ELSE 1 END, 1 "
        "FROM generate_series(10, 20) AS g",
        "UPDATE hired_employees SET department_id = 99 WHERE id = 1",
        "UPDATE hired_employees SET job_id = job_id + 100",
    ],
)
def test_an_employee_whose_department_or_job_does_not_exist_is_refused_with_nothing_written(
    company: str, sql: str
) -> None:
    before = query(company, "SELECT * FROM hired_employees ORDER BY id")
    error = refused(company, sql)

    assert error.sqlstate == "23503"
    assert query(company, "SELECT * FROM hired_employees ORDER BY id") == before


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM departments WHERE id = 1",
        "DELETE FROM jobs",
        "UPDATE departments SET id = 10 WHERE id = 2",
        "UPDATE jobs SET id = id + 100",
        "TRUNCATE departments",
        "TRUNCATE jobs",
    ],
)
def test_a_department_or_job_still_referenced_cannot_be_removed_or_rekeyed(
    company: str, sql: str
) -> None:
    before = (
        query(company, "SELECT * FROM departments ORDER BY id"),
        query(company, "SELECT * FROM jobs ORDER BY id"),
    )
    error = refused(company, sql)

    assert error.sqlstate in ("23503", "0A000")  # 0A000: truncating a referenced table
    assert (
        query(company, "SELECT * FROM departments ORDER BY id"),
        query(company, "SELECT * FROM jobs ORDER BY id"),
    ) == before


def test_what_no_employee_needs_can_be_removed_renamed_or_rekeyed(company: str) -> None:
    query(company, "DELETE FROM departments WHERE id = 5")
    query(company, "UPDATE jobs SET id = 8 WHERE id = 7")
    query(company, "UPDATE departments SET department = 'Selling' WHERE id = 1")
    query(company, "UPDATE hired_employees SET department_id = 2 WHERE id = 1")
    query(company, "DELETE FROM departments WHERE id = 1")

    assert query(company, "SELECT id FROM departments ORDER BY id") == [(2,)]
    assert orphans(company) == []


@contextmanager
def transaction(url: str) -> Iterator[Connection]:
    with connect(url, autocommit=False) as conn:
        yield conn


@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_an_employee_insert_first_then_a_delete_of_its_department_never_leaves_an_orphan(
    company: str, ending: str
) -> None:
    with transaction(company) as inserting:
        execute(inserting, EMPLOYEE.format(id=50, dept=5, job=1))
        deleting = InThread(lambda: query(company, "DELETE FROM departments WHERE id = 5"))
        wait_until(
            lambda: waiting_on_a_lock(company, "DELETE FROM departments"), "the delete waits"
        )
        inserting.commit() if ending == "commit" else inserting.rollback()
    outcome = deleting.outcome()

    if ending == "commit":
        assert isinstance(outcome, hrcore.DatabaseError)
        assert outcome.sqlstate == "23503"
        assert query(company, "SELECT id FROM departments WHERE id = 5") == [(5,)]
        assert query(company, "SELECT department_id FROM hired_employees WHERE id = 50") == [(5,)]
    else:
        assert outcome == []
        assert query(company, "SELECT id FROM departments WHERE id = 5") == []
    assert orphans(company) == []


@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_a_delete_of_a_department_first_then_an_employee_insert_never_leaves_an_orphan(
    company: str, ending: str
) -> None:
    with transaction(company) as deleting:
        execute(deleting, "DELETE FROM departments WHERE id = 5")
        inserting = InThread(lambda: query(company, EMPLOYEE.format(id=50, dept=5, job=1)))
        wait_until(lambda: waiting_on_a_lock(company, "INSERT INTO hired_employees"), "it waits")
        deleting.commit() if ending == "commit" else deleting.rollback()
    outcome = inserting.outcome()

    if ending == "commit":
        assert isinstance(outcome, hrcore.DatabaseError)
        assert outcome.sqlstate == "23503"
        assert query(company, "SELECT count(*) FROM hired_employees WHERE id = 50") == [(0,)]
    else:
        assert outcome == []
        assert query(company, "SELECT department_id FROM hired_employees WHERE id = 50") == [(5,)]
    assert orphans(company) == []


def test_many_racing_inserts_and_deletes_never_leave_an_orphan(company: str) -> None:
    query(company, "INSERT INTO departments SELECT g, 'D' || g FROM generate_series(100, 139) g")
    start = threading.Barrier(2)

    def each(statement: str) -> list[str | None]:
        """Run the statement for departments 100..139; the SQLSTATE of each refusal."""
        start.wait(10)
        states = []
        for i in range(100, 140):
            try:
                query(company, statement.format(id=1000 + i, dept=i, job=1))
            except hrcore.DatabaseError as exc:
                states.append(exc.sqlstate)
        return states

    racers = [
        InThread(lambda: each(EMPLOYEE)),
        InThread(lambda: each("DELETE FROM departments WHERE id = {dept}")),
    ]
    for racer in racers:
        assert set(racer.outcome()) <= {"23503"}  # type: ignore[arg-type]
    assert orphans(company) == []
