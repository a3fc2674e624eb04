"""HRCORE_READ_DATABASE_URL: the API's reads on a real streaming replica, and on the writer
when the replica is down or too far behind. The primary and the replica are servers of
the test's own on loopback (``tests/servers.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hrcore
import pytest
from hrcore_api.app import create_app
from hrcore_api.settings import Settings
from litestar.testing import TestClient

from tests.conftest import REFERENCE_CSV, query, wait_until, write
from tests.servers import ReplicatedServers
from tests.servers import replicated as replicated  # the fixture


def employee(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"Name {i}", "datetime": "2021-03-01T10:00:00Z",
            "department_id": 1, "job_id": 1}  # fmt: skip


@pytest.fixture(scope="module")
def servers(
    replicated: ReplicatedServers, tmp_path_factory: pytest.TempPathFactory
) -> ReplicatedServers:
    """The pair, with hrcore's tables and departments and jobs 1-3 on the primary."""
    folder = tmp_path_factory.mktemp("refs")
    for name, text in REFERENCE_CSV.items():
        hrcore.load(write(folder, name, text), database_url=replicated.primary_url)
    replicated.caught_up()
    return replicated


def app(servers: ReplicatedServers, **settings: Any) -> TestClient[Any]:
    return TestClient(
        app=create_app(
            Settings(
                database_url=servers.primary_url, read_database_url=servers.replica_url, **settings
            )
        )
    )


@pytest.fixture
def paused(servers: ReplicatedServers) -> Iterator[ReplicatedServers]:
    """Replay paused on the replica, right after it replayed a fresh transaction (so
    that its lag starts from now), resumed at the end."""
    query(servers.primary_url, "SELECT txid_current()")  # a transaction to replay
    servers.caught_up()
    servers.pause_replay()
    try:
        yield servers
    finally:
        servers.resume_replay()
        servers.caught_up()


def received(servers: ReplicatedServers) -> None:
    """Wait until the replica has received (not replayed) all the primary wrote."""
    [(lsn,)] = query(servers.primary_url, "SELECT pg_current_wal_lsn()::text")
    wait_until(
        lambda: query(servers.replica_url, "SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn",
                      (lsn,)) == [(True,)],
        "the replica receives the primary's WAL",
    )  # fmt: skip


def test_reads_go_to_the_replica_and_a_loads_status_to_the_writer(
    paused: ReplicatedServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # backups go to ./backups
    with app(paused, read_max_lag=3600) as api:
        added = api.post("/employees", json={"rows": [employee(101)]})  # on the writer
        assert added.status_code == 200, added.text
        load_id = added.json()["load_id"]
        received(paused)
        unseen = [
            api.get("/employees/101").status_code,
            [e["id"] for e in api.get("/employees").json()["items"]],
            load_id in [r["load_id"] for r in api.get("/loads").json()["items"]],
            api.post("/backups/employees").json()["rows"],
        ]
        own = api.get(f"/loads/{load_id}")  # the caller's own write: from the writer
        health = api.get("/health-db").json()

        paused.resume_replay()
        paused.caught_up()
        seen = [
            api.get("/employees/101").status_code,
            [e["id"] for e in api.get("/employees").json()["items"]],
            load_id in [r["load_id"] for r in api.get("/loads").json()["items"]],
            api.post("/backups/employees").json()["rows"],
        ]
    assert query(paused.primary_url, "SELECT id FROM hired_employees WHERE id = 101") == [(101,)]
    assert unseen == [404, [], False, 0]
    assert (own.status_code, own.json()["rows_inserted"]) == (200, 1)
    assert health["reads"] == "replica"
    assert health["replica"]["status"] == "ok"
    assert seen == [200, [101], True, 1]
    query(paused.primary_url, "DELETE FROM hired_employees")


def test_reads_go_to_the_writer_while_the_replica_lags(paused: ReplicatedServers) -> None:
    with app(paused, read_max_lag=0.5) as api:
        assert api.post("/employees", json={"rows": [employee(102)]}).status_code == 200
        received(paused)
        wait_until(lambda: api.get("/health-db").json()["reads"] == "writer",
                   "reads leave the replica once it is 0.5 s behind")  # fmt: skip
        health = api.get("/health-db").json()
        answer = api.get("/employees/102")
    assert health["replica"]["status"] == "lagging"
    assert health["replica"]["lag_seconds"] > 0.5
    assert answer.status_code == 200  # the writer has it; the paused replica has not
    assert query(paused.replica_url, "SELECT count(*) FROM hired_employees WHERE id = 102") == [
        (0,)
    ]
    query(paused.primary_url, "DELETE FROM hired_employees")


def test_reads_go_to_the_writer_while_the_replica_is_down(servers: ReplicatedServers) -> None:
    query(servers.primary_url, "INSERT INTO hired_employees VALUES (103, 'N', now(), 1, 1)")
    servers.caught_up()
    with app(servers) as api:
        assert api.get("/health-db").json()["reads"] == "replica"
        servers.stop_replica()
        try:
            answers = [api.get("/employees/103"), api.get("/metrics/hires-by-quarter"),
                       api.get("/loads")]  # fmt: skip
            health = api.get("/health-db")
        finally:
            servers.start_replica()
        wait_until(lambda: api.get("/health-db").json()["reads"] == "replica",
                   "reads come back to the replica")  # fmt: skip
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert (health.status_code, health.json()["reads"]) == (200, "writer")
    assert health.json()["replica"]["status"] == "down"
    assert servers.replica_url.rsplit("@", 1)[-1] not in health.text  # no address given out
    query(servers.primary_url, "DELETE FROM hired_employees")
