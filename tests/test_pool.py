"""The connection pool: bounded, reused, and healed when a connection dies while idle."""

from __future__ import annotations

import hrcore
import pytest
from hrcore import ConnectionPool, DatabaseError, NotFoundError
from hrcore._db import connect, scalar


def backend_pid(url: str) -> int:
    with connect(url) as conn:
        return int(scalar(conn, "SELECT pg_backend_pid()"))


def test_a_pool_reuses_its_connections(db: str) -> None:
    with ConnectionPool(db, size=2):
        pids = {backend_pid(db) for _ in range(20)}
    assert len(pids) == 1


def test_a_full_pool_makes_the_next_borrower_wait_then_fail_clearly(db: str) -> None:
    with ConnectionPool(db, size=2, timeout=0.05) as pool:
        with pool.connection() as first, pool.connection() as second:
            held = {int(scalar(c, "SELECT pg_backend_pid()")) for c in (first, second)}
            with pytest.raises(DatabaseError, match="all 2 of the pool are in use"):
                backend_pid(db)
            with connect(db, pooled=False) as own:  # a second connection is still possible
                assert int(scalar(own, "SELECT pg_backend_pid()")) not in held
        assert backend_pid(db) in held  # freed: handed out again, not a new one


def test_a_connection_that_died_while_idle_is_replaced(db: str) -> None:
    with ConnectionPool(db, size=1, ping_after=0):
        dead = backend_pid(db)
        with connect(db, pooled=False) as other:
            assert scalar(other, "SELECT pg_terminate_backend($1::int)", (dead,)) is True
        replaced = backend_pid(db)
    assert replaced != dead


def test_a_missing_row_does_not_cost_the_pool_its_connection(db: str) -> None:
    with ConnectionPool(db, size=1):
        before = backend_pid(db)
        with pytest.raises(NotFoundError):
            hrcore.get_load(12345, database_url=db)
        assert backend_pid(db) == before
        # a failed statement: that connection is closed
        with pytest.raises(DatabaseError), connect(db) as conn:
            scalar(conn, "SELECT no_such_column")
        assert backend_pid(db) != before
