"""The ``hrcore`` command: exit codes, JSON, summaries, help, sample data, the embedded server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hrcore.cli import main

from tests.conftest import query, write


def run(*args: str, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_load_prints_one_json_report_per_table_in_dependency_order(db: str, tmp_path: Path) -> None:
    sample = run("sample", "--out", str(tmp_path), "--rows", "300", "--seed", "3")
    assert sample.exit_code == 0

    result = run("load", "--source", str(tmp_path), "--database-url", db, "--json")

    assert result.exit_code == 0, result.output
    loads = json.loads(result.stdout)["loads"]
    assert [x["table"] for x in loads] == ["departments", "jobs", "hired_employees"]
    for x in loads:
        assert x["status"] == "succeeded"
        assert (
            x["rows_read"]
            == x["rows_inserted"] + x["rows_updated"] + x["rows_unchanged"] + x["rows_rejected"]
        )
    assert {k for k in loads[0]} >= {
        "table",
        "source",
        "load_id",
        "status",
        "rows_read",
        "rows_inserted",
        "rows_updated",
        "rows_unchanged",
        "rows_rejected",
        "batches",
        "seconds",
    }
    employees = loads[2]
    assert employees["rows_read"] == 300
    assert query(db, "SELECT count(*) FROM hired_employees") == [(employees["rows_inserted"],)]


def test_load_of_named_tables_with_a_summary_table(db: str, tmp_path: Path) -> None:
    write(tmp_path, "jobs.csv", "1,Analyst\n2,\n")
    result = run("load", "jobs", "--source", str(tmp_path), "--database-url", db, "--silent")

    assert result.exit_code == 0
    assert "jobs" in result.stdout
    assert "succeeded" in result.stdout
    assert "missing_field: 1" in result.stdout
    assert query(db, "SELECT id, job FROM jobs") == [(1, "Analyst")]


def test_database_url_comes_from_the_environment(db: str, tmp_path: Path) -> None:
    write(tmp_path, "departments.csv", "1,Sales\n")
    result = run(
        "load", "departments", "--source", str(tmp_path), "--json", env={"DATABASE_URL": db}
    )

    assert result.exit_code == 0
    assert query(db, "SELECT department FROM departments") == [("Sales",)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["load", "--batch-size", "0"], "batch_size must be between 1 and 1000"),
        (["load", "--batch-size", "1001"], "batch_size must be between 1 and 1000"),
        (["load", "salaries"], "unknown table 'salaries'"),
        (["load", "--source", "ftp://x/y"], "unsupported source"),
    ],
)
def test_usage_errors_exit_2_with_one_line(db: str, args: list[str], message: str) -> None:
    result = run(*args, "--database-url", db)

    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert query(db, "SELECT count(*) FROM load_runs") == [(0,)]


def test_a_missing_source_exits_1_with_one_line(db: str, tmp_path: Path) -> None:
    result = run("load", "jobs", "--source", str(tmp_path / "none"), "--database-url", db)

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: no such file or folder: {tmp_path / 'none'}"
    ]


def test_a_failed_load_exits_1_and_reports_it(db: str, tmp_path: Path) -> None:
    write(tmp_path, "jobs.csv", "1,A\n")
    result = run(
        "load",
        "jobs",
        "--source",
        str(tmp_path),
        "--database-url",
        "postgresql://u:pw@127.0.0.1:1/x",
    )

    assert result.exit_code == 1
    assert "cannot connect" in result.stderr
    assert ":pw@" not in result.stderr


def test_sample_writes_reproducible_challenge_shaped_files(tmp_path: Path) -> None:
    run("sample", "--out", str(tmp_path / "a"), "--rows", "5000", "--seed", "7")
    run("sample", "--out", str(tmp_path / "b"), "--rows", "5000", "--seed", "7")

    for name in ("departments.csv", "jobs.csv", "hired_employees.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    lines = (tmp_path / "a" / "hired_employees.csv").read_text().splitlines()
    assert len(lines) == 5000
    assert len((tmp_path / "a" / "departments.csv").read_text().splitlines()) == 12
    assert len((tmp_path / "a" / "jobs.csv").read_text().splitlines()) == 183
    with_empty = [ln for ln in lines if ",," in ln or ln.endswith(",") or ln.startswith(",")]
    assert 0.02 < len(with_empty) / len(lines) < 0.05  # about 3.5%, like the historic file
    assert not lines[0][0].isalpha()  # no header row


def test_dirty_sample_data_carries_every_kind_of_bad_row(db: str, tmp_path: Path) -> None:
    run("sample", "--out", str(tmp_path), "--rows", "4000", "--dirty", "0.3", "--all-kinds")
    result = run("load", "--source", str(tmp_path), "--database-url", db, "--json")

    employees = json.loads(result.stdout)["loads"][2]
    assert set(employees["rejections"]) == {
        "missing_field",
        "bad_integer",
        "id_out_of_range",
        "bad_datetime",
        "unknown_department",
        "unknown_job",
        "field_count",
        "duplicate_id",
        "encoding",
    }


def test_every_command_has_help_text() -> None:
    def walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
        found = [(path, command)]
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                found += walk(sub, [*path, name])
        return found

    def words(text: str) -> str:
        return " ".join(text.replace("\b", "").split())

    commands = walk(main, [])
    assert {"load", "sample", "db"} <= {path[0] for path, _ in commands if path}
    for path, command in commands:
        result = run(*path, "--help")
        assert result.exit_code == 0, path
        shown = words(result.output)
        # the command's own docstring: its first paragraph, as Click shows it (rewrapped)
        summary = words((command.help or "").split("\f")[0].split("\n\n")[0])
        assert summary, f"hrcore {' '.join(path)} has no docstring"
        assert summary in shown, path
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"hrcore {' '.join(path)} {param.opts[0]} has no help"
                assert words(param.help) in shown, (path, param.opts[0])


def loads_one_job(db: str, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (a load of one job, with ``--json``) in a process of its own;
    check it inserted that job."""
    done = subprocess.run(
        command,
        env={**os.environ, "DATABASE_URL": db},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["loads"][0]["rows_inserted"] == 1
    return done


def test_the_installed_command_runs(db: str, tmp_path: Path) -> None:
    write(tmp_path, "jobs.csv", "1,Analyst\n")
    hrcore_command = str(Path(sys.executable).parent / "hrcore")
    loads_one_job(db, [hrcore_command, "load", "jobs", "--source", str(tmp_path), "--json"])


def test_a_load_imports_neither_the_job_queue_nor_the_backup_format(
    db: str, tmp_path: Path
) -> None:
    """They take about a fifth of a process's start; only the commands that use them
    import them."""
    write(tmp_path, "jobs.csv", "1,Analyst\n")
    code = (
        "import sys; from hrcore.cli import main; "
        "main(['load', 'jobs', '--source', sys.argv[1], '--json'], standalone_mode=False); "
        "print(sorted(set(m.split('.')[0] for m in sys.modules) & "
        "{'procrastinate', 'psycopg', 'fastavro'}), file=sys.stderr)"
    )
    done = loads_one_job(db, [sys.executable, "-c", code, str(tmp_path)])
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_the_embedded_server_starts_on_demand_and_stops(tmp_path: Path) -> None:
    env = {"HRCORE_HOME": str(tmp_path / "home"), "DATABASE_URL": ""}
    try:
        url = run("db", "url", env=env)
        assert url.exit_code == 0
        assert str(tmp_path / "home" / "pgdata") in url.stdout
        write(tmp_path, "departments.csv", "1,Sales\n")
        loaded = run("load", "departments", "--source", str(tmp_path), "--json", env=env)
        assert json.loads(loaded.stdout)["loads"][0]["rows_inserted"] == 1
    finally:
        stopped = run("db", "stop", env=env)
    assert "stopped" in stopped.stdout


@pytest.fixture
def small_company(db: str, tmp_path: Path) -> str:
    write(tmp_path, "departments.csv", "1,Sales\n2,Legal\n")
    write(tmp_path, "jobs.csv", "1,Analyst\n")
    write(
        tmp_path,
        "hired_employees.csv",
        "1,A,2021-02-01T00:00:00Z,1,1\n2,B,2021-05-01T00:00:00Z,1,1\n3,C,2021-08-01T00:00:00Z,2,1\n",
    )
    run("load", "--source", str(tmp_path), "--database-url", db, "--silent")
    return db


def test_metrics_as_csv_json_and_table(small_company: str) -> None:
    db = ["--database-url", small_company]
    csv = run("metrics", "hires-by-quarter", "--year", "2021", "--format", "csv", *db)
    assert csv.exit_code == 0
    assert csv.stdout.splitlines() == [
        "department,job,Q1,Q2,Q3,Q4",
        "Legal,Analyst,0,0,1,0",
        "Sales,Analyst,1,1,0,0",
    ]
    above = run("metrics", "departments-above-mean", "--format", "json", *db)
    assert json.loads(above.stdout) == {"items": [{"id": 1, "department": "Sales", "hired": 2}]}
    table = run("metrics", "hires-by-quarter", *db)
    assert "Sales" in table.stdout
    assert "Q4" in table.stdout


def test_metrics_of_a_year_without_hires_is_a_header_only_csv(small_company: str) -> None:
    result = run(
        "metrics",
        "hires-by-quarter",
        "--year",
        "1990",
        "--format",
        "csv",
        "--database-url",
        small_company,
    )
    assert result.stdout == "department,job,Q1,Q2,Q3,Q4\n"


@pytest.mark.parametrize("year", ["0", "10000", "twenty"])
def test_a_bad_year_exits_2(db: str, year: str) -> None:
    result = run("metrics", "departments-above-mean", "--year", year, "--database-url", db)
    assert result.exit_code == 2
    assert "year" in result.stderr.lower()


def test_backup_and_restore_from_the_command_line(small_company: str, tmp_path: Path) -> None:
    db = ["--database-url", small_company]
    made = run("backup", "all", "--to", str(tmp_path / "bk"), "--json", *db)
    assert made.exit_code == 0
    backups = json.loads(made.stdout)["backups"]
    assert [(b["table"], b["rows"]) for b in backups] == [
        ("departments", 2),
        ("jobs", 1),
        ("hired_employees", 3),
    ]
    query(small_company, "DELETE FROM hired_employees")

    restored = run("restore", "hired_employees", "--from", backups[2]["uri"], *db)
    assert restored.exit_code == 0
    assert "restored 3 rows" in restored.stdout
    assert query(small_company, "SELECT count(*) FROM hired_employees") == [(3,)]

    refused = run("restore", "jobs", "--from", backups[2]["uri"], *db)
    assert refused.exit_code == 1
    assert "not an AVRO backup of table jobs" in refused.stderr


def test_a_file_source_loads_only_its_table(db: str, tmp_path: Path) -> None:
    write(tmp_path, "departments.csv", "1,Sales\n")
    write(tmp_path, "jobs.csv", "1,Analyst\n")
    source = str(tmp_path / "departments.csv")
    result = run("load", "--source", source, "--database-url", db, "--json")

    assert result.exit_code == 0, result.output
    assert [x["table"] for x in json.loads(result.stdout)["loads"]] == ["departments"]
    assert query(db, "SELECT count(*) FROM jobs") == [(0,)]
    refused = run("load", "jobs", "--source", source, "--database-url", db)
    assert refused.exit_code == 2
    assert "is the file of departments, not of jobs" in refused.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["load", "--source", "x" * 5000],
        ["load", "--source", "s3://bucket/" + "k" * 5000],
        ["backup", "jobs", "--to", "/tmp/" + "d" * 5000],
        ["restore", "jobs", "--from", "s3://b/" + "k" * 5000 + ".avro"],
    ],
)
def test_a_location_too_long_is_a_usage_error(db: str, args: list[str]) -> None:
    result = run(*args, "--database-url", db)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: a location may be at most 1024 bytes long")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_backup_to_a_missing_bucket_or_a_dead_s3_is_one_line_and_exit_1(
    small_company: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = run("backup", "jobs", "--to", "s3://no-such-bucket/", "--database-url", small_company)
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: cannot write s3://no-such-bucket/jobs-")
    assert len(missing.stderr.strip().splitlines()) == 1

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    dead = run("backup", "jobs", "--to", "s3://bucket/", "--database-url", small_company)
    assert dead.exit_code == 1
    assert dead.stderr.startswith("error: cannot write s3://bucket/jobs-")
    assert "Traceback" not in dead.output
    assert len(dead.stderr.strip().splitlines()) == 1


def test_a_reload_of_the_same_files_is_skipped_and_verify_reads_them(
    db: str, tmp_path: Path
) -> None:
    assert run("sample", "--out", str(tmp_path), "--rows", "500").exit_code == 0
    first = run("load", "--source", str(tmp_path), "--database-url", db, "--json")
    again = run("load", "--source", str(tmp_path), "--database-url", db, "--json")
    verified = run("load", "--source", str(tmp_path), "--database-url", db, "--json", "--verify")

    loads = [json.loads(r.stdout)["loads"] for r in (first, again, verified)]
    assert [x["status"] for x in loads[1]] == ["skipped"] * 3
    assert [x["same_as"] for x in loads[1]] == [x["load_id"] for x in loads[0]]
    assert [x["rows_read"] for x in loads[1]] == [x["rows_read"] for x in loads[0]]
    assert [x["status"] for x in loads[2]] == ["succeeded"] * 3
    assert [x["rows_inserted"] + x["rows_updated"] for x in loads[2]] == [0, 0, 0]
