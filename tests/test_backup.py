"""AVRO backups and restores: round trips (local and S3), failures that change nothing."""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import fastavro
import hrcore
import pytest
from hrcore._db import connect, execute

from tests.conftest import InThread, query, wait_until, waiting_on_a_lock, write
from tests.test_load import Paused, waiting_on_an_advisory_lock

EMPLOYEES = (
    "1,Ann O'Neil,2021-07-27T16:02:08.123456Z,1,1\n"
    '2,"Smith, John",2021-01-01T00:00:00-05:00,2,1\n'
    "3,Zoë,1999-12-31T23:59:59Z,2,2\n"
)


@pytest.fixture
def loaded(db: str, tmp_path: Path) -> str:
    write(tmp_path, "departments.csv", "1,Sales\n2,Legal\n")
    write(tmp_path, "jobs.csv", "1,Analyst\n2,Manager\n")
    write(tmp_path, "hired_employees.csv", EMPLOYEES)
    hrcore.load_all(tmp_path, database_url=db)
    return db


def table(db: str, name: str) -> list[tuple[object, ...]]:
    return query(db, f"SELECT * FROM {name} ORDER BY id")


def test_a_backup_keeps_types_and_a_restore_brings_the_table_back(
    loaded: str, tmp_path: Path
) -> None:
    before = table(loaded, "hired_employees")
    made = hrcore.backup("hired_employees", to=tmp_path / "backups", database_url=loaded)

    assert made.rows == 3
    assert Path(made.uri).parent == tmp_path / "backups"
    assert Path(made.uri).name.startswith("hired_employees-")
    assert made.uri.endswith(".avro")
    with open(made.uri, "rb") as f:
        reader = fastavro.reader(f)
        records = [cast(dict[str, Any], r) for r in reader]
        schema = cast(dict[str, Any], reader.writer_schema)
        assert [fld["type"] for fld in schema["fields"]] == [
            "int",
            "string",
            {"type": "long", "logicalType": "timestamp-micros"},
            "int",
            "int",
        ]
    assert records[0]["datetime"] == datetime(2021, 7, 27, 16, 2, 8, 123456, tzinfo=UTC)
    assert records[1]["datetime"] == datetime(2021, 1, 1, 5, 0, tzinfo=UTC)

    query(loaded, "UPDATE hired_employees SET name = 'changed' WHERE id = 1")
    query(loaded, "DELETE FROM hired_employees WHERE id = 2")
    query(loaded, "INSERT INTO hired_employees VALUES (99, 'new', now(), 1, 1)")
    restored = hrcore.restore("hired_employees", from_=made.uri, database_url=loaded)

    assert restored.rows == 3
    assert table(loaded, "hired_employees") == before


def test_backup_all_writes_one_file_per_table(loaded: str, tmp_path: Path) -> None:
    made = hrcore.backup_all(to=tmp_path, database_url=loaded)
    assert [(b.table, b.rows) for b in made] == [
        ("departments", 2),
        ("jobs", 2),
        ("hired_employees", 3),
    ]
    assert len(list(tmp_path.glob("*.avro"))) == 3


def test_round_trip_through_s3(loaded: str, s3_endpoint: str, bucket: str) -> None:
    before = table(loaded, "jobs")
    made = hrcore.backup("jobs", to=f"s3://{bucket}/backups/", database_url=loaded)
    assert made.uri.startswith(f"s3://{bucket}/backups/jobs-")
    query(loaded, "UPDATE jobs SET job = 'x'")

    hrcore.restore("jobs", from_=made.uri, database_url=loaded)
    assert table(loaded, "jobs") == before


def test_an_empty_table_round_trips(db: str, tmp_path: Path) -> None:
    made = hrcore.backup("jobs", to=tmp_path, database_url=db)
    write(tmp_path, "jobs.csv", "1,A\n")
    hrcore.load(tmp_path / "jobs.csv", database_url=db)

    assert made.rows == 0
    assert hrcore.restore("jobs", from_=made.uri, database_url=db).rows == 0
    assert table(db, "jobs") == []


def test_restoring_a_referenced_table_without_rows_others_need_changes_nothing(
    loaded: str, tmp_path: Path
) -> None:
    query(loaded, "DELETE FROM hired_employees WHERE department_id = 2")
    query(loaded, "DELETE FROM departments WHERE id = 2")
    sales_only = hrcore.backup("departments", to=tmp_path, database_url=loaded)
    query(loaded, "INSERT INTO departments VALUES (2, 'Legal')")
    query(loaded, "INSERT INTO hired_employees VALUES (7, 'x', now(), 2, 1)")
    before = table(loaded, "departments"), table(loaded, "hired_employees")

    with pytest.raises(hrcore.RestoreError, match="nothing was changed"):
        hrcore.restore("departments", from_=sales_only.uri, database_url=loaded)
    assert (table(loaded, "departments"), table(loaded, "hired_employees")) == before

    query(loaded, "DELETE FROM hired_employees WHERE id = 7")
    assert hrcore.restore("departments", from_=sales_only.uri, database_url=loaded).rows == 1
    assert table(loaded, "departments") == [(1, "Sales")]


def test_a_file_that_is_not_a_backup_of_that_table_is_refused(loaded: str, tmp_path: Path) -> None:
    jobs = hrcore.backup("jobs", to=tmp_path, database_url=loaded)
    not_avro = write(tmp_path, "x.avro", "1,Sales\n")
    before = table(loaded, "departments")

    with pytest.raises(hrcore.RestoreError, match="not an AVRO backup of table departments"):
        hrcore.restore("departments", from_=jobs.uri, database_url=loaded)
    with pytest.raises(hrcore.RestoreError, match="not an AVRO backup"):
        hrcore.restore("departments", from_=not_avro, database_url=loaded)
    with pytest.raises(hrcore.SourceNotFoundError):
        hrcore.restore("departments", from_=tmp_path / "none.avro", database_url=loaded)
    assert table(loaded, "departments") == before


def test_round_trip_of_many_rows_across_arrow_batches(refs: str, tmp_path: Path) -> None:
    rows = "".join(
        f"{i},N{i},2021-{i % 12 + 1:02d}-0{i % 9 + 1}T{i % 24:02d}:00:00Z,{i % 3 + 1},{i % 3 + 1}\n"
        for i in range(1, 120_001)
    )
    hrcore.load(write(tmp_path, "hired_employees.csv", rows), database_url=refs)
    before = table(refs, "hired_employees")
    made = hrcore.backup("hired_employees", to=tmp_path, database_url=refs)
    query(refs, "DELETE FROM hired_employees WHERE id % 7 = 0")

    assert hrcore.restore("hired_employees", from_=made.uri, database_url=refs).rows == 120_000
    assert table(refs, "hired_employees") == before


def test_a_truncated_backup_is_refused_with_a_one_line_reason(loaded: str, tmp_path: Path) -> None:
    made = hrcore.backup("hired_employees", to=tmp_path, database_url=loaded)
    data = Path(made.uri).read_bytes()
    broken = write(tmp_path, "hired_employees-20260101T000000000000Z.avro", data[: len(data) - 40])
    before = table(loaded, "hired_employees")

    with pytest.raises(hrcore.RestoreError) as refused:
        hrcore.restore("hired_employees", from_=broken, database_url=loaded)
    assert "nothing was changed" in str(refused.value)
    assert "Traceback" not in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1
    assert table(loaded, "hired_employees") == before


def write_avro(path: Path, table: str, records: list[dict[str, Any]], **metadata: str) -> Path:
    """An AVRO file with the backup schema of ``table`` and the given metadata."""
    from hrcore._backup import avro_schema
    from hrcore._specs import get_table

    with open(path, "wb") as f:
        fastavro.writer(
            f, fastavro.parse_schema(avro_schema(get_table(table))), records, metadata=metadata
        )
    return path


def test_a_backup_says_its_table_and_row_count_and_a_file_that_disagrees_is_refused(
    loaded: str, tmp_path: Path
) -> None:
    made = hrcore.backup("jobs", to=tmp_path, database_url=loaded)
    with open(made.uri, "rb") as f:
        assert fastavro.reader(f).metadata["hrcore.table"] == "jobs"
    with open(made.uri, "rb") as f:
        assert fastavro.reader(f).metadata["hrcore.rows"] == "2"
    jobs = [{"id": 1, "job": "A"}, {"id": 2, "job": "B"}]
    before = table(loaded, "jobs")
    cases = {
        "says 3 rows, holds 2": (
            {"hrcore.table": "jobs", "hrcore.rows": "3"},
            "holds 2 rows but says 3",
        ),
        "says another table": ({"hrcore.table": "departments", "hrcore.rows": "2"}, "complete"),
        "says nothing": ({}, "complete backup"),
    }
    for name, (metadata, message) in cases.items():
        path = write_avro(tmp_path / f"jobs-{len(name)}.avro", "jobs", jobs, **metadata)
        with pytest.raises(hrcore.RestoreError, match=message):
            hrcore.restore("jobs", from_=path, database_url=loaded)
    assert table(loaded, "jobs") == before


def test_a_restore_applies_the_rules_of_a_load_and_refuses_a_file_that_breaks_one(
    loaded: str, tmp_path: Path
) -> None:
    before = table(loaded, "jobs")
    bad = [{"id": 1, "job": "Analyst"}, {"id": -5, "job": ""}, {"id": 7, "job": "a\x00b"}]
    path = write_avro(tmp_path / "jobs-x.avro", "jobs", bad, **{"hrcore.table": "jobs",
                      "hrcore.rows": "3"})  # fmt: skip

    with pytest.raises(
        hrcore.RestoreError, match=r"record 2 .*missing_field,id_out_of_range"
    ) as refused:
        hrcore.restore("jobs", from_=path, database_url=loaded)
    assert "nul_byte" in str(refused.value)
    assert "nothing was changed" in str(refused.value)
    assert table(loaded, "jobs") == before

    trimmed = [{"id": 1, "job": "  Analyst "}, {"id": 5, "job": "Pilot"}]
    path = write_avro(tmp_path / "jobs-y.avro", "jobs", trimmed, **{"hrcore.table": "jobs",
                      "hrcore.rows": "2"})  # fmt: skip
    query(loaded, "DELETE FROM hired_employees WHERE job_id = 2")
    hrcore.restore("jobs", from_=path, database_url=loaded)
    assert table(loaded, "jobs") == [(1, "Analyst"), (5, "Pilot")]


def test_a_restore_refuses_references_to_rows_that_do_not_exist(
    loaded: str, tmp_path: Path
) -> None:
    before = table(loaded, "hired_employees")
    rows = [
        {"id": 9, "name": "x", "datetime": datetime(2021, 1, 1, tzinfo=UTC),
         "department_id": 1, "job_id": 99},
    ]  # fmt: skip
    path = write_avro(tmp_path / "hired_employees-x.avro", "hired_employees", rows,
                      **{"hrcore.table": "hired_employees", "hrcore.rows": "1"})  # fmt: skip
    with pytest.raises(hrcore.RestoreError, match="unknown_job"):
        hrcore.restore("hired_employees", from_=path, database_url=loaded)
    assert table(loaded, "hired_employees") == before


def test_a_backup_that_fails_midway_leaves_nothing_under_a_backup_name(
    refs: str, tmp_path: Path
) -> None:
    rows = "".join(f"{i},Name {i},2021-05-0{i % 9 + 1}T00:00:00Z,1,1\n" for i in range(1, 200_001))
    hrcore.load(write(tmp_path, "hired_employees.csv", rows), database_url=refs)
    folder = tmp_path / "backups"
    folder.mkdir()

    def small_files() -> None:  # as a full disk would: writes past 64 KiB fail
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    result = subprocess.run(
        [sys.executable, "-m", "hrcore.cli", "backup", "hired_employees", "--to", str(folder),
         "--database-url", refs],
        capture_output=True, text=True, timeout=120, preexec_fn=small_files, check=False,
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: cannot write")
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(folder.iterdir()) == []
    assert hrcore.list_backups("hired_employees", location=folder) == []


def test_a_restore_waits_for_a_running_load_and_the_result_is_the_backup(
    loaded: str, tmp_path: Path
) -> None:
    saved = hrcore.backup("hired_employees", to=tmp_path, database_url=loaded)
    rows = "".join(f"{i},Load {i},2021-05-05T00:00:00Z,1,1\n" for i in range(1, 3001))
    path = write(tmp_path, "hired_employees.csv", rows)
    paused, errors = Paused(), []
    load = threading.Thread(
        target=hrcore.load,
        args=(path,),
        kwargs={"database_url": loaded, "batch_size": 100, "writers": 1, "progress": paused},
    )
    load.start()
    assert paused.paused.wait(60)

    def restore() -> None:
        try:
            hrcore.restore("hired_employees", from_=saved.uri, database_url=loaded)
        except BaseException as exc:
            errors.append(exc)

    restoring = threading.Thread(target=restore)
    restoring.start()
    wait_until(lambda: waiting_on_an_advisory_lock(loaded), "the restore waits for the load")
    paused.release.set()
    for t in (load, restoring):
        t.join(60)
        assert not t.is_alive()

    assert errors == []
    assert table(loaded, "hired_employees") == [
        (r[0], r[1], r[2], r[3], r[4]) for r in before_rows(saved.uri)
    ]


def test_a_load_waits_for_a_running_restore_and_applies_over_it(
    loaded: str, tmp_path: Path
) -> None:
    saved = hrcore.backup("hired_employees", to=tmp_path, database_url=loaded)
    query(loaded, "DELETE FROM hired_employees WHERE id = 3")
    path = write(tmp_path, "hired_employees.csv", "2,Changed,2021-01-01T05:00:00Z,2,1\n")
    with connect(loaded, autocommit=False) as blocker:  # holds the restore at its table lock
        execute(blocker, "LOCK TABLE hired_employees IN ROW EXCLUSIVE MODE")
        reports: list[hrcore.LoadReport] = []
        restoring = threading.Thread(
            target=lambda: hrcore.restore("hired_employees", from_=saved.uri, database_url=loaded)
        )
        restoring.start()
        wait_until(
            lambda: waiting_on_a_lock(loaded, "LOCK TABLE hired_employees"),
            "the restore waits for its table",
        )
        loading = threading.Thread(
            target=lambda: reports.append(hrcore.load(path, database_url=loaded))
        )
        loading.start()
        wait_until(lambda: waiting_on_an_advisory_lock(loaded), "the load waits for the restore")
        blocker.rollback()
    for t in (restoring, loading):
        t.join(60)
        assert not t.is_alive()

    assert [r.rows_updated for r in reports] == [1]
    assert [n for (n,) in query(loaded, "SELECT name FROM hired_employees ORDER BY id")] == [
        "Ann O'Neil",
        "Changed",
        "Zoë",
    ]


def test_a_load_during_a_restore_of_a_table_it_references_waits_a_bounded_time_and_names_it(
    loaded: str, tmp_path: Path
) -> None:
    saved = hrcore.backup("jobs", to=tmp_path, database_url=loaded)
    path = write(tmp_path, "hired_employees.csv", "2,Changed,2021-01-01T05:00:00Z,2,1\n")
    with connect(loaded, autocommit=False) as blocker:  # holds the restore at its table lock
        execute(blocker, "LOCK TABLE jobs IN ROW EXCLUSIVE MODE")
        restoring = InThread(lambda: hrcore.restore("jobs", from_=saved.uri, database_url=loaded))
        wait_until(
            lambda: waiting_on_a_lock(loaded, "LOCK TABLE jobs"),
            "the restore waits for its table",
        )
        with pytest.raises(hrcore.BusyError, match=r"^jobs is being restored; it was not free"):
            hrcore.load(path, database_url=loaded, lock_timeout=0.2)
        blocker.rollback()
    restoring.result()

    assert hrcore.load(path, database_url=loaded).rows_updated == 1


def before_rows(uri: str) -> list[tuple[Any, ...]]:
    with open(uri, "rb") as f:
        return [tuple(r.values()) for r in fastavro.reader(f)]  # type: ignore[union-attr]


def test_listing_backups_on_an_unreachable_s3_is_an_error_not_an_empty_list(
    s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hrcore.list_backups("jobs", location=f"s3://{bucket}/backups/") == []
    with pytest.raises(hrcore.SourceNotFoundError, match="no such bucket"):
        hrcore.list_backups("jobs", location="s3://no-such-bucket/backups/")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(hrcore.SourceUnavailableError, match="cannot list"):
        hrcore.list_backups("jobs", location=f"s3://{bucket}/backups/")
