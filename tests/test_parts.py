"""A table's data as many part files, loaded as one load: by threads of a library call, or
by part jobs that several real worker processes share."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import hrcore
import pytest
from hrcore_api.app import create_app
from hrcore_api.settings import Settings
from litestar.testing import TestClient

from tests.conftest import query, queued, run_queue, upload, wait_until, write
from tests.test_queue import Workers, reconciles

PARTS, PER_PART, STEP = 6, 5000, 4900  # part p holds ids p*4900+1 .. p*4900+5000


def part_rows(p: int, *, name: str = "P") -> str:
    """Part ``p``'s rows: its first 100 ids are the previous part's last 100 (the later
    part's row must win), and one bad row at its end."""
    first = p * STEP + 1
    return (
        "".join(
            f"{i},{name}{p} {i},2021-03-01T10:00:00Z,{i % 3 + 1},{i % 3 + 1}\n"
            for i in range(first, first + PER_PART)
        )
        + "bad,row\n"
    )


def make_parts(folder: Path, count: int = PARTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for p in range(count):
        write(folder, f"part-{p:05d}.csv", part_rows(p))
    return folder


def expected_names(count: int = PARTS) -> dict[int, str]:
    """Each id's name once every part is loaded: the last part holding it wins."""
    names = {}
    for p in range(count):
        for i in range(p * STEP + 1, p * STEP + PER_PART + 1):
            names[i] = f"P{p} {i}"
    return names


def table_names(url: str) -> dict[int, str]:
    return {int(i): str(n) for i, n in query(url, "SELECT id, name FROM hired_employees")}


def test_a_folder_of_parts_loads_as_one_load_and_the_last_row_of_an_id_wins(
    refs: str, tmp_path: Path
) -> None:
    folder = make_parts(tmp_path / "hired_employees")
    report = hrcore.load(tmp_path, table="hired_employees", database_url=refs, batch_size=700)

    assert report.status == "succeeded"
    assert report.source == str((tmp_path / "hired_employees").resolve())
    assert table_names(refs) == expected_names()
    assert reconciles(report)
    assert report.rows_read == PARTS * (PER_PART + 1)
    assert report.rows_inserted == len(expected_names())
    assert report.rejections == {"duplicate_id": 100 * (PARTS - 1), "field_count": PARTS}
    assert [(p.part, p.status, p.rows_read, p.batches) for p in report.parts] == [
        (p, "written", PER_PART + 1, 8) for p in range(PARTS)
    ]
    assert [p.uri.rsplit("/", 1)[-1] for p in report.parts] == [
        f"part-{p:05d}.csv" for p in range(PARTS)
    ]
    assert [p.first_line for p in report.parts] == [1 + p * (PER_PART + 1) for p in range(PARTS)]
    sizes = [(folder / f"part-{p:05d}.csv").stat().st_size for p in range(PARTS)]
    assert [p.identity.split(";")[0] for p in report.parts] == [f"size={n}" for n in sizes]
    # the ledger numbers lines as if the parts were one file: part 2's bad row is its
    # line 5001, the load's line 2 * 5001 + 5001
    bad = query(refs, "SELECT line_number FROM rejected_rows WHERE reasons = '{field_count}' "
                      "ORDER BY 1")  # fmt: skip
    assert bad == [((p + 1) * (PER_PART + 1),) for p in range(PARTS)]
    assert query(refs, "SELECT count(*) FROM pg_tables WHERE schemaname = 'hrcore_staging'") == [
        (0,)
    ]


def test_parts_named_for_the_table_in_the_source_folder(refs: str, tmp_path: Path) -> None:
    for p in range(3):
        write(tmp_path, f"hired_employees-{p}.csv", part_rows(p))
    write(tmp_path, "jobs-extra.csv", "9,Nope\n")  # another table's: not a part
    report = hrcore.load(tmp_path, table="hired_employees", database_url=refs)
    assert report.source == f"{tmp_path.resolve()}/hired_employees-*.csv"
    assert len(report.parts) == 3
    assert table_names(refs) == expected_names(3)


def test_a_rerun_skips_the_parts_that_did_not_change(refs: str, tmp_path: Path) -> None:
    folder = tmp_path / "hired_employees"
    folder.mkdir()
    for p in range(4):  # no id in two parts
        write(folder, f"part-{p}.csv", "".join(
            f"{i},N{i},2021-03-01T10:00:00Z,1,1\n" for i in range(p * 1000 + 1, p * 1000 + 1001)
        ))  # fmt: skip
    first = hrcore.load(folder, database_url=refs)
    again = hrcore.load(folder, database_url=refs)
    assert (again.status, again.same_as) == ("skipped", first.load_id)

    write(folder, "part-2.csv", "2001,Changed,2021-03-01T10:00:00Z,1,1\n")
    changed = hrcore.load(folder, database_url=refs)
    assert changed.status == "succeeded"
    assert [(p.part, p.status, p.same_as) for p in changed.parts] == [
        (0, "skipped", again.load_id), (1, "skipped", again.load_id),
        (2, "written", None), (3, "skipped", again.load_id),
    ]  # fmt: skip
    assert (changed.rows_read, changed.rows_updated) == (1, 1)
    assert query(refs, "SELECT name FROM hired_employees WHERE id = 2001") == [("Changed",)]

    # a changed part that shares an id with a later, unchanged part: that part is read
    # too, and its row still wins
    write(folder, "part-0.csv", "3500,Earlier,2021-03-01T10:00:00Z,1,1\n")
    clash = hrcore.load(folder, database_url=refs)
    assert [(p.part, p.status) for p in clash.parts] == [
        (0, "written"), (1, "skipped"), (2, "skipped"), (3, "written"),
    ]  # fmt: skip
    assert query(refs, "SELECT name FROM hired_employees WHERE id = 3500") == [("N3500",)]
    assert clash.rejections == {"duplicate_id": 1}
    assert reconciles(clash)


def test_parts_under_an_s3_prefix_load_through_the_api_as_one_queued_load(
    refs: str, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    for p in range(3):
        path = write(tmp_path, f"part-{p:05d}.csv", part_rows(p))
        upload(s3_endpoint, bucket, f"exports/hired_employees/{path.name}", path)
    with TestClient(app=create_app(Settings(database_url=refs, s3_bucket=bucket))) as api:
        first = queued(api.post("/employees/batch", json={"key": "exports/hired_employees/"}))
        second = queued(api.post("/employees/batch", json={"key": "exports/"}))
        assert first == second  # the same parts: one load
        run_queue(refs)
        report = api.get(f"/loads/{first}").json()
    assert report["status"] == "succeeded", report
    assert report["source"] == f"s3://{bucket}/exports/hired_employees"
    assert [p["status"] for p in report["parts"]] == ["written"] * 3
    assert all(p["identity"].startswith("etag=") for p in report["parts"])
    assert all(p["uri"].startswith(f"s3://{bucket}/exports/hired_employees/part-") for p in
               report["parts"])  # fmt: skip
    assert table_names(refs) == expected_names(3)


@pytest.fixture
def three_workers(refs: str, tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    workers = Workers(refs, tmp_path)
    started = [workers.start("--concurrency", "1") for _ in range(3)]
    wait_until(lambda: query(refs, "SELECT count(*) FROM procrastinate_workers") == [(3,)],
               "three workers listen")  # fmt: skip
    yield started
    workers.stop_all()


def test_three_workers_share_a_six_part_load_and_load_each_part_once(
    refs: str, tmp_path: Path, three_workers: list[subprocess.Popen[str]]
) -> None:
    folder = make_parts(tmp_path / "hired_employees")
    load = hrcore.enqueue(folder, database_url=refs, batch_size=500)
    wait_until(
        lambda: (
            hrcore.get_load(load.load_id, database_url=refs).status not in ("queued", "running")
        ),
        "the workers finish the load",
        timeout=180,
    )
    report = hrcore.get_load(load.load_id, database_url=refs)
    assert report.status == "succeeded", report
    assert table_names(refs) == expected_names()
    assert reconciles(report)
    assert report.rows_read == PARTS * (PER_PART + 1)
    # each part read once, its batches each committed once
    assert [(p.status, p.attempts, p.batches) for p in report.parts] == [("written", 1, 11)] * PARTS
    assert query(refs, "SELECT count(*), count(DISTINCT batch) FROM load_batches "
                       "WHERE load_id = $1", (load.load_id,)) == [(66, 66)]  # fmt: skip
    assert len({p.worker for p in report.parts}) > 1  # shared, not run by one
    pids = {str(w.pid) for w in three_workers}
    assert {p.worker.rsplit(":", 1)[-1] for p in report.parts if p.worker} <= pids
    assert query(refs, "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1") == [
        ("succeeded", 1 + 2 * PARTS)  # the plan, then each part staged and written
    ]


def test_a_part_that_cannot_be_read_fails_the_load_with_its_name(refs: str, tmp_path: Path) -> None:
    folder = make_parts(tmp_path / "hired_employees", 3)
    (folder / "part-00001.csv").write_bytes("1,é\n".encode("utf-16"))
    with pytest.raises(hrcore.SourceFormatError, match=r"part-00001\.csv"):
        hrcore.load(folder, database_url=refs)
    [(status, error)] = query(
        refs, "SELECT status, error FROM load_runs WHERE table_name = 'hired_employees'"
    )
    assert status == "failed"
    assert "part-00001.csv" in error
    assert query(refs, "SELECT count(*) FROM pg_tables WHERE schemaname = 'hrcore_staging'") == [
        (0,)
    ]


def test_a_worker_killed_while_writing_a_part_leaves_it_to_another_which_commits_each_batch_once(
    refs: str, tmp_path: Path
) -> None:
    folder = tmp_path / "hired_employees"
    folder.mkdir()
    for p in range(2):  # no id in two parts
        ids = range(p * 30_000 + 1, (p + 1) * 30_000 + 1)
        write(folder, f"part-{p}.csv", "".join(f"{i},N{i},2021-03-01T10:00:00Z,1,1\n" for i in ids))
    workers = Workers(refs, tmp_path)
    try:
        first = workers.start("--concurrency", "1", "--writers", "1")
        load = hrcore.enqueue(folder, database_url=refs, batch_size=100)
        wait_until(
            lambda: query(refs, "SELECT count(*) FROM load_batches WHERE load_id = $1",
                          (load.load_id,))[0][0] >= 5,
            "a part's batches being written",
        )  # fmt: skip
        first.kill()
        first.wait(10)
        workers.start()

        def over() -> bool:
            status = hrcore.get_load(load.load_id, database_url=refs).status
            return status not in ("queued", "running")

        wait_until(over, "another worker finishes the load", timeout=180)
    finally:
        workers.stop_all()
    report = hrcore.get_load(load.load_id, database_url=refs)
    assert report.status == "succeeded", report
    assert [(p.status, p.batches, p.rows_written) for p in report.parts] == [
        ("written", 300, 30_000)
    ] * 2
    assert query(refs, "SELECT count(*), count(DISTINCT batch) FROM load_batches "
                       "WHERE load_id = $1", (load.load_id,)) == [(600, 600)]  # fmt: skip
    assert (report.rows_read, report.rows_inserted) == (60_000, 60_000)
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(60_000,)]
    assert "lost its worker: queued again" in workers.log(1)


def employees_csv(rows: list[tuple[int, str]]) -> str:
    return "".join(f"{i},{name},2021-03-01T10:00:00Z,1,1\n" for i, name in rows)


def names(url: str) -> dict[int, str]:
    return table_names(url)


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_an_id_repeated_inside_the_one_part_loaded_is_a_duplicate_and_the_last_wins(
    refs: str, tmp_path: Path, batch_size: int
) -> None:
    folder = tmp_path / "hired_employees"
    folder.mkdir()
    write(folder, "part-0.csv", employees_csv([(1, "A"), (2, "B"), (1, "C")]))
    report = hrcore.load(folder, database_url=refs, batch_size=batch_size)
    assert report.status == "succeeded"
    assert names(refs) == {1: "C", 2: "B"}
    assert (report.rows_inserted, report.rows_updated, report.rejections) == (
        2, 0, {"duplicate_id": 1}
    )  # fmt: skip


def test_a_rerun_gives_an_id_back_to_a_skipped_part_when_the_part_that_won_it_lost_it(
    refs: str, tmp_path: Path
) -> None:
    folder = tmp_path / "hired_employees"
    folder.mkdir()
    write(folder, "part-0.csv", employees_csv([(1, "A"), (2, "A2")]))
    write(folder, "part-1.csv", employees_csv([(1, "B"), (3, "B3")]))
    hrcore.load(folder, database_url=refs)
    assert names(refs) == {1: "B", 2: "A2", 3: "B3"}

    write(folder, "part-1.csv", employees_csv([(3, "B3")]))  # id 1 is no longer there
    dropped = hrcore.load(folder, database_url=refs)
    assert names(refs) == {1: "A", 2: "A2", 3: "B3"}
    assert [p.status for p in dropped.parts] == ["written", "written"]

    write(folder, "part-1.csv", employees_csv([(1, "B"), (3, "B3")]))
    hrcore.load(folder, database_url=refs)
    (folder / "part-1.csv").unlink()  # a part gone: the load is not skipped
    gone = hrcore.load(folder, database_url=refs)
    assert gone.status == "succeeded"
    assert names(refs)[1] == "A"


def test_a_queued_load_of_parts_decides_what_to_skip_when_it_runs(
    refs: str, tmp_path: Path
) -> None:
    folder = tmp_path / "hired_employees"
    folder.mkdir()
    write(folder, "part-0.csv", employees_csv([(1, "A")]))
    write(folder, "part-1.csv", employees_csv([(2, "B")]))
    hrcore.load(folder, database_url=refs)
    load = hrcore.enqueue(folder, database_url=refs)
    hrcore.load_rows("hired_employees", [{"id": 1, "name": "Other", "datetime":
                     "2021-03-01T10:00:00Z", "department_id": 1, "job_id": 1}],
                     database_url=refs)  # fmt: skip
    run_queue(refs)
    report = hrcore.get_load(load.load_id, database_url=refs)
    assert report.status == "succeeded"
    assert names(refs) == {1: "A", 2: "B"}  # the table changed since: nothing skipped
    assert [p.status for p in report.parts] == ["written", "written"]


def test_a_load_of_parts_numbers_lines_as_one_file_whatever_the_parts_end_with(
    refs: str, tmp_path: Path
) -> None:
    folder = tmp_path / "hired_employees"
    folder.mkdir()
    write(folder, "part-0.csv", '1,"Two\nlines",2021-03-01T10:00:00Z,1,1\n')  # lines 1-2
    write(folder, "part-1.csv", "2,B,2021-03-01T10:00:00Z,1,1\n\n\n")  # lines 3-5
    write(folder, "part-2.csv", "3,C,2021-03-01T10:00:00Z,1,1\nbad\n")  # lines 6-7
    first = hrcore.load(folder, database_url=refs)
    assert [p.first_line for p in first.parts] == [1, 3, 6]
    assert query(refs, "SELECT line_number FROM rejected_rows") == [(7,)]

    write(folder, "part-2.csv", "3,C,2021-03-01T10:00:00Z,1,1\nworse\n")
    again = hrcore.load(folder, database_url=refs)  # parts 0 and 1 skipped
    assert [p.status for p in again.parts] == ["skipped", "skipped", "written"]
    assert [p.first_line for p in again.parts] == [1, 3, 6]
    assert query(refs, "SELECT line_number FROM rejected_rows WHERE load_id = $1",
                 (again.load_id,)) == [(7,)]  # fmt: skip

    skipped = hrcore.load(folder, database_url=refs)  # every part as it was
    assert skipped.status == "skipped"
    assert (skipped.rows_read, skipped.rows_unchanged, skipped.rows_rejected) == (4, 3, 1)


def test_a_direct_load_of_parts_that_are_queued_is_busy(refs: str, tmp_path: Path) -> None:
    folder = make_parts(tmp_path / "hired_employees", 2)
    queued_load = hrcore.enqueue(folder, database_url=refs)
    with pytest.raises(hrcore.BusyError, match=f"by load {queued_load.load_id}"):
        hrcore.load(folder, database_url=refs)
    run_queue(refs)
    assert hrcore.get_load(queued_load.load_id, database_url=refs).status == "succeeded"


def test_a_direct_load_of_parts_killed_mid_write_is_failed_and_cleaned_up_by_the_next_load(
    refs: str, tmp_path: Path
) -> None:
    from tests.test_faults import start_load

    folder = tmp_path / "hired_employees"
    folder.mkdir()
    for p in range(2):
        ids = range(p * 30_000 + 1, (p + 1) * 30_000 + 1)
        write(folder, f"part-{p}.csv", employees_csv([(i, f"N{i}") for i in ids]))
    process = start_load(refs, folder, "--batch-size", "100")
    try:
        wait_until(lambda: query(refs, "SELECT count(*) FROM load_batches b JOIN load_runs r "
                                       "ON r.id = b.load_id WHERE r.phase IS NOT NULL")[0][0] >= 3,
                   "the parts being written")  # fmt: skip
    finally:
        process.kill()
        process.communicate(timeout=30)
    staged = "SELECT count(*) FROM pg_tables WHERE schemaname = 'hrcore_staging'"
    assert query(refs, staged)[0][0] >= 2  # the dead load's parts' staging tables
    hrcore.load(table="jobs", database_url=refs)  # any load reaps what died
    [(status, error)] = query(
        refs, "SELECT status, error FROM load_runs WHERE table_name = 'hired_employees'"
    )
    assert status == "failed"
    assert "ended before the load finished" in error
    assert query(refs, staged) == [(0,)]
    again = hrcore.load(folder, database_url=refs)
    assert (again.status, again.rows_read) == ("succeeded", 60_000)
    assert query(refs, "SELECT count(*) FROM hired_employees") == [(60_000,)]
