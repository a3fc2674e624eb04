"""The metrics' summary stays exact whoever writes the employees, folds its deltas in
after loads, can be rebuilt, and replaces the previous version's."""

from __future__ import annotations

import uuid
from pathlib import Path

import hrcore
import polars as pl
from click.testing import CliRunner
from hrcore import _summary
from hrcore._db import connect, execute
from hrcore._schema import SCHEMA_VERSION
from hrcore.cli import main
from polars.testing import assert_frame_equal

from tests.conftest import query, summary_is_exact, with_database

DIRECT = """
SELECT d.department, j.job,
    count(*) FILTER (WHERE extract(quarter FROM e.datetime AT TIME ZONE 'UTC') = 1) AS "Q1",
    count(*) FILTER (WHERE extract(quarter FROM e.datetime AT TIME ZONE 'UTC') = 2) AS "Q2",
    count(*) FILTER (WHERE extract(quarter FROM e.datetime AT TIME ZONE 'UTC') = 3) AS "Q3",
    count(*) FILTER (WHERE extract(quarter FROM e.datetime AT TIME ZONE 'UTC') = 4) AS "Q4"
FROM hired_employees e JOIN departments d ON d.id = e.department_id JOIN jobs j ON j.id = e.job_id
WHERE extract(year FROM e.datetime AT TIME ZONE 'UTC') = 2021
GROUP BY d.department, j.job ORDER BY d.department COLLATE "C", j.job COLLATE "C"
"""


def metrics_are_exact(url: str) -> None:
    assert summary_is_exact(url)
    schema = {"department": pl.String, "job": pl.String} | dict.fromkeys(
        ("Q1", "Q2", "Q3", "Q4"), pl.Int64
    )
    direct = pl.DataFrame(query(url, DIRECT), schema=schema, orient="row")
    assert_frame_equal(hrcore.hires_by_quarter(2021, database_url=url), direct)


def deltas(url: str) -> int:
    return int(query(url, "SELECT count(*) FROM hire_count_deltas")[0][0])


def test_the_summary_stays_exact_whoever_writes_the_employees(db: str, tmp_path: Path) -> None:
    hrcore.write_sample(tmp_path, rows=3000, seed=7, dirty=0.05, all_kinds=True)
    hrcore.load_all(tmp_path, database_url=db)
    metrics_are_exact(db)
    assert deltas(db) == 0  # a file load folds its deltas in when it ends

    rows = [
        {"id": i, "name": f"P{i}", "datetime": f"2021-0{i % 9 + 1}-01T00:00:00Z",
         "department_id": i % 12 + 1, "job_id": i % 183 + 1}
        for i in range(2990, 3300)
    ]  # fmt: skip
    hrcore.load_rows("employees", rows, database_url=db)  # updates and inserts
    metrics_are_exact(db)
    statements = [
        "INSERT INTO hired_employees SELECT g, 'S' || g, timestamptz '2021-03-31 23:30:00-05' "
        "+ g * interval '1 hour', 1 + g % 12, 1 + g % 183 FROM generate_series(5000, 5500) g",
        "UPDATE hired_employees SET datetime = datetime + interval '100 days' WHERE id % 7 = 0",
        "UPDATE hired_employees SET department_id = 1 + (department_id % 12) WHERE id % 5 = 0",
        "UPDATE hired_employees SET name = name || '!' WHERE id % 3 = 0",  # no count moves
        "DELETE FROM hired_employees WHERE id % 11 = 0",
        "INSERT INTO hired_employees VALUES (6000, 'U', '2021-12-31T23:59:59Z', 2, 2), "
        "(5000, 'U', '2021-01-01T00:00:00Z', 3, 3) ON CONFLICT (id) DO UPDATE "
        "SET datetime = excluded.datetime, department_id = excluded.department_id",
    ]
    for sql in statements:
        query(db, sql)
        metrics_are_exact(db)
    assert deltas(db) > 0

    saved = hrcore.backup("hired_employees", to=tmp_path / "b", database_url=db)
    query(db, "DELETE FROM hired_employees WHERE id < 1000")
    metrics_are_exact(db)
    hrcore.restore("hired_employees", from_=saved.uri, database_url=db)
    metrics_are_exact(db)
    query(db, "TRUNCATE hired_employees")
    metrics_are_exact(db)
    assert (deltas(db), query(db, "SELECT count(*) FROM hire_counts")) == (0, [(0,)])


def test_many_deltas_fold_into_exact_counts_a_page_at_a_time(db: str, tmp_path: Path) -> None:
    hrcore.write_sample(tmp_path, rows=300, seed=5, dirty=0)
    hrcore.load_all(tmp_path, database_url=db)
    for k in range(23):  # each statement leaves one delta
        first = 1000 + 20 * k
        query(
            db,
            f"INSERT INTO hired_employees SELECT g, 'M' || g, timestamptz '2021-01-01Z' "
            f"+ g * interval '5 days', 1 + g % 12, 1 + g % 183 "
            f"FROM generate_series({first}, {first + 19}) g",
        )
    query(
        db, "UPDATE hired_employees SET datetime = datetime + interval '45 days' WHERE id % 4 = 0"
    )
    query(db, "DELETE FROM hired_employees WHERE id % 9 = 0")
    assert deltas(db) == 25

    with connect(db) as conn:
        assert _summary.compact(conn, page=4)

    assert deltas(db) == 0
    metrics_are_exact(db)
    assert query(db, "SELECT count(*) FROM hire_counts WHERE hires <= 0") == [(0,)]


def test_a_summary_left_stale_by_bypassed_triggers_is_rebuilt(db: str, tmp_path: Path) -> None:
    hrcore.write_sample(tmp_path, rows=500, seed=3, dirty=0)
    hrcore.load_all(tmp_path, database_url=db)
    with connect(db) as conn:  # a superuser's bulk fix that skips triggers
        execute(conn, "SET session_replication_role = replica")
        execute(conn, "DELETE FROM hired_employees WHERE id % 2 = 0")
    assert not summary_is_exact(db)

    result = CliRunner().invoke(main, ["db", "rebuild-summary", "--database-url", db])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("summary rebuilt: ")
    metrics_are_exact(db)


V1_SCHEMA = [  # what a database of the previous version held (row-level FKs, sharded counts)
    "CREATE TABLE departments (id integer NOT NULL PRIMARY KEY, department text NOT NULL)",
    "CREATE TABLE jobs (id integer NOT NULL PRIMARY KEY, job text NOT NULL)",
    """CREATE TABLE hired_employees (id integer NOT NULL PRIMARY KEY, name text NOT NULL,
        datetime timestamptz NOT NULL, department_id integer NOT NULL, job_id integer NOT NULL,
        FOREIGN KEY (department_id) REFERENCES departments (id) DEFERRABLE,
        FOREIGN KEY (job_id) REFERENCES jobs (id) DEFERRABLE)""",
    """CREATE TABLE hire_counts (year integer NOT NULL, quarter integer NOT NULL,
        department_id integer NOT NULL, job_id integer NOT NULL, shard smallint NOT NULL,
        hires bigint NOT NULL, PRIMARY KEY (year, quarter, department_id, job_id, shard))""",
    """CREATE FUNCTION hrcore_count_new() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RETURN NULL; END $$""",
    """CREATE TRIGGER hire_counts_insert AFTER INSERT ON hired_employees
       REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hrcore_count_new()""",
    "INSERT INTO departments VALUES (1, 'Sales')",
    "INSERT INTO jobs VALUES (1, 'Analyst')",
    "INSERT INTO hired_employees VALUES (1, 'A', '2021-05-05T00:00:00Z', 1, 1)",
    "INSERT INTO hire_counts VALUES (2021, 2, 1, 1, 3, 1)",
]


def test_a_database_of_the_previous_version_is_brought_up_to_date(server_url: str) -> None:
    name = f"hrcore_v1_{uuid.uuid4().hex[:10]}"
    query(server_url, f"CREATE DATABASE {name}")
    url = with_database(server_url, name)
    try:
        for statement in V1_SCHEMA:
            query(url, statement)

        assert hrcore.hires_by_quarter(2021, database_url=url).rows() == [
            ("Sales", "Analyst", 0, 1, 0, 0)
        ]
        enforced = query(
            url,
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'hired_employees'::regclass "
            "AND contype = 'f' AND conenforced IS NOT FALSE"
            if int(query(url, "SELECT current_setting('server_version_num')")[0][0]) >= 180000
            else "SELECT count(*) FROM pg_constraint "
            "WHERE conrelid = 'hired_employees'::regclass AND contype = 'f'",
        )
        assert enforced == [(0,)]
        assert query(url, "SELECT version FROM hrcore_schema") == [(SCHEMA_VERSION,)]
        storage = "SELECT DISTINCT attstorage FROM pg_attribute WHERE attnum > 0 AND attrelid = "
        assert query(url, storage + "'hire_count_deltas'::regclass") == [("e",)]  # uncompressed
        query(url, "INSERT INTO hired_employees VALUES (2, 'B', '2021-08-05T00:00:00Z', 1, 1)")
        metrics_are_exact(url)
    finally:
        query(server_url, f"DROP DATABASE {name} WITH (FORCE)")
