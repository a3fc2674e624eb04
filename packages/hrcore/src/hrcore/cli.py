"""The ``hrcore`` command: a thin layer over the library.

Exit codes: 0 done (rejected rows included), 1 a load, the storage or the database
failed, 2 a usage error, 130 interrupted (Ctrl-C or SIGTERM: a load stops at its
next batch boundary). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import msgspec
import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import hrcore

F = TypeVar("F", bound=Callable[..., Any])

_stderr = Console(stderr=True)
_REPORT_FIELDS = (
    "table", "source", "load_id", "status", "rows_read", "rows_inserted", "rows_updated",
    "rows_unchanged", "rows_rejected", "batches", "seconds", "rejections", "error", "same_as",
)  # fmt: skip


def _stdout() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=120)


def _fail(message: str, code: int) -> None:
    _stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


INTERRUPTED = 130


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def _errors() -> Iterator[None]:
    """Errors as one line and an exit code, never a traceback; SIGTERM as Ctrl-C (and Ctrl-C
    honoured even when the shell that started us ignores it)."""
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except hrcore.UsageError as exc:
        _fail(str(exc), 2)
    except hrcore.LoadCancelledError as exc:
        _fail(hrcore.redact(str(exc)), INTERRUPTED)
    except hrcore.HrcoreError as exc:
        _fail(hrcore.redact(str(exc)), 1)
    except KeyboardInterrupt:
        _fail("interrupted", INTERRUPTED)
    except Exception as exc:  # a bug: still one line (HRCORE_DEBUG=1 shows the traceback)
        if os.environ.get("HRCORE_DEBUG"):
            raise
        text = hrcore.redact(" ".join(str(exc).split())) or type(exc).__name__
        _fail(f"unexpected {type(exc).__name__}: {text}", 1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hrcore")
def main() -> None:
    """Move HR CSV files (departments, jobs, hired employees) into PostgreSQL."""


def _database_option(f: F) -> F:
    return click.option(
        "--database-url",
        envvar="DATABASE_URL",
        help="PostgreSQL URL [env DATABASE_URL; default: the embedded server].",
    )(f)


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[hrcore.Progress], None] | None]:
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=_stderr, transient=True) as bar:
        tasks: dict[tuple[str, str], Any] = {}

        def update(p: hrcore.Progress) -> None:
            key = (p.table, p.phase)
            if key not in tasks:
                verb = "reading" if p.phase == "read" else "writing"
                tasks[key] = bar.add_task(f"{verb} {p.table}", total=p.total)
            bar.update(tasks[key], completed=p.done, total=p.total)

        yield update


def _print_reports(reports: list[hrcore.LoadReport]) -> None:
    table = Table(title="hrcore load")
    for name in (
        "table",
        "status",
        "read",
        "inserted",
        "updated",
        "unchanged",
        "rejected",
        "batches",
        "seconds",
    ):
        table.add_column(name, justify="left" if name in ("table", "status") else "right")
    for r in reports:
        table.add_row(
            r.table, r.status, *(f"{n:,}" for n in (r.rows_read, r.rows_inserted, r.rows_updated,
            r.rows_unchanged, r.rows_rejected, r.batches)), f"{r.seconds:.2f}",
        )  # fmt: skip
    out = _stdout()
    out.print(table)
    for r in reports:
        if r.rejections:
            reasons = ", ".join(f"{k}: {v:,}" for k, v in r.rejections.items())
            out.print(
                f"{r.table} (load {r.load_id}) rejected rows by reason: {reasons}", highlight=False
            )


def _lock_timeout_option(f: F) -> F:
    return click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0, min_open=True, max=86400),
        help="Seconds to wait for a busy table or file [env HRCORE_LOCK_TIMEOUT; default 30].",
    )(f)


@main.command()
@click.argument("tables", nargs=-1, metavar="[TABLE]...")
@click.option(
    "--source",
    help="File, folder, file:// or s3://bucket/prefix/ "
    "[default: s3://$S3_BUCKET_NAME/, else the bundled samples]. A file loads only its table.",
)
@click.option(
    "--batch-size",
    type=int,
    default=1000,
    show_default=True,
    help="Rows per transaction, 1 to 1000.",
)
@click.option(
    "--writers",
    type=int,
    default=2,
    show_default=True,
    help="Connections writing batches side by side, 1 to 16.",
)
@_lock_timeout_option
@click.option(
    "--verify",
    is_flag=True,
    help="Read and compare a file even when the table is as its last load of it left it.",
)
@click.option(
    "--enqueue",
    is_flag=True,
    help="Put the load(s) on the queue for `hrcore worker` and print their ids; don't wait.",
)
@_database_option
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON on stdout.")
@click.option("--silent", is_flag=True, help="No progress bar.")
def load(
    tables: tuple[str, ...],
    source: str | None,
    batch_size: int,
    writers: int,
    lock_timeout: float | None,
    verify: bool,
    enqueue: bool,
    database_url: str | None,
    as_json: bool,
    silent: bool,
) -> None:
    """Load TABLE(s) from CSV (all three, referenced tables first, when none is named).

    A file whose content is that of the table's last load is skipped (--verify reads it).
    With --enqueue, the loads are queued for `hrcore worker` (a file already queued or
    running gives that load's id).
    """
    reports: list[hrcore.LoadReport] = []
    failed: tuple[str, int] | None = None
    with _errors():
        hrcore.check_batch_size(batch_size)
        hrcore.check_writers(writers)
        location = source or hrcore.default_source()
        names = hrcore.tables_for(location, tables or None)
        if enqueue:
            queued = [
                hrcore.enqueue(location, table=name, batch_size=batch_size,
                               database_url=database_url, verify=verify)
                for name in names
            ]  # fmt: skip
            _print_queued(queued, as_json)
            return
        with _progress_bar(not silent and not as_json) as progress:
            for name in names:
                try:
                    reports.append(
                        hrcore.load(location, table=name, batch_size=batch_size,
                                    database_url=database_url, progress=progress,
                                    writers=writers, lock_timeout=lock_timeout,
                                    verify=verify)
                    )  # fmt: skip
                except hrcore.LoadFailedError as exc:
                    reports.append(exc.report)
                    cancelled = isinstance(exc, hrcore.LoadCancelledError)
                    failed = (hrcore.redact(str(exc)), INTERRUPTED if cancelled else 1)
                    break
    if as_json:
        click.echo(
            json.dumps({"loads": [{k: r.to_dict()[k] for k in _REPORT_FIELDS} for r in reports]})
        )
    else:
        _print_reports(reports)
    if failed:
        _fail(*failed)


def _print_queued(reports: list[hrcore.LoadReport], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"loads": [r.to_dict() for r in reports]}))
        return
    for r in reports:
        click.echo(f"{r.table}: load {r.load_id} {r.status} ({r.source})")


def _known_errors_in_one_line(record: logging.LogRecord) -> bool:
    """A job that ended on one of hrcore's errors is logged with its message, not its
    traceback (the ledger has the rest); a bug keeps its traceback."""
    error = record.exc_info[1] if record.exc_info else None
    while error is not None and not isinstance(error, hrcore.HrcoreError):
        error = error.__cause__
    if error is not None:
        record.msg = f"{record.getMessage()}: {hrcore.redact(str(error).splitlines()[0])}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
    return True


@main.command()
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Loads run at once by this worker.",
)
@click.option(
    "--writers",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="Connections writing batches for each load.",
)
@click.option(
    "--until-empty",
    is_flag=True,
    help="Stop once no queued load is ready (else run until stopped).",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0.1, max=3600),
    default=10.0,
    show_default=True,
    help="Seconds between this worker's heartbeats.",
)
@click.option(
    "--stalled-after",
    type=click.FloatRange(min=0.2, max=86400),
    default=30.0,
    show_default=True,
    help="Seconds of silence after which a worker counts as dead and its load is queued again.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0, max=86400),
    default=60.0,
    show_default=True,
    help="On SIGTERM, seconds to let running loads finish before stopping them at a batch "
    "boundary (they are queued again).",
)
@_database_option
def worker(
    concurrency: int,
    writers: int,
    until_empty: bool,
    heartbeat: float,
    stalled_after: float,
    grace: float,
    database_url: str | None,
) -> None:
    """Run queued loads (from the API or `hrcore load --enqueue`) until stopped.

    Workers on any number of machines share the queue, which lives in the database.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_known_errors_in_one_line)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    with _errors():
        settings = hrcore.WorkerSettings(
            concurrency=concurrency, writers=writers, heartbeat=heartbeat,
            stalled_after=stalled_after, grace=grace,
        )  # fmt: skip
        hrcore.run_worker(database_url=database_url, settings=settings, until_empty=until_empty)


@main.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write the three CSV files to.",
)
@click.option(
    "--rows", type=click.IntRange(min=0), default=2000, show_default=True, help="Employee rows."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same files)."
)
@click.option(
    "--dirty",
    type=click.FloatRange(0, 1),
    default=0.035,
    show_default=True,
    help="Fraction of bad employee rows.",
)
@click.option("--all-kinds", is_flag=True, help="Every kind of bad row, not only empty fields.")
def sample(out: str, rows: int, seed: int, dirty: float, all_kinds: bool) -> None:
    """Write challenge-shaped sample CSV files (no header), reproducibly."""
    with _errors():
        paths = hrcore.write_sample(out, rows=rows, seed=seed, dirty=dirty, all_kinds=all_kinds)
    for path in paths.values():
        click.echo(str(path))


@main.group()
def db() -> None:
    """The database: schema and the embedded server."""


@db.command("init")
@_database_option
def db_init(database_url: str | None) -> None:
    """Create the tables and the load ledger if they do not exist."""
    with _errors(), hrcore.connect(database_url) as conn:
        hrcore.init_schema(conn)
    click.echo("schema ready")


@db.command("rebuild-summary")
@_database_option
def db_rebuild_summary(database_url: str | None) -> None:
    """Recompute the metrics' summary from the employees (after triggers were bypassed)."""
    with _errors():
        keys = hrcore.rebuild_summary(database_url=database_url)
    click.echo(f"summary rebuilt: {keys:,} (year, quarter, department, job) counts")


@db.command("url")
@_database_option
def db_url(database_url: str | None) -> None:
    """Print the database URL in use (starting the embedded server if it is the one)."""
    with _errors():
        click.echo(hrcore.redact(hrcore.database_url(database_url)))


@db.command("start")
def db_start() -> None:
    """Start the embedded server (data in $HRCORE_HOME/pgdata or a per-user folder)."""
    with _errors():
        url = hrcore.start_embedded()
    click.echo(f"embedded PostgreSQL running: {url} (data: {hrcore.embedded_data_dir()})")


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    with _errors():
        stopped = hrcore.stop_embedded()
    click.echo("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


def _print_frame(frame: pl.DataFrame, fmt: str, title: str) -> None:
    if fmt == "csv":
        click.echo(frame.write_csv(), nl=False)
    elif fmt == "json":
        click.echo(json.dumps({"items": frame.to_dicts()}))
    else:
        table = Table(title=title)
        for name, dtype in frame.schema.items():
            table.add_column(name, justify="right" if dtype.is_numeric() else "left")
        for row in frame.iter_rows():
            table.add_row(*(str(v) for v in row))
        _stdout().print(table)


def _metric_options(f: F) -> F:
    f = click.option(
        "--year", type=int, default=2021, show_default=True, help="Year of hire (UTC)."
    )(f)
    f = click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "csv", "json"]),
        default="table",
        show_default=True,
        help="table for people, csv or json for programs.",
    )(f)
    return _database_option(f)


@main.group()
def metrics() -> None:
    """The stakeholders' two questions, computed in PostgreSQL."""


@metrics.command("hires-by-quarter")
@_metric_options
def metrics_hires_by_quarter(year: int, fmt: str, database_url: str | None) -> None:
    """Hires of YEAR per department and job, by quarter (department, job, Q1..Q4)."""
    with _errors():
        frame = hrcore.hires_by_quarter(year, database_url=database_url)
    _print_frame(frame, fmt, f"hires by quarter, {year}")


@metrics.command("departments-above-mean")
@_metric_options
def metrics_departments_above_mean(year: int, fmt: str, database_url: str | None) -> None:
    """Departments that hired more than the mean of all departments in YEAR."""
    with _errors():
        frame = hrcore.departments_above_mean(year, database_url=database_url)
    _print_frame(frame, fmt, f"departments above the mean, {year}")


@main.command()
@click.option("--year", type=int, default=2021, show_default=True, help="Year of hire (UTC).")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="The HTML file to write.",
)
@_database_option
def report(year: int, out: str, database_url: str | None) -> None:
    """Write the two metrics of YEAR as one self-contained HTML file (tables and charts,
    nothing fetched when it is opened), to read in a browser or send by mail."""
    with _errors():
        page = hrcore.metrics_report(year, database_url=database_url)
        try:
            with open(out, "w", encoding="utf-8") as file:
                file.write(page)
        except OSError as exc:
            raise hrcore.UsageError(f"cannot write {out}: {exc.strerror}") from exc
    click.echo(f"{out}: hires of {year}, two tables and two charts")


@main.command()
@click.argument("table", metavar="TABLE|all")
@click.option(
    "--to",
    help="Folder, file or s3:// prefix [default: s3://$S3_BUCKET_NAME/backups/, else backups/].",
)
@_database_option
@click.option("--json", "as_json", is_flag=True, help="Print the files as JSON on stdout.")
def backup(table: str, to: str | None, database_url: str | None, as_json: bool) -> None:
    """Back up TABLE (or all tables) to AVRO, one <table>-<UTC time>.avro file each."""
    with _errors():
        if table == "all":
            made = hrcore.backup_all(to=to, database_url=database_url)
        else:
            made = [hrcore.backup(table, to=to, database_url=database_url)]
    if as_json:
        click.echo(json.dumps({"backups": [msgspec.to_builtins(b) for b in made]}))
        return
    for b in made:
        click.echo(f"{b.table}: {b.rows:,} rows -> {b.uri}")


@main.command()
@click.argument("table")
@click.option("--from", "from_", required=True, help="AVRO backup file (path or s3:// URI).")
@_lock_timeout_option
@_database_option
def restore(table: str, from_: str, lock_timeout: float | None, database_url: str | None) -> None:
    """Replace TABLE's rows with a backup's, in one transaction (all or nothing)."""
    with _errors():
        done = hrcore.restore(
            table, from_=from_, database_url=database_url, lock_timeout=lock_timeout
        )
    click.echo(f"{done.table}: restored {done.rows:,} rows from {done.uri}")


if __name__ == "__main__":
    main()
