"""Referential integrity kept by the database per statement, not per row.

Row-level foreign keys checked every employee row on its own (about 5 µs per row
and per key: three times the cost of the insert itself). Statement-level triggers
with transition tables do the same work once per statement, for every writer
(hrcore, the API, a restore, someone with psql):

- An insert or update of employees locks the departments and jobs its rows name
  ``FOR KEY SHARE`` (till commit, as a foreign key would: a concurrent delete of
  them waits, then sees the employees) and counts them: fewer found than named is
  SQLSTATE 23503, and the whole statement is undone.
- A delete or re-key of departments or jobs, and a truncate, are refused (23503)
  while employees still name a row that is gone.
- Under REPEATABLE READ a delete or re-key of departments or jobs cannot see
  employees committed after its snapshot, so it is refused there (use READ
  COMMITTED, the default, or SERIALIZABLE, whose checks cover the race).

Where the server has them (PostgreSQL 18), ``NOT ENFORCED`` foreign keys document
the references for tools that read the catalog; they check nothing.
"""

from __future__ import annotations

from hrcore._db import Connection, execute, scalar
from hrcore._specs import TABLE_NOUNS, Column, TableSpec

_VIOLATION = "foreign_key_violation"  # SQLSTATE 23503


def _check_references(spec: TableSpec, rows: str) -> str:
    """PL/pgSQL: lock the rows ``rows`` (a transition table) reference, and fail when
    one is missing. One pass over ``rows`` collects the distinct ids per reference;
    the check is the lock: the ids wanted, against the rows locked."""
    columns = spec.references
    wanted = ", ".join(f"array_agg(DISTINCT {c.name})" for c in columns)
    into = ", ".join(f"ids_{k}" for k in range(len(columns)))
    checks = [
        f"""
    SELECT {wanted} INTO {into} FROM {rows};"""
    ]
    for k, column in enumerate(columns):
        target, name = column.references, column.name
        checks.append(f"""
    SELECT count(*) INTO found FROM (
        SELECT 1 FROM {target} AS t WHERE t.id = ANY(ids_{k}) FOR KEY SHARE
    ) AS f;
    IF found < coalesce(cardinality(ids_{k}), 0) THEN
        SELECT min(r.{name}) INTO missing FROM {rows} AS r
        WHERE NOT EXISTS (SELECT FROM {target} AS t WHERE t.id = r.{name});
        RAISE EXCEPTION USING ERRCODE = '{_VIOLATION}',
            MESSAGE = format('insert or update on table "{spec.name}" names a missing '
                             '{TABLE_NOUNS[str(target)]}: {name} %s is not in {target}', missing),
            TABLE = '{spec.name}', COLUMN = '{name}';
    END IF;""")
    return "".join(checks)


def referencing_triggers(spec: TableSpec, summary: dict[str, str], first: str) -> list[str]:
    """DDL of the statement-level triggers on a referencing table (employees): ``first``
    (a statement run first in each), the reference checks, and ``summary``'s
    statements (per event: ``insert``, ``update``, ``delete``, ``truncate``) in the
    same functions, so a statement's rows are captured once."""
    arrays = " ".join(f"ids_{k} integer[];" for k in range(len(spec.references)))
    declare = f"DECLARE found bigint; missing integer; {arrays}"
    bodies = {
        "insert": ("NEW TABLE AS new_rows", _check_references(spec, "new_rows")),
        "update": (
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
            _check_references(spec, "new_rows"),
        ),
        "delete": ("OLD TABLE AS old_rows", ""),
        "truncate": ("", ""),
    }
    ddl = []
    for event, (referencing, check) in bodies.items():
        function = f"hrcore_{spec.name}_{event}d"
        ddl.append(
            f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
{declare}
BEGIN
    {first}{check}
    {summary.get(event, "")}
    RETURN NULL;
END $$"""
        )
        ddl.append(f"DROP TRIGGER IF EXISTS {function} ON {spec.name}")
        transition = f"REFERENCING {referencing} " if referencing else ""
        ddl.append(
            f"CREATE TRIGGER {function} AFTER {event.upper()} ON {spec.name} "
            f"{transition}FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    return ddl


def _still_named(spec: TableSpec, column: Column, gone: str) -> str:
    """PL/pgSQL: fail when ``spec`` rows name an id of ``gone`` (a query of ids) that
    is no longer in the referenced table."""
    target = column.references
    return f"""
    SELECT min(e.{column.name}) INTO missing FROM {spec.name} AS e
    WHERE e.{column.name} IN ({gone})
      AND NOT EXISTS (SELECT FROM {target} AS t WHERE t.id = e.{column.name});
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '{_VIOLATION}',
            MESSAGE = format('{target} %s is still named by {spec.name}.{column.name}', missing),
            TABLE = '{target}';
    END IF;"""


def referenced_triggers(spec: TableSpec) -> list[str]:
    """DDL of the triggers on the tables ``spec`` references (departments, jobs): no
    delete, re-key or truncate may leave a ``spec`` row naming a missing row."""
    ddl = []
    for column in spec.references:
        target = str(column.references)
        isolation = f"""
    IF current_setting('transaction_isolation') = 'repeatable read'
       AND EXISTS (SELECT FROM old_rows) THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = 'deleting or re-keying {target} under REPEATABLE READ cannot be checked '
                      'against {spec.name} written meanwhile: use READ COMMITTED or SERIALIZABLE';
    END IF;"""
        check = _still_named(spec, column, "SELECT id FROM old_rows")
        for event in ("delete", "update"):
            function = f"hrcore_{target}_{event}d"
            ddl.append(
                f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE missing integer;
BEGIN{isolation}{check}
    RETURN NULL;
END $$"""
            )
            ddl.append(f"DROP TRIGGER IF EXISTS {function} ON {target}")
            ddl.append(
                f"CREATE TRIGGER {function} AFTER {event.upper()} ON {target} REFERENCING "
                f"OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
        function = f"hrcore_{target}_truncated"
        ddl.append(
            f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM {spec.name}) THEN
        RAISE EXCEPTION USING ERRCODE = '{_VIOLATION}',
            MESSAGE = 'cannot truncate {target}: {spec.name} rows name it';
    END IF;
    RETURN NULL;
END $$"""
        )
        ddl.append(f"DROP TRIGGER IF EXISTS {function} ON {target}")
        ddl.append(
            f"CREATE TRIGGER {function} AFTER TRUNCATE ON {target} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    return ddl


def replace_foreign_keys(conn: Connection, spec: TableSpec) -> None:
    """Drop the row-level foreign keys of an older schema; on PostgreSQL 18 and later,
    declare them ``NOT ENFORCED`` (documentation only: the triggers enforce)."""
    for column in spec.references:
        execute(
            conn,
            f"ALTER TABLE {spec.name} DROP CONSTRAINT IF EXISTS {spec.name}_{column.name}_fkey",
        )
    if int(scalar(conn, "SELECT current_setting('server_version_num')::int")) < 180000:
        return
    for column in spec.references:
        execute(
            conn,
            f"""ALTER TABLE {spec.name} ADD CONSTRAINT {spec.name}_{column.name}_fkey
                FOREIGN KEY ({column.name}) REFERENCES {column.references} (id) NOT ENFORCED""",
        )
