"""Load speed and memory: hrcore against PostgreSQL's own ``\\copy``, in the same run.

For each row count it generates clean hired_employees rows (cached under
bench-data/), loads departments and jobs, then times, each in a process of its own:

- ``psql \\copy`` of the file into a table of the same shape (primary key, foreign keys);
- ``psql \\copy`` into a table with no constraints, for context;
- ``hrcore load`` from the folder at batch_size 1000 (first load into an empty table);
- the same file again (every row unchanged);
- ``hrcore load`` from moto's S3 server on loopback (first load).

It prints rows/s, the ratio to the same-shape ``\\copy`` and each process's peak
RSS, as medians over ``--repeat`` runs. ``--readme`` writes the table into README.md.

    uv run python benchmarks/load_speed.py --rows 1000000 5000000 --repeat 3 --readme
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3
import hrcore
from hrcore._db import connect, execute
from measure import Run, fresh_database, timed
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
HRCORE = str(Path(sys.executable).parent / "hrcore")
EMPLOYEES_DDL = """CREATE TABLE {name} (
    id integer {pk}, name text NOT NULL, datetime timestamptz NOT NULL,
    department_id integer NOT NULL {fk_dept}, job_id integer NOT NULL {fk_job})"""
SAME_SHAPE = "psql \\copy, same shape (PK + FKs)"
README_START, README_END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def psql_url(url: str) -> str:
    return url.replace(":@", "@")  # libpq rejects an empty password field in some versions


def sample(rows: int) -> Path:
    folder = ROOT / "bench-data" / f"clean-{rows}"
    if not (folder / "hired_employees.csv").exists():
        hrcore.write_sample(folder, rows=rows, seed=1, dirty=0.0)
    return folder


def reset(url: str) -> None:
    with connect(url) as conn:
        execute(conn, "TRUNCATE hired_employees, copy_same_shape, copy_no_constraints")
        execute(conn, "CHECKPOINT")


def median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs), statistics.median(r.peak_rss_mb for r in runs)
    )


def measure(rows: int, server_url: str, repeat: int, s3: tuple[str, str]) -> list[list[str]]:
    folder = sample(rows)
    csv = folder / "hired_employees.csv"
    url = fresh_database(server_url, "hrcore_bench")
    with connect(url) as conn:
        execute(
            conn,
            EMPLOYEES_DDL.format(
                name="copy_same_shape",
                pk="PRIMARY KEY",
                fk_dept="REFERENCES departments (id)",
                fk_job="REFERENCES jobs (id)",
            ),
        )
        execute(
            conn, EMPLOYEES_DDL.format(name="copy_no_constraints", pk="", fk_dept="", fk_job="")
        )
    endpoint, bucket = s3
    boto3.client("s3", endpoint_url=endpoint).upload_file(
        str(csv), bucket, f"{rows}/hired_employees.csv"
    )
    psql = shutil.which("psql") or "psql"
    env = {**os.environ, "DATABASE_URL": url, "AWS_ENDPOINT_URL": endpoint}
    load = [HRCORE, "load", "hired_employees", "--batch-size", "1000", "--silent"]

    def from_folder() -> Run:
        return timed([*load, "--source", str(folder)], env)

    def empty_then_full() -> None:
        reset(url)
        from_folder()

    copy = "\\copy {} FROM '" + str(csv) + "' WITH (FORMAT csv)"
    # name -> (prepare, timed run)
    cases: dict[str, tuple[Callable[[], None], Callable[[], Run]]] = {
        SAME_SHAPE: (
            lambda: reset(url),
            lambda: timed([psql, psql_url(url), "-qc", copy.format("copy_same_shape")]),
        ),
        "psql \\copy, no constraints": (
            lambda: reset(url),
            lambda: timed([psql, psql_url(url), "-qc", copy.format("copy_no_constraints")]),
        ),
        "hrcore load, folder, first load": (lambda: reset(url), from_folder),
        "hrcore load, folder, reload (all unchanged)": (empty_then_full, from_folder),
        "hrcore load, S3 emulator, first load": (
            lambda: reset(url),
            lambda: timed([*load, "--source", f"s3://{bucket}/{rows}/"], env),
        ),
    }
    results: dict[str, list[Run]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, (prepare, run) in cases.items():
            prepare()
            results[name].append(run())
            print(f"  {rows:,} rows, {name}: {results[name][-1].seconds:.2f} s", file=sys.stderr)

    baseline = median(results[SAME_SHAPE]).seconds
    out: list[list[str]] = []
    for name, runs in results.items():
        m = median(runs)
        out.append(
            [
                f"{rows:,}",
                name,
                f"{m.seconds:.2f}",
                f"{rows / m.seconds:,.0f}",
                f"{baseline / m.seconds:.2f}x",
                f"{m.peak_rss_mb:,.0f}",
            ]
        )
    return out


def markdown(rows: list[list[str]], repeat: int) -> str:
    header = ["rows", "what", "seconds", "rows/s", "vs \\copy same shape", "peak RSS (MB)"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores), medians of {repeat} runs, PostgreSQL at the benchmark's "
        "`DATABASE_URL`. Each case runs as a process of its own; peak RSS is that process's.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if i != 1 else "---" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
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
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()

    server_url = hrcore.database_url(args.database_url)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1"
    )
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="hrcore-bench")
    try:
        rows = [
            r
            for n in args.rows
            for r in measure(n, server_url, args.repeat, (endpoint, "hrcore-bench"))
        ]
    finally:
        moto.stop()
    text = markdown(rows, args.repeat)
    print(text)
    if args.readme:
        write_readme(text)


if __name__ == "__main__":
    main()
