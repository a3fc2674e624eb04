"""Capacity: what one writer connection, one PostgreSQL CPU-second and more writers,
threads or worker processes give, and where the CPU goes (client or server).

For N rows of hired_employees (the clean sample of load_speed.py, cached under
bench-data/, and the same lines split into 6 part files), each run into a fresh
database (load_speed.py's ``fresh_database``: departments and jobs loaded, the
employees table empty) after a CHECKPOINT, medians of ``--repeat`` runs (cases in
turn within each repeat):

1. one file, ``hrcore.load(file, writers=w)`` in this process, w = 1, 2, 4;
2. the same rows as 6 parts (``<dir>/hired_employees/part-0000k.csv``), one load whose
   parts are staged and written by ``writers`` threads, 1, 2, 4;
3. the 6 parts queued (``hrcore.enqueue``) and run by 1, 2, 3 ``hrcore worker
   --concurrency 1`` processes, started (and registered in procrastinate_workers)
   before the clock starts; timed from the enqueue until ``get_load`` (polled every
   0.2 s) says the load is final;
4. the baseline: ``psql \\copy`` into a table of the same columns with only the
   primary key (load_speed.py's ``Bench.copy``).

Each run also takes the CPU seconds (utime + stime) of
- the PostgreSQL server: its postmaster (the parent of a backend of ours; the server
  must be local) and every process below it, plus the postmaster's cutime + cstime,
  which hold the backends that exited during the run;
- the client: this process's ``os.times()`` (itself, and children it reaped: psql),
  plus, when queued, the worker processes read from /proc (so their start-up and
  imports, before the clock, are not counted).

It prints a Markdown table and the derived numbers, and writes them as JSON to ``--json``.

    uv run python benchmarks/capacity.py --rows 1000000 --repeat 3 --json capacity.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import hrcore
from hrcore._db import connect, execute, scalar
from load_speed import EMPLOYEES_DDL, HRCORE, Bench, sample
from measure import _tree, cpu_of, fresh_database, postmaster_of

DATABASE = "hrcore_capacity"
TABLE = "hired_employees"
PK_TABLE = "hired_employees_pk"
PARTS = 6
WRITERS = (1, 2, 4)
WORKERS = (1, 2, 3)
POLL = 0.2  # seconds between get_load polls of a queued load
WAIT_LOAD = 1800.0  # seconds a queued load may take before the benchmark gives up
WAIT_WORKERS = 60.0  # seconds for the worker processes to register
FINAL = ("succeeded", "failed", "cancelled", "skipped")
CASES = {
    "file": "1 file, hrcore.load, writers",
    "parts": f"{PARTS} parts, hrcore.load, writer threads",
    "queue": f"{PARTS} parts, enqueue, worker processes",
    "copy": "psql \\copy, PK only",
}


@dataclass(frozen=True)
class Sample:
    seconds: float
    server_cpu: float
    client_cpu: float


@dataclass(frozen=True)
class Case:
    kind: str  # a key of CASES
    n: int  # writers, threads or workers (0 for \copy)

    @property
    def name(self) -> str:
        return f"{CASES[self.kind]} {self.n}" if self.n else CASES[self.kind]


@dataclass
class Meter:
    """CPU seconds of the server (the postmaster's tree) and of the client."""

    postmaster: int
    helpers: tuple[int, ...] = ()  # client processes read from /proc (the workers)

    def read(self) -> tuple[float, float]:
        server = cpu_of(_tree(self.postmaster), reaped=True)
        mine = os.times()
        own = mine.user + mine.system + mine.children_user + mine.children_system
        return server, own + cpu_of([p for h in self.helpers for p in _tree(h)])

    def sample(self, work: Callable[[], object]) -> Sample:
        server, client = self.read()
        started = time.perf_counter()
        work()
        seconds = time.perf_counter() - started
        server_after, client_after = self.read()
        return Sample(seconds, server_after - server, client_after - client)


def split(csv: Path, parts: int) -> Path:
    """The lines of ``csv`` as ``parts`` files ``<dir>/hired_employees/part-0000k.csv``
    (remade every run); returns ``<dir>``, the source of a load of parts."""
    folder = csv.parent.with_name(f"{csv.parent.name}-parts{parts}")
    shutil.rmtree(folder, ignore_errors=True)
    (folder / TABLE).mkdir(parents=True)
    lines = csv.read_bytes().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    for k in range(parts):
        (folder / TABLE / f"part-{k:05d}.csv").write_bytes(
            b"".join(lines[k * size : (k + 1) * size])
        )
    return folder


def checked(report: hrcore.LoadReport, rows: int, what: str) -> None:
    got = (report.status, report.rows_read, report.rows_inserted)
    if got != ("succeeded", rows, rows):
        raise SystemExit(f"{what}: expected ('succeeded', {rows}, {rows}), got {got}: {report}")


def checkpoint(url: str) -> None:
    with connect(url) as conn:
        execute(conn, "CHECKPOINT")


@contextmanager
def workers(url: str, count: int, log: IO[bytes]) -> Iterator[tuple[int, ...]]:
    """``count`` worker processes (``--concurrency 1``), registered; stopped on exit."""
    command = [HRCORE, "worker", "--database-url", url, "--concurrency", "1"]
    started = [subprocess.Popen(command, stdout=log, stderr=log) for _ in range(count)]
    try:
        deadline = time.monotonic() + WAIT_WORKERS
        while True:
            with connect(url) as conn:
                if scalar(conn, "SELECT count(*) FROM procrastinate_workers") >= count:
                    break
            if time.monotonic() > deadline or any(p.poll() is not None for p in started):
                log.seek(0)
                raise SystemExit(f"{count} workers did not start: {log.read().decode()[-2000:]}")
            time.sleep(POLL)
        yield tuple(p.pid for p in started)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Capacity:
    """One row count's fixtures and how to run each case."""

    server_url: str
    rows: int
    folder: Path  # the sample: hired_employees.csv
    parts: Path  # the same lines as PARTS part files
    postmaster: int

    def fresh(self) -> str:
        return fresh_database(self.server_url, DATABASE)

    def direct(self, source: Path, writers: int) -> Sample:
        url = self.fresh()
        checkpoint(url)

        def work() -> None:
            report = hrcore.load(
                str(source), table=TABLE, database_url=url, writers=writers, batch_size=1000
            )
            checked(report, self.rows, f"hrcore.load({source}, writers={writers})")

        return Meter(self.postmaster).sample(work)

    def queued(self, count: int) -> Sample:
        url = self.fresh()

        def work() -> None:
            report = hrcore.enqueue(str(self.parts), table=TABLE, database_url=url)
            deadline = time.monotonic() + WAIT_LOAD
            while report.status not in FINAL and time.monotonic() < deadline:
                time.sleep(POLL)
                report = hrcore.get_load(report.load_id, pool=pool)
            checked(report, self.rows, f"the queued load with {count} workers")

        # one connection for the polls: not a backend started (server CPU) every 0.2 s
        with (
            tempfile.TemporaryFile() as log,
            hrcore.ConnectionPool(url, size=1) as pool,
            workers(url, count, log) as pids,
        ):
            checkpoint(url)
            return Meter(self.postmaster, pids).sample(work)

    def copy(self) -> Sample:
        url = self.fresh()
        with connect(url) as conn:
            execute(conn, EMPLOYEES_DDL.format(name=PK_TABLE, fk_dept="", fk_job=""))
            execute(conn, "CHECKPOINT")
        bench = Bench(self.rows, url, self.folder, "", "", 0)  # no S3: \copy only
        measured = Meter(self.postmaster).sample(lambda: bench.copy(PK_TABLE))
        with connect(url) as conn:
            copied = scalar(conn, f"SELECT count(*) FROM {PK_TABLE}")
        if copied != self.rows:
            raise SystemExit(f"\\copy copied {copied:,} rows, expected {self.rows:,}")
        return measured

    def run(self, case: Case) -> Sample:
        if case.kind == "file":
            return self.direct(self.folder / f"{TABLE}.csv", case.n)
        if case.kind == "parts":
            return self.direct(self.parts, case.n)
        if case.kind == "queue":
            return self.queued(case.n)
        return self.copy()


def measure(bench: Capacity, repeat: int) -> dict[Case, list[Sample]]:
    cases = [
        Case("copy", 0),
        *(Case("file", w) for w in WRITERS),
        *(Case("parts", w) for w in WRITERS),
        *(Case("queue", n) for n in WORKERS),
    ]
    runs: dict[Case, list[Sample]] = {case: [] for case in cases}
    for i in range(repeat):
        for case in cases:
            run = bench.run(case)
            runs[case].append(run)
            print(
                f"  run {i + 1}/{repeat}, {case.name}: {run.seconds:.2f} s, "
                f"server CPU {run.server_cpu:.2f} s, client CPU {run.client_cpu:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    return runs


def median(runs: list[Sample]) -> Sample:
    return Sample(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.server_cpu for r in runs),
        statistics.median(r.client_cpu for r in runs),
    )


def table(rows: int, medians: dict[Case, Sample]) -> list[str]:
    header = [
        "case", "n", "seconds", "rows/s", "vs \\copy", "server CPU s", "client CPU s",
        "client share of CPU", f"cores busy (of {os.cpu_count()})", "rows per server CPU-s",
    ]  # fmt: skip
    copy = medians[Case("copy", 0)].seconds
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    for case, m in medians.items():
        total = m.server_cpu + m.client_cpu
        cells = [
            CASES[case.kind], str(case.n or "-"), f"{m.seconds:.2f}", f"{rows / m.seconds:,.0f}",
            f"{copy / m.seconds:.2f}x", f"{m.server_cpu:.2f}", f"{m.client_cpu:.2f}",
            f"{m.client_cpu / total:.0%}", f"{total / m.seconds:.2f}",
            f"{rows / m.server_cpu:,.0f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def derived(rows: int, medians: dict[Case, Sample]) -> dict[str, Any]:
    def speed(kind: str, n: int) -> float:
        return rows / medians[Case(kind, n)].seconds

    def ratios(kind: str, counts: tuple[int, ...]) -> dict[str, float]:
        steps = [*itertools.pairwise(counts), (counts[0], counts[-1])]
        return {f"{b}/{a}": speed(kind, b) / speed(kind, a) for a, b in steps}

    return {
        "rows_per_s_per_writer_connection": speed("file", 1),
        "rows_per_server_cpu_s_file_writers_2": rows / medians[Case("file", 2)].server_cpu,
        "throughput_ratios": {
            kind: ratios(kind, counts)
            for kind, counts in (("file", WRITERS), ("parts", WRITERS), ("queue", WORKERS))
        },
    }


def markdown(rows: int, repeat: int, medians: dict[Case, Sample], more: dict[str, Any]) -> str:
    file = {w: medians[Case("file", w)] for w in WRITERS}
    ratio_lines = [
        f"- {CASES[kind]}: " + ", ".join(f"{k} = {v:.2f}x" for k, v in steps.items())
        for kind, steps in more["throughput_ratios"].items()
    ]
    cpu_lines = [
        f"- 1 file, {w} writer(s): server {m.server_cpu:.1f} s + client {m.client_cpu:.1f} s "
        f"of CPU in {m.seconds:.1f} s wall = {(m.server_cpu + m.client_cpu) / m.seconds:.2f} "
        f"of {os.cpu_count()} cores busy; client {m.client_cpu / (m.server_cpu + m.client_cpu):.0%}"
        for w, m in file.items()
    ]
    return "\n".join(
        [
            f"{rows:,} rows of hired_employees, medians of {repeat} run(s), "
            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, client and PostgreSQL on "
            "one machine; each run into a fresh database.",
            "",
            *table(rows, medians),
            "",
            "- rows/s per writer connection (1 file, writers=1): "
            f"{more['rows_per_s_per_writer_connection']:,.0f}",
            "- rows per PostgreSQL CPU-second (1 file, writers=2): "
            f"{more['rows_per_server_cpu_s_file_writers_2']:,.0f}",
            "- throughput as writers/threads/workers grow:",
            *(f"  {line}" for line in ratio_lines),
            "- where the CPU went:",
            *(f"  {line}" for line in cpu_lines),
            "",
            f"Reproduce: `uv run python benchmarks/capacity.py --rows {rows} --repeat {repeat}`",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()

    server_url = hrcore.database_url(args.database_url)
    folder = sample(args.rows)
    bench = Capacity(
        server_url, args.rows, folder, split(folder / f"{TABLE}.csv", PARTS),
        postmaster_of(server_url),
    )  # fmt: skip
    runs = measure(bench, args.repeat)
    medians = {case: median(samples) for case, samples in runs.items()}
    more = derived(args.rows, medians)
    print(markdown(args.rows, args.repeat, medians, more))
    if args.json:
        cases = [
            {
                "case": CASES[case.kind], "n": case.n, **asdict(medians[case]),
                "rows_per_s": args.rows / medians[case].seconds,
                "runs": [asdict(r) for r in runs[case]],
            }
            for case in runs
        ]  # fmt: skip
        result = {
            "command": " ".join(["uv run python benchmarks/capacity.py", *sys.argv[1:]]),
            "rows": args.rows, "repeat": args.repeat, "cores": os.cpu_count(), "parts": PARTS,
            "cases": cases, "derived": more,
        }  # fmt: skip
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
