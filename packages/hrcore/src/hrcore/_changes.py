"""Change counters: every statement that writes one of the tables (hrcore's, the API's, a
restore's or someone's in psql) bumps that table's sequence, from its triggers.

A load notes the counters before it writes and after: when they moved by exactly
its own statements, the table is as the load left it, and a later load of the same
unchanged file can be skipped as long as the counters have not moved since. A
sequence is never rolled back and never waits for other writers, so a bump costs
next to nothing and errs only on the safe side (a statement that failed still
counts as a change).
"""

from __future__ import annotations

from hrcore._db import Connection, execute
from hrcore._specs import TABLES, TableSpec

#: statement-level triggers fired by one batch statement (INSERT ... ON CONFLICT DO
#: UPDATE fires the INSERT and the UPDATE ones), each bumping the table's counter
BUMPS_PER_BATCH = 2


def sequence(table: str) -> str:
    return f"hrcore_changes_{table}"


def bump(table: str) -> str:
    """PL/pgSQL: count one more statement that wrote ``table``."""
    return f"PERFORM nextval('{sequence(table)}');"


def ddl(counted_by_own_triggers: TableSpec) -> list[str]:
    """The sequences, and a bumping trigger on each table whose own triggers do not
    bump already (``counted_by_own_triggers`` bumps in its integrity triggers)."""
    statements = [f"CREATE SEQUENCE IF NOT EXISTS {sequence(name)}" for name in TABLES]
    for name in TABLES:
        if name == counted_by_own_triggers.name:
            continue
        function = f"hrcore_{name}_changed"
        statements += [
            f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {bump(name)}
    RETURN NULL;
END $$""",
            f"DROP TRIGGER IF EXISTS {function} ON {name}",
            f"CREATE TRIGGER {function} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {name} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        ]
    return statements


def read(conn: Connection, tables: list[str]) -> dict[str, int]:
    """The counters of ``tables`` now (one round trip)."""
    found = execute(
        conn,
        "SELECT "
        + ", ".join(
            f"(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence(t)})"
            for t in tables
        ),
    )
    return {t: int(v) for t, v in zip(tables, found[0], strict=True)}


def state(counters: dict[str, int]) -> str:
    """Counters as one comparable text: ``table=value;...`` in table order."""
    return ";".join(f"{t}={counters[t]}" for t in TABLES if t in counters)


def parse(text: str) -> dict[str, int]:
    """The counters of a :func:`state` text."""
    return {k: int(v) for k, v in (kv.split("=") for kv in text.split(";"))}


def left(conn: Connection, spec: TableSpec, before: dict[str, int], bumps: int) -> str | None:
    """The state a load left its table in, if its own statements (``bumps`` of them)
    were the only writes since ``before`` (else None: the load cannot vouch for it)."""
    after = read(conn, [spec.name])[spec.name]
    if after != before[spec.name] + bumps:
        return None
    return state({**before, spec.name: after})


def watched(spec: TableSpec) -> list[str]:
    """The tables whose changes matter to a load of ``spec``: it and those it references."""
    return [name for name in TABLES if name == spec.name or any(
        c.references == name for c in spec.references
    )]  # fmt: skip
