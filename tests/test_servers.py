"""The test servers themselves: a primary and its streaming hot-standby replica behave like
one (what the primary commits shows on the replica once replayed, not while replay is
paused; the replica is read-only), and the replica can be stopped and started again."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import query, wait_until
from tests.servers import ReplicatedServers
from tests.servers import replicated as replicated  # the fixture

READ_ONLY_SQL_TRANSACTION = "25006"


def test_the_replica_shows_what_the_primary_committed_once_replayed(
    replicated: ReplicatedServers,
) -> None:
    primary, replica = replicated.primary_url, replicated.replica_url
    query(primary, "CREATE TABLE replicated_rows (id int PRIMARY KEY)")
    try:
        replicated.caught_up()
        assert query(replica, "SELECT count(*) FROM replicated_rows") == [(0,)]

        replicated.pause_replay()
        try:
            query(primary, "INSERT INTO replicated_rows VALUES (1)")
            assert query(primary, "SELECT id FROM replicated_rows") == [(1,)]
            [(lsn,)] = query(primary, "SELECT pg_current_wal_lsn()::text")
            received = "SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn"
            wait_until(lambda: query(replica, received, (lsn,)) == [(True,)],
                       "the replica receives the insert's WAL")  # fmt: skip
            assert query(replica, "SELECT id FROM replicated_rows") == []
            with pytest.raises(AssertionError, match="paused"):
                replicated.caught_up()  # it would wait for nothing
        finally:
            replicated.resume_replay()
        replicated.caught_up()
        assert query(replica, "SELECT id FROM replicated_rows") == [(1,)]

        with (
            psycopg.connect(replica, autocommit=True) as conn,
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as refused,
        ):
            conn.execute("INSERT INTO replicated_rows VALUES (2)")
        assert refused.value.sqlstate == READ_ONLY_SQL_TRANSACTION
    finally:
        query(primary, "DROP TABLE replicated_rows")


def test_a_stopped_replica_refuses_connections_and_comes_back(
    replicated: ReplicatedServers,
) -> None:
    replicated.stop_replica()
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(replicated.replica_url, connect_timeout=5).close()
        query(replicated.primary_url, "CREATE TABLE while_stopped AS SELECT 7 AS n")
    finally:
        replicated.start_replica()
    replicated.caught_up()  # the primary kept the WAL it missed (its replication slot)
    assert query(replicated.replica_url, "SELECT n FROM while_stopped") == [(7,)]
    query(replicated.primary_url, "DROP TABLE while_stopped")
