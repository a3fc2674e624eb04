"""What the benchmarks share: timing (a command in a process of its own, with its
peak memory; or a call, as a median), a fresh database, generated employees."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    output: str = ""  # the command's stdout, when ``timed(..., capture=True)``


def _peak_rss_kb(pid: int) -> int:
    """The process's high-water RSS (VmHWM) so far; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (from /proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def stat(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 (state) on: field k is at index k - 3."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def cpu_of(pids: list[int], *, reaped: bool = False) -> float:
    """CPU seconds (utime + stime; with ``reaped``, + cutime + cstime) of live ``pids``."""
    ticks = 0
    for pid in pids:
        try:
            fields = stat(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended between the listing and the read
        ticks += sum(int(fields[k - 3]) for k in ((14, 15, 16, 17) if reaped else (14, 15)))
    return ticks / TICK


def postmaster_of(url: str) -> int:
    """The pid of the server's postmaster: the parent of a backend of ours."""
    from hrcore._db import connect, scalar

    with connect(url) as conn:  # read while the backend lives
        backend = int(scalar(conn, "SELECT pg_backend_pid()"))
        try:
            return int(stat(backend)[4 - 3])
        except FileNotFoundError:
            raise SystemExit(
                f"backend {backend} is not on this machine: the server must be local"
            ) from None


def timed(
    command: list[str],
    env: dict[str, str] | None = None,
    *,
    tree: bool = False,
    capture: bool = False,
) -> Run:
    """Run a command in its own process; its wall time and peak RSS.

    The peak is read from /proc while the process runs (every 20 ms; VmHWM only
    grows), since the rusage of a child forked from this big process would
    report this process's size. With ``tree``, it is the largest sum of the
    high-water marks of the process and its descendants seen at one sample (for a
    launcher such as ``uv run``, whose work happens in a child). With ``capture``,
    the command's stdout is kept in ``Run.output`` (stderr is kept for errors).
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, env=env, stdout=stdout if capture else subprocess.DEVNULL, stderr=stderr
        )
        peak = 0
        while process.poll() is None:
            pids = _tree(process.pid) if tree else [process.pid]
            peak = max(peak, sum(_peak_rss_kb(pid) for pid in pids))
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            stderr.seek(0)
            error = stderr.read().decode(errors="replace")
            raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {error}")
        stdout.seek(0)
        output = stdout.read().decode()
    return Run(seconds, peak / 1024, output)


def median_of(work: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The median wall time of ``repeat`` calls, and the last call's result."""
    times: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def fresh_database(server_url: str, name: str) -> str:
    """A new database ``name`` on the server, with the schema and the sample
    departments and jobs loaded; returns its URL."""
    import hrcore
    from hrcore import SAMPLE_FOLDER
    from hrcore._db import connect, execute

    with connect(server_url) as conn:
        execute(conn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        execute(conn, f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    with connect(url) as conn:  # made here: a process remembers a URL's schema as made
        hrcore.init_schema(conn)
    for table in ("departments", "jobs"):
        hrcore.load(SAMPLE_FOLDER, table=table, database_url=url)
    return url


#: employees generated in SQL, spread over 2020-2022, random departments and jobs
FILL_EMPLOYEES = """
INSERT INTO hired_employees (id, name, datetime, department_id, job_id)
SELECT g, 'Employee ' || g,
    timestamptz '2020-01-01 00:00:00+00' + random() * interval '1096 days',
    1 + floor(random() * 12)::int, 1 + floor(random() * 183)::int
FROM generate_series(1, {rows:d}) AS g"""
