"""The connection pool: bounded, reused, healed when a connection dies while idle, and
passed explicitly to the calls that use it (no registry behind the scenes)."""

from __future__ import annotations

import hrcore
import pytest
from hrcore import ConnectionPool, DatabaseError, NotFoundError
from hrcore._db import connect, scalar


def backend_pid(pool: ConnectionPool) -> int:
    with connect(pool=pool) as conn:
        return int(scalar(conn, "SELECT pg_backend_pid()"))


def test_a_pool_reuses_its_connections(db: str) -> None:
    with ConnectionPool(db, size=2) as pool:
        pids = {backend_pid(pool) for _ in range(20)}
    assert len(pids) == 1


def test_a_call_uses_the_pool_it_is_given_and_no_other(db: str) -> None:
    with ConnectionPool(db, size=1) as pool:
        held = backend_pid(pool)
        assert hrcore.check_database(pool=pool)
        assert backend_pid(pool) == held
        with connect(db) as own:  # without the pool: a connection of its own
            assert int(scalar(own, "SELECT pg_backend_pid()")) != held


def test_a_full_pool_makes_the_next_borrower_wait_then_fail_clearly(db: str) -> None:
    with ConnectionPool(db, size=2, timeout=0.05) as pool:
        with pool.connection() as first, pool.connection() as second:
            held = {int(scalar(c, "SELECT pg_backend_pid()")) for c in (first, second)}
            with pytest.raises(DatabaseError, match="all 2 of the pool are in use"):
                backend_pid(pool)
            with connect(db) as own:  # a connection of its own is still possible
                assert int(scalar(own, "SELECT pg_backend_pid()")) not in held
        assert backend_pid(pool) in held  # freed: handed out again, not a new one


def test_a_connection_that_died_while_idle_is_replaced(db: str) -> None:
    with ConnectionPool(db, size=1, ping_after=0) as pool:
        dead = backend_pid(pool)
        with connect(db) as other:
            assert scalar(other, "SELECT pg_terminate_backend($1::int)", (dead,)) is True
        replaced = backend_pid(pool)
    assert replaced != dead


def test_a_missing_row_does_not_cost_the_pool_its_connection(db: str) -> None:
    with ConnectionPool(db, size=1) as pool:
        before = backend_pid(pool)
        with pytest.raises(NotFoundError):
            hrcore.get_load(12345, pool=pool)
        assert backend_pid(pool) == before
        # a failed statement: that connection is closed
        with pytest.raises(DatabaseError), connect(pool=pool) as conn:
            scalar(conn, "SELECT no_such_column")
        assert backend_pid(pool) != before
