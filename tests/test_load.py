"""Loading files: reconciliation, batching, idempotence, updates, failures and recovery."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path

import hrcore
import pytest
from hrcore._db import connect, execute

from tests.conftest import InThread, query, summary_is_exact, upload, wait_until, write


def employees(ids: range, name: str = "N") -> str:
    return "".join(f"{i},{name}{i},2021-03-01T10:00:00Z,{i % 3 + 1},{i % 3 + 1}\n" for i in ids)


WRITERS = (
    "FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name LIKE 'hrcore writer of load %'"
)


def writer_sessions(url: str) -> int:
    """The sessions of load writers now open (they name themselves in pg_stat_activity)."""
    return int(query(url, f"SELECT count(*) {WRITERS}")[0][0])


def writers_waiting_on_a_lock(url: str) -> int:
    return int(query(url, f"SELECT count(*) {WRITERS} AND wait_event_type = 'Lock'")[0][0])


def employees_of(ids: list[int], name: str) -> list[str]:
    return [f"{i},{name}{i},2021-03-01T10:00:00Z,{i % 3 + 1},{i % 3 + 1}\n" for i in ids]


def load_employees(
    db: str,
    folder: Path,
    content: str,
    batch_size: int = 1000,
    progress: Callable[[hrcore.Progress], None] | None = None,
) -> hrcore.LoadReport:
    path = write(folder, "hired_employees.csv", content)
    return hrcore.load(path, database_url=db, batch_size=batch_size, progress=progress)


def reconciles(report: hrcore.LoadReport) -> bool:
    return report.rows_read == (
        report.rows_inserted + report.rows_updated + report.rows_unchanged + report.rows_rejected
    )


@pytest.mark.parametrize("rows", [1, 999, 1000, 1001, 2500])
@pytest.mark.parametrize("batch_size", [1, 1000])
def test_every_row_lands_in_batches_of_at_most_batch_size(
    refs: str, tmp_path: Path, rows: int, batch_size: int
) -> None:
    report = load_employees(refs, tmp_path, employees(range(1, rows + 1)), batch_size=batch_size)

    assert report.status == "succeeded"
    assert (report.rows_read, report.rows_inserted, report.batches) == (
        rows,
        rows,
        -(-rows // batch_size),
    )
    assert query(refs, "SELECT count(*), min(id), max(id) FROM hired_employees") == [
        (rows, 1, rows)
    ]
    sizes = query(
        refs,
        "SELECT max(rows_read), sum(rows_read) FROM load_batches WHERE load_id = $1",
        (report.load_id,),
    )
    assert sizes == [(min(rows, batch_size), rows)]


@pytest.mark.parametrize("batch_size", [0, 1001, -1])
def test_a_batch_size_outside_1_to_1000_is_refused_before_anything_is_written(
    refs: str, tmp_path: Path, batch_size: int
) -> None:
    with pytest.raises(hrcore.UsageError, match="between 1 and 1000"):
        load_employees(refs, tmp_path, employees(range(1, 5)), batch_size=batch_size)
    assert query(refs, "SELECT count(*) FROM load_runs WHERE table_name = 'hired_employees'") == [
        (0,)
    ]


def test_the_report_and_the_ledger_reconcile(refs: str, tmp_path: Path) -> None:
    content = (
        employees(range(1, 8))
        + "8,,2021-03-01T10:00:00Z,1,1\n9,X,bad,1,1\n3,Again,2021-03-01T10:00:00Z,1,1\n"
    )
    report = load_employees(refs, tmp_path, content, batch_size=4)

    assert reconciles(report)
    assert (report.rows_read, report.rows_inserted, report.rows_rejected) == (10, 7, 3)
    assert report.rejections == {"missing_field": 1, "bad_datetime": 1, "duplicate_id": 1}
    ledger = query(
        refs,
        "SELECT status, rows_read, rows_inserted, rows_updated, rows_unchanged, "
        "rows_rejected, batches, "
        "object_identity IS NOT NULL, finished_at >= started_at FROM load_runs WHERE id = $1",
        (report.load_id,),
    )
    assert ledger == [("succeeded", 10, 7, 0, 0, 3, 3, True, True)]


def test_a_file_load_says_how_many_rows_it_expects_from_its_first_pass(
    refs: str, tmp_path: Path
) -> None:
    # the first pass counts the lines that start with an id: the progress bar's total
    content = employees(range(1, 6)) + "x,Y,2021-03-01T10:00:00Z,1,1\n"
    report = load_employees(refs, tmp_path, content, batch_size=2)
    assert (report.rows_expected, report.rows_read) == (5, 6)
    assert hrcore.get_load(report.load_id, database_url=refs).rows_expected == 5


def test_reloading_the_same_file_changes_nothing(refs: str, tmp_path: Path) -> None:
    content = employees(range(1, 1201)) + "9999,,x,1,1\n"
    first = load_employees(refs, tmp_path, content)
    before = query(refs, "SELECT * FROM hired_employees ORDER BY id")
    again = load_employees(refs, tmp_path, content)

    assert (first.rows_inserted, first.rows_rejected) == (1200, 1)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged, again.rows_rejected) == (
        0,
        0,
        1200,
        1,
    )
    assert query(refs, "SELECT * FROM hired_employees ORDER BY id") == before


def test_changed_rows_update_the_stored_ones(refs: str, tmp_path: Path) -> None:
    load_employees(refs, tmp_path, employees(range(1, 11)))
    changed = (
        employees(range(1, 4), name="Renamed") + employees(range(4, 11)) + employees(range(11, 13))
    )
    report = load_employees(refs, tmp_path, changed)

    assert (report.rows_inserted, report.rows_updated, report.rows_unchanged) == (2, 3, 7)
    assert query(refs, "SELECT name FROM hired_employees WHERE id IN (1, 4, 12) ORDER BY id") == [
        ("Renamed1",),
        ("N4",),
        ("N12",),
    ]


def test_an_empty_file_is_a_load_of_zero_rows(refs: str, tmp_path: Path) -> None:
    report = load_employees(refs, tmp_path, "")
    assert (report.status, report.rows_read, report.batches) == ("succeeded", 0, 0)


def test_a_missing_file_is_a_clear_error_and_starts_no_load(refs: str, tmp_path: Path) -> None:
    with pytest.raises(hrcore.SourceNotFoundError, match="no such file or folder"):
        hrcore.load(tmp_path / "nope.csv", table="jobs", database_url=refs)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(hrcore.SourceNotFoundError, match=r"empty/jobs\.csv"):
        hrcore.load(empty, table="jobs", database_url=refs)
    assert query(refs, "SELECT count(*) FROM load_runs WHERE table_name = 'jobs'") == [
        (1,)
    ]  # refs' own


def test_a_file_whose_name_says_no_table_needs_one(refs: str, tmp_path: Path) -> None:
    path = write(tmp_path, "people.csv", employees(range(1, 3)))
    with pytest.raises(hrcore.UsageError, match="table="):
        hrcore.load(path, database_url=refs)
    assert hrcore.load(path, table="employees", database_url=refs).rows_inserted == 2


def test_load_all_loads_referenced_tables_first(db: str, tmp_path: Path) -> None:
    write(tmp_path, "hired_employees.csv", employees(range(1, 4)))
    write(tmp_path, "jobs.csv", "1,A\n2,B\n3,C\n")
    write(tmp_path, "departments.csv", "1,A\n2,B\n3,C\n")
    reports = hrcore.load_all(tmp_path, database_url=db)

    assert [(r.table, r.rows_inserted, r.rows_rejected) for r in reports] == [
        ("departments", 3, 0),
        ("jobs", 3, 0),
        ("hired_employees", 3, 0),
    ]


def test_a_load_interrupted_between_batches_is_marked_failed_and_a_rerun_converges(
    refs: str, tmp_path: Path
) -> None:
    content = employees(range(1, 2501))
    killed = threading.Event()

    def kill_loader_sessions(progress: hrcore.Progress) -> None:
        if progress.phase == "write" and not killed.is_set():
            killed.set()
            with connect(refs) as conn:
                execute(
                    conn,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )

    with pytest.raises(hrcore.LoadFailedError) as failure:
        load_employees(refs, tmp_path, content, batch_size=100, progress=kill_loader_sessions)

    partial = failure.value.report
    assert partial.status == "failed"
    assert partial.error
    committed = query(
        refs, "SELECT batch FROM load_batches WHERE load_id = $1 ORDER BY batch", (partial.load_id,)
    )
    expected_ids = sorted(i for (b,) in committed for i in range(b * 100 + 1, b * 100 + 101))
    assert 0 < len(committed) < 25
    assert [i for (i,) in query(refs, "SELECT id FROM hired_employees ORDER BY id")] == expected_ids
    assert query(
        refs, "SELECT status, rows_inserted FROM load_runs WHERE id = $1", (partial.load_id,)
    ) == [("failed", len(expected_ids))]
    assert reconciles(partial)
    assert partial.rows_read == len(expected_ids)

    rerun = load_employees(refs, tmp_path, content, batch_size=100)
    assert (rerun.status, rerun.rows_inserted, rerun.rows_unchanged) == (
        "succeeded",
        2500 - len(expected_ids),
        len(expected_ids),
    )
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(2500,)]
    assert query(refs, "SELECT count(*) FROM pg_tables WHERE schemaname = 'hrcore_staging'") == [
        (0,)
    ]


def test_a_running_load_whose_session_is_gone_is_marked_failed_by_the_next_load(
    refs: str, tmp_path: Path
) -> None:
    with connect(refs) as gone:
        execute(
            gone,
            "INSERT INTO load_runs (table_name, source, batch_size, owner_pid) "
            "VALUES ('jobs', 'x', 10, pg_backend_pid())",
        )
    load_employees(refs, tmp_path, employees(range(1, 3)))

    assert query(refs, "SELECT status, error IS NOT NULL FROM load_runs WHERE source = 'x'") == [
        ("failed", True)
    ]


def test_loading_from_s3_equals_loading_from_a_folder(
    refs: str, tmp_path: Path, s3_endpoint: str, bucket: str
) -> None:
    content = employees(range(1, 1501)) + "7,,x,1,1\n"
    path = write(tmp_path, "hired_employees.csv", content)
    from_folder = hrcore.load(tmp_path, table="hired_employees", database_url=refs)
    folder_rows = query(refs, "SELECT * FROM hired_employees ORDER BY id")
    query(refs, "TRUNCATE hired_employees")
    upload(s3_endpoint, bucket, "exports/hired_employees.csv", path)

    from_s3 = hrcore.load(f"s3://{bucket}/exports/", table="hired_employees", database_url=refs)

    assert from_s3.source == f"s3://{bucket}/exports/hired_employees.csv"
    assert (from_s3.rows_inserted, from_s3.rows_rejected) == (
        from_folder.rows_inserted,
        from_folder.rows_rejected,
    )
    assert query(refs, "SELECT * FROM hired_employees ORDER BY id") == folder_rows
    assert query(refs, "SELECT object_identity FROM load_runs WHERE id = $1", (from_s3.load_id,))[
        0
    ][0].startswith("etag=")


def test_a_missing_bucket_or_key_is_a_clear_error(refs: str, s3_endpoint: str, bucket: str) -> None:
    with pytest.raises(hrcore.SourceNotFoundError, match="no-such-bucket"):
        hrcore.load("s3://no-such-bucket/", table="jobs", database_url=refs)
    with pytest.raises(hrcore.SourceNotFoundError, match=f"s3://{bucket}/missing/jobs.csv"):
        hrcore.load(f"s3://{bucket}/missing/", table="jobs", database_url=refs)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:s3cret@127.0.0.1:1/none",
        "postgresql://bob:Sup3r@S3cret@127.0.0.1:1/none",  # an unencoded @ in the password
        "postgresql://bob:my secret pass@127.0.0.1:1/none",
        "postgresql://bob:S3cret/x?y@127.0.0.1:1/none",
    ],
)
def test_an_unreachable_database_is_a_clear_error_without_the_password(
    tmp_path: Path, url: str
) -> None:
    path = write(tmp_path, "jobs.csv", "1,A\n")
    with pytest.raises(hrcore.DatabaseError) as error:
        hrcore.load(path, database_url=url)
    message = str(error.value)
    assert "cannot connect" in message
    assert "127.0.0.1" in message
    for secret in ("s3cret", "S3cret", "Sup3r", "secret pass"):
        assert secret not in message


def test_a_running_load_reports_the_batches_committed_so_far(refs: str, tmp_path: Path) -> None:
    seen: list[hrcore.LoadReport] = []

    def look_at_the_ledger(progress: hrcore.Progress) -> None:
        if progress.phase == "write" and not seen:
            seen.append(hrcore.list_loads(limit=1, database_url=refs)[0])

    final = load_employees(
        refs, tmp_path, employees(range(1, 501)), batch_size=50, progress=look_at_the_ledger
    )

    [running] = seen
    assert running.status == "running"
    assert 0 < running.batches < 10
    assert running.rows_inserted == running.rows_read == running.batches * 50
    assert (final.status, final.batches, final.rows_inserted) == ("succeeded", 10, 500)


def test_a_file_source_loads_only_the_table_it_is_for(db: str, tmp_path: Path) -> None:
    departments = write(tmp_path, "departments.csv", "1,Sales\n2,Legal\n")
    write(tmp_path, "jobs.csv", "1,Analyst\n")
    other = write(tmp_path, "people.csv", "1,Ann\n")

    reports = hrcore.load_all(departments, database_url=db)

    assert [(r.table, r.rows_inserted) for r in reports] == [("departments", 2)]
    assert query(db, "SELECT count(*) FROM jobs") == [(0,)]
    assert query(db, "SELECT count(*) FROM hired_employees") == [(0,)]
    with pytest.raises(hrcore.UsageError, match="the file of departments, not of jobs"):
        hrcore.load(departments, table="jobs", database_url=db)
    with pytest.raises(hrcore.UsageError, match="fits no table"):
        hrcore.load_all(other, database_url=db)
    with pytest.raises(hrcore.UsageError, match="not of jobs"):
        hrcore.load_all(departments, tables=["jobs"], database_url=db)
    assert query(db, "SELECT id, department FROM departments ORDER BY id") == [
        (1, "Sales"),
        (2, "Legal"),
    ]
    assert query(db, "SELECT count(*) FROM load_runs") == [(1,)]


class Paused:
    """A progress callback that holds a load at its first committed batch until released."""

    def __init__(self) -> None:
        self.paused, self.release = threading.Event(), threading.Event()

    def __call__(self, progress: hrcore.Progress) -> None:
        if progress.phase == "write" and not self.paused.is_set():
            self.paused.set()
            assert self.release.wait(60), "never released"


def waiting_on_an_advisory_lock(db: str) -> bool:
    return bool(
        query(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
        )[0][0]
    )


def test_two_loaders_of_the_same_file_take_turns(refs: str, tmp_path: Path) -> None:
    path = write(tmp_path, "hired_employees.csv", employees(range(1, 3001)))
    first = Paused()

    def load(progress: Paused | None) -> hrcore.LoadReport:
        return hrcore.load(path, database_url=refs, batch_size=50, writers=1, progress=progress)

    loads = [InThread(lambda: load(first))]
    assert first.paused.wait(60)
    loads.append(InThread(lambda: load(None)))
    wait_until(lambda: waiting_on_an_advisory_lock(refs), "the second load waits its turn")
    first.release.set()
    reports = [t.result() for t in loads]

    assert [(r.status, r.rows_inserted, r.rows_unchanged) for r in reports] == [
        ("succeeded", 3000, 0),
        ("skipped", 0, 3000),  # it found the table as the first left it
    ]
    assert query(
        refs,
        "SELECT (SELECT finished_at FROM load_runs WHERE id = $1) "
        "<= (SELECT started_at FROM load_runs WHERE id = $2)",
        (reports[0].load_id, reports[1].load_id),
    ) == [(True,)]


def test_a_load_of_a_busy_file_waits_a_bounded_time_and_names_the_load_holding_it(
    refs: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "hired_employees.csv", employees(range(1, 3001)))
    first = Paused()
    holder = threading.Thread(
        target=hrcore.load,
        args=(path,),
        kwargs={"database_url": refs, "batch_size": 50, "writers": 1, "progress": first},
    )
    holder.start()
    try:
        assert first.paused.wait(60)
        [running] = hrcore.list_loads(limit=1, database_url=refs)
        with pytest.raises(hrcore.BusyError, match=f"by load {running.load_id}") as busy:
            hrcore.load(path, database_url=refs, lock_timeout=0.5)
        assert busy.value.holder == running.load_id
    finally:
        first.release.set()
        holder.join(60)
    assert query(refs, "SELECT status, count(*) FROM load_runs GROUP BY 1 ORDER BY 1") == [
        ("succeeded", 3)  # the references' two and the holder: the refused one left no entry
    ]


def test_a_cancelled_load_stops_at_a_batch_boundary_and_a_rerun_converges(
    refs: str, tmp_path: Path
) -> None:
    cancel = threading.Event()

    def cancel_after_three_batches(progress: hrcore.Progress) -> None:
        if progress.phase == "write" and progress.done >= 300:
            cancel.set()

    content = employees(range(1, 2501))
    with pytest.raises(hrcore.LoadCancelledError) as stopped:
        hrcore.load(
            write(tmp_path, "hired_employees.csv", content),
            database_url=refs,
            batch_size=100,
            writers=1,
            progress=cancel_after_three_batches,
            cancel=cancel,
        )

    report = stopped.value.report
    assert (report.status, report.batches, report.rows_inserted) == ("cancelled", 3, 300)
    assert "cancelled" in (report.error or "")
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(300,)]
    assert query(refs, "SELECT status, rows_inserted FROM load_runs WHERE id = $1",
                 (report.load_id,)) == [("cancelled", 300)]  # fmt: skip
    rerun = load_employees(refs, tmp_path, content)
    assert (rerun.rows_inserted, rerun.rows_unchanged) == (2200, 300)
    assert query(refs, "SELECT status FROM load_runs WHERE id = $1", (report.load_id,)) == [
        ("cancelled",)
    ]


@pytest.mark.parametrize("phase", ["read", "write"])
def test_a_progress_callback_that_raises_fails_the_load_at_once(
    refs: str, tmp_path: Path, phase: str
) -> None:
    def boom(progress: hrcore.Progress) -> None:
        if progress.phase == phase:
            raise RuntimeError("the callback broke")

    content = employees(range(1, 200_001))
    path = write(tmp_path, "hired_employees.csv", content)
    failure = InThread(lambda: hrcore.load(path, database_url=refs, progress=boom)).outcome()

    assert isinstance(failure, hrcore.LoadFailedError)
    assert "the callback broke" in str(failure)
    assert failure.report.status == "failed"
    assert query(refs, "SELECT count(*) FROM pg_tables WHERE schemaname = 'hrcore_staging'") == [
        (0,)
    ]
    rerun = hrcore.load(path, database_url=refs)
    assert rerun.rows_inserted + rerun.rows_unchanged == 200_000


def test_a_reload_of_the_same_content_is_skipped_unless_verified(refs: str, tmp_path: Path) -> None:
    path = write(tmp_path, "hired_employees.csv", employees(range(1, 2001)) + "9,,x,1,1\n")
    first = hrcore.load(path, database_url=refs)
    before = query(refs, "SELECT * FROM hired_employees ORDER BY id")

    again = hrcore.load(path, database_url=refs)

    assert (again.status, again.same_as, again.batches) == ("skipped", first.load_id, 0)
    assert (again.rows_read, again.rows_unchanged, again.rows_rejected) == (2001, 2000, 1)
    assert again.rejections == first.rejections == {"missing_field": 1, "bad_datetime": 1}
    assert reconciles(again)
    stored = hrcore.get_load(again.load_id, database_url=refs)
    assert (stored.status, stored.same_as, stored.rows_unchanged) == (
        "skipped",
        first.load_id,
        2000,
    )
    verified = hrcore.load(path, database_url=refs, verify=True)
    assert (verified.status, verified.rows_unchanged, verified.rows_rejected) == (
        "succeeded",
        2000,
        1,
    )
    assert query(refs, "SELECT * FROM hired_employees ORDER BY id") == before
    assert query(refs, "SELECT count(*) FROM pg_tables WHERE schemaname = 'hrcore_staging'") == [
        (0,)
    ]


@pytest.mark.parametrize(
    "between",
    ["departments", "restore", "other_file", "api_rows", "sql_truncate", "sql_update", "sql_jobs"],
)
def test_a_reload_is_not_skipped_when_something_changed_the_table_or_its_references(
    refs: str, tmp_path: Path, between: str
) -> None:
    path = write(
        tmp_path, "hired_employees.csv", employees(range(1, 11)) + "11,K,2021-01-01T00:00:00Z,4,1\n"
    )
    first = hrcore.load(path, database_url=refs)
    assert first.rejections == {"unknown_department": 1}
    if between == "departments":  # department 4 now exists: row 11 passes
        (tmp_path / "more").mkdir()
        hrcore.load(write(tmp_path / "more", "departments.csv", "4,New\n"), database_url=refs)
    elif between == "restore":
        saved = hrcore.backup("hired_employees", to=tmp_path / "b", database_url=refs)
        hrcore.restore("hired_employees", from_=saved.uri, database_url=refs)
    elif between == "other_file":
        (tmp_path / "other").mkdir()
        other = write(tmp_path / "other", "hired_employees.csv", employees(range(1, 3), name="X"))
        hrcore.load(other, database_url=refs)
    elif between == "api_rows":
        row = {"id": 1, "name": "Y", "datetime": "2021-01-01T00:00:00Z", "department_id": 1}
        hrcore.load_rows("employees", [{**row, "job_id": 1}], database_url=refs)
    elif between == "sql_truncate":  # someone in psql: no ledger entry, the counters move
        query(refs, "TRUNCATE hired_employees")
    elif between == "sql_update":
        query(refs, "UPDATE hired_employees SET name = 'Y' WHERE id = 1")
    else:
        query(refs, "INSERT INTO jobs VALUES (50, 'New')")

    again = hrcore.load(path, database_url=refs)

    assert again.status == "succeeded"
    assert query(refs, "SELECT name FROM hired_employees WHERE id = 1") == [("N1",)]
    assert query(refs, "SELECT count(*) FROM hired_employees WHERE id <= 10") == [(10,)]
    if between == "departments":
        assert (again.rows_inserted, again.rows_rejected) == (1, 0)


def test_a_load_that_someone_else_wrote_beside_cannot_be_skipped_later(
    refs: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "hired_employees.csv", employees(range(1, 501)))

    def write_beside(progress: hrcore.Progress) -> None:
        if progress.phase == "write" and progress.done == 100:  # a psql user, meanwhile
            query(refs, "UPDATE hired_employees SET name = 'other' WHERE id = 1")

    first = hrcore.load(path, database_url=refs, batch_size=100, writers=1, progress=write_beside)
    again = hrcore.load(path, database_url=refs)

    assert first.status == again.status == "succeeded"
    assert query(refs, "SELECT table_state FROM load_runs WHERE id = $1", (first.load_id,)) == [
        (None,)
    ]
    assert hrcore.load(path, database_url=refs).status == "skipped"  # the second vouches


def test_a_reload_touches_only_the_rows_that_changed(refs: str, tmp_path: Path) -> None:
    content = employees(range(1, 2501))
    load_employees(refs, tmp_path, content + "9,,x,1,1\n")
    before = dict(query(refs, "SELECT id, xmin::text FROM hired_employees"))
    changed = content.replace("1700,N1700,", "1700,Renamed,") + "9,,x,1,1\n"
    statements = "SELECT last_value FROM hrcore_changes_hired_employees"
    counter = query(refs, statements)[0][0]

    again = load_employees(refs, tmp_path, changed, batch_size=100)

    # one statement wrote the table (its two triggers counted it); the 25 other batches
    # were recorded as unchanged at once
    assert query(refs, statements) == [(counter + 2,)]
    assert (again.rows_updated, again.rows_unchanged, again.rows_rejected) == (1, 2499, 1)
    assert again.batches == 26  # 25 batches of employees and the rejected row's
    after = dict(query(refs, "SELECT id, xmin::text FROM hired_employees"))
    assert [i for i in after if after[i] != before[i]] == [1700]  # the others not even locked
    # no row but the updated one carries a lock
    assert query(refs, "SELECT id FROM hired_employees WHERE xmax::text <> '0'") == [(1700,)]
    assert query(
        refs, "SELECT count(*) FROM rejected_rows WHERE load_id = $1", (again.load_id,)
    ) == [(1,)]


def test_a_batch_whose_id_someone_writes_during_a_first_load_is_upserted_instead(
    refs: str, tmp_path: Path
) -> None:
    # the table is empty when the load begins, so its batches are copied straight in;
    # meanwhile a psql user writes id 1500, of batch 1 (which also holds a bad row)
    content = employees(range(1, 1501)) + "x,bad,x,1,1\n" + employees(range(1501, 3001))
    path = write(tmp_path, "hired_employees.csv", content)
    with connect(refs, autocommit=False) as other:
        execute(other, "INSERT INTO hired_employees VALUES (1500, 'other', now(), 2, 2)")
        loading = InThread(lambda: hrcore.load(path, database_url=refs, writers=1))
        wait_until(lambda: writers_waiting_on_a_lock(refs) == 1, "batch 1 waits for id 1500")
        other.commit()
    report = loading.result()

    assert (report.status, report.rows_read, report.rows_rejected) == ("succeeded", 3001, 1)
    assert (report.rows_inserted, report.rows_updated) == (2999, 1)
    assert query(refs, "SELECT name, department_id FROM hired_employees WHERE id = 1500") == [
        ("N1500", 1)
    ]
    assert query(refs, "SELECT count(*), min(id), max(id) FROM hired_employees") == [
        (3000, 1, 3000)
    ]
    ledger = query(
        refs,
        "SELECT sum(rows_inserted), sum(rows_updated), sum(rows_rejected) FROM load_batches "
        "WHERE load_id = $1",
        (report.load_id,),
    )
    assert ledger == [(2999, 1, 1)]
    rejected = "SELECT line_number FROM rejected_rows WHERE load_id = $1"
    assert query(refs, rejected, (report.load_id,)) == [(1501,)]
    assert summary_is_exact(refs)


def test_two_first_loads_of_the_same_ids_in_other_orders_at_once_both_succeed(
    refs: str, tmp_path: Path
) -> None:
    # into an empty table, batches are copied in: each batch's rows go in by id, so
    # the two loads wait for each other's rows but never deadlock
    ids = list(range(1, 30_001))
    orders = [random.Random(seed).sample(ids, len(ids)) for seed in (1, 2)]
    paths = []
    for name, order in zip(("A", "B"), orders, strict=True):
        (tmp_path / name).mkdir()
        paths.append(
            write(tmp_path / name, "hired_employees.csv", "".join(employees_of(order, name)))
        )
    deadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    before = query(refs, deadlocks)

    def first_load(path: Path) -> Callable[[], hrcore.LoadReport]:
        return lambda: hrcore.load(path, database_url=refs, batch_size=200, writers=8)

    loads = [InThread(first_load(path)) for path in paths]
    reports = [load.result(timeout=180) for load in loads]
    # a session's statistics are flushed as it ends
    wait_until(lambda: writer_sessions(refs) == 0, "the writers' sessions end")
    assert query(refs, deadlocks) == before

    assert [r.status for r in reports] == ["succeeded", "succeeded"]
    assert sum(r.rows_inserted for r in reports) == 30_000
    assert all(r.rows_inserted + r.rows_updated + r.rows_unchanged == 30_000 for r in reports)
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(30_000,)]
    assert summary_is_exact(refs)


def test_a_cancelled_load_closes_its_ledger_after_the_batch_in_flight(
    refs: str, tmp_path: Path
) -> None:
    # 300 one-row batches: the queue fills while the writer's batch 0 waits for id 1,
    # held by a session that the server ends after 3 idle seconds
    path = write(tmp_path, "hired_employees.csv", employees(range(1, 301)))
    cancel = threading.Event()
    held = ExitStack()
    blocker = held.enter_context(connect(refs, autocommit=False))
    execute(blocker, "SET idle_in_transaction_session_timeout = '3s'")
    execute(blocker, "INSERT INTO hired_employees VALUES (1, 'x', now(), 1, 1)")
    loading = InThread(
        lambda: hrcore.load(path, database_url=refs, batch_size=1, writers=1, cancel=cancel)
    )
    wait_until(lambda: writers_waiting_on_a_lock(refs) == 1, "batch 0 waits for id 1")
    cancel.set()
    stopped = loading.outcome()
    with suppress(Exception):  # the server ended that session
        held.close()
    wait_until(lambda: writer_sessions(refs) == 0, "the writer's session ends")

    assert isinstance(stopped, hrcore.LoadCancelledError)
    report = stopped.report
    ledger = query(
        refs,
        "SELECT count(*), coalesce(sum(rows_inserted), 0) FROM load_batches WHERE load_id = $1",
        (report.load_id,),
    )
    assert ledger == [(report.batches, report.rows_inserted)]
    assert report.batches == 1  # batch 0 was in flight: it committed, then the writer stopped
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(report.rows_inserted,)]
