"""Load speed and memory: hrcore against PostgreSQL's own ``\\copy`` and against dlt, in one run.

For each row count it generates clean hired_employees rows (cached under
bench-data/), makes a fresh database ``hrcore_bench`` on the server (departments
and jobs loaded), and times, each case in a process of its own, with that
process's peak RSS, medians over ``--repeat`` runs (a CHECKPOINT before each case,
and a TRUNCATE before each \\copy and first load):

1. ``psql \\copy`` into a table with the columns of hired_employees and only the
   primary key: the baseline of the "0.3x" target;
2. ``psql \\copy`` into the same-shape table with the two enforced foreign keys
   (REFERENCES departments (id), jobs (id)): the baseline of the "2.5x" target;
   and the floor of 1000-row transactions: the same rows parsed first (untimed, no
   validation), then COPYed into the PK-only table 1000 rows a transaction, on as
   many connections as a first load's default writers;
3. ``hrcore load hired_employees --source FOLDER --batch-size 1000 --silent``, a
   first load into the empty table with the CLI's default writers, and again with
   ``--writers 1`` and ``--writers 4``; and from moto's S3 server on loopback.
   A first load really loads: the file is touched (``os.utime``, a new mtime)
   before each, since a reload of a file with the identity (size + mtime, or S3
   ETag) of the table's last load is ``skipped``; each S3 run reads a fresh copy
   of the object under a new key. ``--verify`` is not used for first loads;
4. reloads of the unchanged (not touched) file after an untimed first load:
   plain (must be ``skipped``) and ``--verify`` (must read every row, all
   unchanged);
5. the library call alone: a small Python process imports hrcore (the warm-up),
   then times ``hrcore.load(...)`` for a first load, the skipped reload and the
   verify reload; the rows show that call's seconds (not Python's start and
   imports, about 1 s) and the process's peak RSS;
6. the peer: dlt's ``merge`` of the same file (benchmarks/dlt_peer.py, whose
   docstring says which options and why: Arrow record batches, parquet loaded
   through ADBC, the ``upsert`` strategy), installed by ``uv run --isolated
   --no-project --with ...`` so that the workspace lock never carries it, into a
   fresh dataset each run; the whole ``uv run`` process is timed (its peak RSS is
   that of the process tree), and its ``pipeline.run`` alone too; once as dlt
   makes the table, once with id hinted unique (a UNIQUE constraint, as
   hired_employees has its primary key). The merged table must hold the file's rows.

Every hrcore run prints its report (``--json``) and the benchmark checks it: a
first load inserted every row, a reload was ``skipped``, a verify reload found
every row unchanged. It then prints one Markdown table per row count and, for
each target of issue 10, whether it is met. ``--readme`` writes them into README.md.

    uv run python benchmarks/load_speed.py --rows 1000000 5000000 --repeat 3 --readme
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import hrcore
from hrcore import cli
from hrcore._db import connect, execute
from measure import Run, fresh_database, timed
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
HRCORE = str(Path(sys.executable).parent / "hrcore")
PEER = str(Path(__file__).resolve().parent / "dlt_peer.py")
DLT_WITH = ("dlt[postgres,parquet]", "adbc-driver-postgresql")
EMPLOYEES_DDL = """CREATE TABLE {name} (
    id integer PRIMARY KEY, name text NOT NULL, datetime timestamptz NOT NULL,
    department_id integer NOT NULL {fk_dept}, job_id integer NOT NULL {fk_job})"""
README_START, README_END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"

#: A small process that imports hrcore (the warm-up), then times one hrcore.load call.
CALL = """
import json, sys, time
import hrcore
source, url, writers, verify = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
started = time.perf_counter()
report = hrcore.load(source, table="hired_employees", batch_size=1000, database_url=url,
                     writers=writers, verify=verify)
seconds = time.perf_counter() - started
print(json.dumps({"call_seconds": seconds, **report.to_dict()}))
"""

#: The floor of 1000-row transactions: the file's rows parsed first (untimed, no
#: validation), then COPYed into the PK-only table 1000 rows a transaction on
#: ``writers`` connections at once, as a first load's writers do.
FLOOR = """
import json, sys, threading, time
import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa, pyarrow.csv as csv
path, url, writers = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = ["id", "name", "datetime", "department_id", "job_id"]
types = {"id": pa.int32(), "name": pa.string(), "datetime": pa.timestamp("us", tz="UTC"),
         "department_id": pa.int32(), "job_id": pa.int32()}
rows = csv.read_csv(path, read_options=csv.ReadOptions(column_names=names),
                    convert_options=csv.ConvertOptions(column_types=types))
slices = [rows.slice(i, 1000) for i in range(0, rows.num_rows, 1000)]
def write(part):
    with adbc.connect(url) as conn, conn.cursor() as cur:
        for piece in part:
            cur.adbc_ingest("copy_pk_only", piece, mode="append")
            conn.commit()
started = time.perf_counter()
threads = [threading.Thread(target=write, args=(slices[k::writers],)) for k in range(writers)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"call_seconds": time.perf_counter() - started}))
"""

COPY_PK = "psql \\copy, PK only"
COPY_FK = "psql \\copy, PK + 2 enforced FKs"
FLOOR_NAME = "floor: 1000-row COPY transactions, PK only, no validation (default writers)"
S3_FIRST = "hrcore load, S3 emulator, first load"
RELOAD = "hrcore load, reload unchanged (skipped)"
VERIFY = "hrcore load --verify, reload unchanged"
CALL_FIRST = "hrcore.load() call, first load"
CALL_RELOAD = "hrcore.load() call, reload (skipped)"
CALL_VERIFY = "hrcore.load(verify=True) call, reload"
DLT = "dlt merge, process"
DLT_RUN = "dlt merge, pipeline.run() alone"
DLT_UNIQUE = "dlt merge + UNIQUE (id), process"
DLT_UNIQUE_RUN = "dlt merge + UNIQUE (id), pipeline.run() alone"


def first_load(writers: int) -> str:
    return f"hrcore load, first load, --writers {writers}"


def cli_default_writers() -> int:
    """The ``--writers`` default of ``hrcore load`` (what a first load uses unless told)."""
    for param in cli.load.params:
        if param.name == "writers" and isinstance(param.default, int):
            return param.default
    raise SystemExit("hrcore load has no --writers default")


def psql_url(url: str) -> str:
    return url.replace(":@", "@")  # libpq rejects an empty password field in some versions


def sample(rows: int) -> Path:
    folder = ROOT / "bench-data" / f"clean-{rows}"
    if not (folder / "hired_employees.csv").exists():
        hrcore.write_sample(folder, rows=rows, seed=1, dirty=0.0)
    return folder


def median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs), statistics.median(r.peak_rss_mb for r in runs)
    )


def report_of(run: Run) -> dict[str, Any]:
    """The one load report an ``hrcore load --json`` (or the CALL process) printed."""
    data: dict[str, Any] = json.loads(run.output.strip().splitlines()[-1])
    loads: list[dict[str, Any]] = data.get("loads", [data])
    if len(loads) != 1:
        raise SystemExit(f"expected one load report, got {run.output!r}")
    return loads[0]


def expect(run: Run, rows: int, status: str, counted: str, what: str) -> Run:
    """Check the load's report: ``status``, ``rows`` read, all of them ``counted``."""
    report = report_of(run)
    got = (report["status"], report["rows_read"], report[counted])
    if got != (status, rows, rows):
        raise SystemExit(
            f"{what}: expected status {status!r} with {rows:,} rows read and {counted}, "
            f"got {got} ({report})"
        )
    return run


@dataclass
class Bench:
    """One row count's fixtures: the database, the file, S3, and how to run each case."""

    rows: int
    url: str
    folder: Path
    endpoint: str
    bucket: str
    default_writers: int
    peer: dict[str, Any] | None = None  # what the last dlt run said of itself

    @property
    def csv(self) -> Path:
        return self.folder / "hired_employees.csv"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.url, "AWS_ENDPOINT_URL": self.endpoint}

    def reset(self) -> None:
        """Empty tables, and a CHECKPOINT so that no case pays for another's dirty pages."""
        with connect(self.url) as conn:
            execute(conn, "TRUNCATE hired_employees, copy_pk_only, copy_with_fks")
            execute(conn, "CHECKPOINT")

    def checkpoint(self) -> None:
        with connect(self.url) as conn:
            execute(conn, "CHECKPOINT")

    def touch(self) -> None:
        """A new mtime (strictly later than any before), so the file's identity is new."""
        stamp = max(time.time_ns(), self.csv.stat().st_mtime_ns + 1_000_000)
        os.utime(self.csv, ns=(stamp, stamp))

    def copy(self, table: str) -> Run:
        psql = shutil.which("psql") or "psql"
        command = f"\\copy {table} FROM '{self.csv}' WITH (FORMAT csv)"
        return timed([psql, "-X", psql_url(self.url), "-qc", command])

    def cli(self, source: str, *options: str) -> Run:
        command = [HRCORE, "load", "hired_employees", "--source", source, "--batch-size", "1000"]
        return timed([*command, *options, "--silent", "--json"], self.env, capture=True)

    def first(self, *options: str) -> Run:
        self.reset()
        self.touch()
        return expect(
            self.cli(str(self.folder), *options), self.rows, "succeeded", "rows_inserted", "first"
        )

    def s3_first(self, run: int) -> Run:
        self.reset()
        key = f"{self.rows}/run-{run}/hired_employees.csv"  # a new source: really a first load
        s3 = boto3.client("s3", endpoint_url=self.endpoint)
        s3.copy_object(
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": f"{self.rows}/hired_employees.csv"},
        )
        try:
            loaded = self.cli(f"s3://{self.bucket}/{key}")
        finally:
            s3.delete_object(Bucket=self.bucket, Key=key)
        return expect(loaded, self.rows, "succeeded", "rows_inserted", "S3 first load")

    def floor(self) -> Run:
        """The FLOOR process; seconds are its COPYs' alone."""
        flags = [str(self.csv), self.url, str(self.default_writers)]
        run = timed([sys.executable, "-c", FLOOR, *flags], self.env, capture=True)
        with connect(self.url) as conn:
            copied = execute(conn, "SELECT count(*) FROM copy_pk_only")[0][0]
        if copied != self.rows:
            raise SystemExit(f"the floor copied {copied:,} rows, expected {self.rows:,}")
        return Run(json.loads(run.output.strip().splitlines()[-1])["call_seconds"], run.peak_rss_mb)

    def call(self, verify: bool) -> Run:
        """One hrcore.load call in a process of its own; seconds are the call's alone."""
        flags = [str(self.folder), self.url, str(self.default_writers), "1" if verify else "0"]
        run = timed([sys.executable, "-c", CALL, *flags], self.env, capture=True)
        return Run(report_of(run)["call_seconds"], run.peak_rss_mb, run.output)

    def loaded_untimed(self) -> None:
        """The table as a first load of the (touched) file leaves it: reloads start here."""
        self.first()
        self.checkpoint()

    def dlt(self, run: int, unique: bool) -> tuple[Run, Run]:
        """dlt's merge into a fresh dataset: (the uv process, pipeline.run alone)."""
        dataset = f"dlt_{'unique_' if unique else ''}{run}"
        self.drop_dataset(dataset)
        self.checkpoint()
        process = timed(
            [*dlt_command(), str(self.csv), "--database-url", self.url, "--dataset", dataset]
            + (["--unique-id"] if unique else []),
            self.env,
            tree=True,
            capture=True,
        )
        peer: dict[str, Any] = json.loads(process.output.strip().splitlines()[-1])
        with connect(self.url) as conn:
            merged = execute(
                conn, f"SELECT count(*), count(DISTINCT id) FROM {dataset}.hired_employees"
            )[0]
        if merged != (self.rows, self.rows):
            raise SystemExit(f"dlt merged (rows, ids) {merged}, expected {self.rows:,}: {peer}")
        self.drop_dataset(dataset)
        self.peer = peer
        return process, Run(float(peer["seconds"]), process.peak_rss_mb)

    def drop_dataset(self, dataset: str) -> None:
        with connect(self.url) as conn:
            execute(conn, f"DROP SCHEMA IF EXISTS {dataset} CASCADE")
            execute(conn, f"DROP SCHEMA IF EXISTS {dataset}_staging CASCADE")


def dlt_command() -> list[str]:
    uv = shutil.which("uv") or "uv"
    withs = [arg for spec in DLT_WITH for arg in ("--with", spec)]
    return [uv, "run", "--quiet", "--isolated", "--no-project", *withs, "python", PEER]


def prepare(server_url: str, rows: int, s3: tuple[str, str]) -> Bench:
    folder = sample(rows)
    url = fresh_database(server_url, "hrcore_bench")
    with connect(url) as conn:
        execute(conn, EMPLOYEES_DDL.format(name="copy_pk_only", fk_dept="", fk_job=""))
        execute(
            conn,
            EMPLOYEES_DDL.format(
                name="copy_with_fks",
                fk_dept="REFERENCES departments (id)",
                fk_job="REFERENCES jobs (id)",
            ),
        )
    endpoint, bucket = s3
    bench = Bench(rows, url, folder, endpoint, bucket, cli_default_writers())
    boto3.client("s3", endpoint_url=endpoint).upload_file(
        str(bench.csv), bucket, f"{rows}/hired_employees.csv"
    )
    return bench


def measure(bench: Bench, repeat: int) -> dict[str, Run]:
    """Each case ``repeat`` times (cases in turn); the median of each."""
    rows, default = bench.rows, bench.default_writers
    writers = [default, *(w for w in (1, 4) if w != default)]

    def reload(verify: bool) -> Run:
        bench.checkpoint()
        run = bench.cli(str(bench.folder), *(["--verify"] if verify else []))
        if verify:
            return expect(run, rows, "succeeded", "rows_unchanged", "verify reload")
        return expect(run, rows, "skipped", "rows_unchanged", "reload")

    def call(verify: bool, status: str, counted: str) -> Run:
        bench.checkpoint()
        return expect(bench.call(verify), rows, status, counted, "hrcore.load call")

    def first_call() -> Run:
        bench.reset()
        bench.touch()
        return expect(bench.call(False), rows, "succeeded", "rows_inserted", "first load call")

    def copy(table: str, name: str) -> Callable[[int], list[tuple[str, Run]]]:
        def step(_: int) -> list[tuple[str, Run]]:
            bench.reset()
            return [(name, bench.copy(table))]

        return step

    def floor() -> Run:
        bench.reset()
        return bench.floor()

    def first(w: int) -> Callable[[int], list[tuple[str, Run]]]:
        options = [] if w == default else ["--writers", str(w)]
        return lambda _: [(first_load(w), bench.first(*options))]

    def reloads(_: int) -> list[tuple[str, Run]]:
        bench.loaded_untimed()
        return [
            (RELOAD, reload(verify=False)),
            (CALL_RELOAD, call(False, "skipped", "rows_unchanged")),
            (VERIFY, reload(verify=True)),
            (CALL_VERIFY, call(True, "succeeded", "rows_unchanged")),
        ]

    def peer(unique: bool, names: tuple[str, str]) -> Callable[[int], list[tuple[str, Run]]]:
        return lambda i: list(zip(names, bench.dlt(i, unique), strict=True))

    # each step gives (row name, run) pairs; the steps run in this order in every repeat
    steps: list[Callable[[int], list[tuple[str, Run]]]] = [
        copy("copy_pk_only", COPY_PK),
        copy("copy_with_fks", COPY_FK),
        lambda _: [(FLOOR_NAME, floor())],
        *(first(w) for w in writers),
        lambda i: [(S3_FIRST, bench.s3_first(i))],
        reloads,
        lambda _: [(CALL_FIRST, first_call())],
        peer(False, (DLT, DLT_RUN)),
        peer(True, (DLT_UNIQUE, DLT_UNIQUE_RUN)),
    ]
    results: dict[str, list[Run]] = {}
    for i in range(repeat):
        for step in steps:
            for name, run in step(i):
                results.setdefault(name, []).append(run)
                print(
                    f"  {rows:,} rows, run {i + 1}/{repeat}, {name}: {run.seconds:.2f} s, "
                    f"{run.peak_rss_mb:,.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
    order = [
        COPY_PK, COPY_FK, FLOOR_NAME, *(first_load(w) for w in writers), S3_FIRST, RELOAD, VERIFY,
        CALL_FIRST, CALL_RELOAD, CALL_VERIFY, DLT, DLT_RUN, DLT_UNIQUE, DLT_UNIQUE_RUN,
    ]  # fmt: skip
    return {name: median(results[name]) for name in order}


def table(rows: int, results: dict[str, Run]) -> list[str]:
    header = [
        "rows", "what", "seconds", "rows/s", "speed vs \\copy PK only",
        "speed vs \\copy with FKs", "peak RSS (MB)",
    ]  # fmt: skip
    pk, fk = results[COPY_PK].seconds, results[COPY_FK].seconds
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 1 else "---:" for i in range(len(header))) + "|",
    ]
    for name, m in results.items():
        cells = [
            f"{rows:,}", name, f"{m.seconds:.2f}", f"{rows / m.seconds:,.0f}",
            f"{pk / m.seconds:.2f}x", f"{fk / m.seconds:.2f}x", f"{m.peak_rss_mb:,.0f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(rows: int, results: dict[str, Run], default: int) -> list[str]:
    """One line per target of issue 10 that this run measures."""
    n = f"{rows / 1e6:g}M" if rows >= 1_000_000 else f"{rows:,}"
    first = results[first_load(default)].seconds
    call_first = results[CALL_FIRST].seconds
    pk, fk = results[COPY_PK].seconds, results[COPY_FK].seconds
    lines = [
        f"- first load {n} (--writers {default}): {pk / first:.2f}x the speed of \\copy PK only "
        f"(target ≥ 0.3x): {verdict(pk / first >= 0.3)}",
        f"- first load {n}: {fk / first:.2f}x the speed of \\copy with FKs "
        f"(target ≥ 2.5x): {verdict(fk / first >= 2.5)}",
    ]
    for what, reload, base, limit in (
        ("reload of the unchanged file, process", RELOAD, first, 0.05),
        ("reload of the unchanged file, library call", CALL_RELOAD, call_first, 0.05),
        ("--verify reload, process", VERIFY, first, 0.3),
        ("verify=True reload, library call", CALL_VERIFY, call_first, 0.3),
    ):
        ratio = results[reload].seconds / base
        lines.append(
            f"- {what} {n}: {ratio:.3f}x the first load's time "
            f"(target ≤ {limit}x): {verdict(ratio <= limit)}"
        )
    for what, peer, mine in (
        ("process vs process", DLT, first),
        ("pipeline.run() vs hrcore.load() call", DLT_RUN, call_first),
        ("with UNIQUE (id), process vs process", DLT_UNIQUE, first),
        ("with UNIQUE (id), pipeline.run() vs hrcore.load() call", DLT_UNIQUE_RUN, call_first),
    ):
        ratio = results[peer].seconds / mine
        lines.append(
            f"- first load {n}, hrcore vs dlt merge, {what}: hrcore {ratio:.2f}x as fast "
            f"(target ≥ 2x): {verdict(ratio >= 2)}"
        )
    return lines


def memory_lines(measured: dict[int, dict[str, Run]], default: int) -> list[str]:
    """The peak RSS of the first load at each larger row count against the smallest's."""
    counts = sorted(measured)
    name = first_load(default)
    if len(counts) < 2:
        return [
            f"- peak RSS of the first load: {measured[counts[0]][name].peak_rss_mb:,.0f} MB at "
            f"{counts[0]:,} rows; the target (5M no higher than 1M) needs "
            "`--rows 1000000 5000000`"
        ]
    small = measured[counts[0]][name].peak_rss_mb
    return [
        f"- peak RSS of the first load: {measured[n][name].peak_rss_mb:,.1f} MB at {n:,} rows vs "
        f"{small:,.1f} MB at {counts[0]:,} (target: no higher): "
        f"{verdict(measured[n][name].peak_rss_mb <= small)}"
        for n in counts[1:]
    ]


def markdown(
    measured: dict[int, dict[str, Run]], repeat: int, default: int, peer: dict[str, Any] | None
) -> str:
    dlt_line = (
        f"dlt {peer['dlt']} (Python {peer['python']}, pyarrow {peer['pyarrow']}): "
        f"`write_disposition` merge, strategy `{peer['strategy']}`, primary_key id, "
        f"loader file format `{peer['file_format']}`, Arrow record batches from "
        "`pyarrow.csv.open_csv`; installed by "
        f"`uv run --isolated --no-project {' '.join(f'--with {s}' for s in DLT_WITH)}`."
        if peer
        else ""
    )
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores), medians of {repeat} run(s), PostgreSQL at the benchmark's "
        "`--database-url`. Each case runs as a process of its own and its peak RSS is that "
        'process\'s; "call" and "pipeline.run() alone" rows time the library call inside '
        "its process (after the imports). " + dlt_line,
        "",
    ]
    for rows in sorted(measured):
        lines += [*table(rows, measured[rows]), "", *targets(rows, measured[rows], default), ""]
    lines += memory_lines(measured, default)
    counts = " ".join(str(n) for n in sorted(measured))
    lines += [
        "",
        "Reproduce: `uv run python benchmarks/load_speed.py "
        f"--rows {counts} --repeat {repeat}` (bench-data/ caches the samples).",
    ]
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme = ROOT / "README.md"
    content = readme.read_text()
    start, end = content.index(README_START), content.index(README_END)
    readme.write_text(content[: start + len(README_START)] + "\n" + text + "\n" + content[end:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    args = parser.parse_args()

    server_url = hrcore.database_url(args.database_url)
    # dlt's environment, made once untimed (downloads, if any, are not the peer's time)
    timed([*dlt_command()[:-1], "-c", "import dlt, adbc_driver_postgresql"], tree=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server: no request log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1"
    )
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="hrcore-bench")
    measured: dict[int, dict[str, Run]] = {}
    peer: dict[str, Any] | None = None
    default = cli_default_writers()
    try:
        for rows in args.rows:
            bench = prepare(server_url, rows, (endpoint, "hrcore-bench"))
            measured[rows] = measure(bench, args.repeat)
            peer = bench.peer
    finally:
        moto.stop()
    text = markdown(measured, args.repeat, default, peer)
    print(text)
    if args.readme:
        write_readme(text)


if __name__ == "__main__":
    main()
