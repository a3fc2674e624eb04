"""API throughput: hrcore-api against the old service's way (FastAPI + SQLModel, a
row-by-row upsert), each as a real server process, and what PostgreSQL alone does
with the same rows, all in one run on the same database.

The 4 clients are processes of their own, each on one keep-alive connection
with a few lines of socket code and every request encoded before the clock
starts, so that they take as little of the machine as a client can.

- Ingest: each client POSTs 1000-row JSON batches of new employees; rows/s, and
  the p50/p99 latency of a POST.
- Reads: ``GET /employees?limit=100&after=<random id>``; pages/s and p99. And
  ``GET /`` (no database), the ceiling of the HTTP stack itself.
- PostgreSQL alone: 4 connections insert the same kind of rows, 1000 per
  statement (``INSERT ... SELECT`` from ``generate_series``, into the same table:
  primary key, foreign keys, the ``hire_counts`` triggers); the ceiling of ingest
  on this machine, whatever the API does.

    uv run python benchmarks/api_speed.py --workers 1 2
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from measure import _tree, cpu_of, postmaster_of

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 4
PAGE = 100

Request = tuple[str, str, bytes | None]


@dataclass
class Rate:
    per_second: float
    latencies: list[float]

    def pct(self, q: int) -> float:
        """The q-th percentile latency, in ms."""
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000


def employees(first_id: int, n: int) -> list[dict[str, object]]:
    return [
        {
            "id": i,
            "name": f"N{i}",
            "datetime": "2021-03-01T10:00:00Z",
            "department_id": i % 12 + 1,
            "job_id": i % 183 + 1,
        }
        for i in range(first_id, first_id + n)
    ]


def _requests(plan: dict[str, Any]) -> list[Request]:
    """One client's requests, built in the client before the clock starts."""
    if plan["kind"] == "ingest":
        return [
            ("POST", "/employees", json.dumps({"rows": employees(first, 1000)}).encode())
            for first in plan["firsts"]
        ]
    chooser = random.Random(plan["seed"])
    if plan["kind"] == "pages":
        return [
            ("GET", f"/employees?limit={PAGE}&after={chooser.randrange(*plan['ids'])}", None)
            for _ in range(plan["count"])
        ]
    return [("GET", "/", None)] * plan["count"]


def _encode(method: str, path: str, body: bytes | None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


def _exchange(sock: socket.socket, request: bytes) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection; its status and body.

    A few lines of socket code instead of an HTTP library, so that the clients
    cost the machine little (the servers answer with a Content-Length).
    """
    sock.sendall(request)
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        data += sock.recv(65536)
    head = data[:end].decode("latin-1").split("\r\n")
    length = next(int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length:"))
    body = data[end + 4 :]
    while len(body) < length:
        body += sock.recv(65536)
    return int(head[0].split()[1]), body


def _client(port: int, plan: dict[str, Any], barrier: Barrier, out: Any) -> None:
    requests = [(path, _encode(method, path, body)) for method, path, body in _requests(plan)]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        barrier.wait()
        latencies = []
        started = time.perf_counter()  # CLOCK_MONOTONIC: comparable between processes
        for path, request in requests:
            sent = time.perf_counter()
            status, body = _exchange(sock, request)
            if status >= 400:
                out.put(f"{path}: {status} {body[:300]!r}")
                return
            latencies.append(time.perf_counter() - sent)
    out.put((started, time.perf_counter(), latencies))


def drive(port: int, plans: list[dict[str, Any]]) -> Rate:
    """Run one plan per client process, together; requests per second overall."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(len(plans)), ctx.Queue()
    clients = [ctx.Process(target=_client, args=(port, p, barrier, out)) for p in plans]
    for c in clients:
        c.start()
    results = [out.get() for _ in clients]
    for c in clients:
        c.join()
    for result in results:
        if isinstance(result, str):
            raise SystemExit(f"a client failed: {result}")
    latencies = [x for _, _, part in results for x in part]
    elapsed = max(end for _, end, _ in results) - min(start for start, _, _ in results)
    return Rate(len(latencies) / elapsed, latencies)


def ingest(port: int, batches: int, first_id: int, clients: int = CLIENTS) -> Rate:
    plans = [
        {"kind": "ingest", "firsts": [first_id + (c * batches + b) * 1000 for b in range(batches)]}
        for c in range(clients)
    ]
    rate = drive(port, plans)
    return Rate(rate.per_second * 1000, rate.latencies)  # rows, not requests


def pages(port: int, count: int, ids: tuple[int, int]) -> Rate:
    """Pages starting after random ids in ``ids`` (a range of stored ids)."""
    return drive(
        port, [{"kind": "pages", "seed": c, "ids": ids, "count": count} for c in range(CLIENTS)]
    )


def index(port: int, count: int) -> Rate:
    return drive(port, [{"kind": "index", "seed": c, "count": count} for c in range(CLIENTS)])


def postgres_alone(url: str, batches: int, first_id: int, clients: int = CLIENTS) -> Rate:
    """``clients`` connections, each inserting ``batches`` statements of 1000 generated rows."""
    from hrcore._db import connect, execute

    def connection(c: int) -> list[float]:
        latencies = []
        with connect(url) as conn:
            for b in range(batches):
                first = first_id + (c * batches + b) * 1000
                sent = time.perf_counter()
                execute(
                    conn,
                    f"""INSERT INTO hired_employees (id, name, datetime, department_id, job_id)
                    SELECT g, 'N' || g, timestamptz '2021-03-01 10:00:00+00',
                           g % 12 + 1, g % 183 + 1
                    FROM generate_series({first:d}, {first + 999:d}) AS g""",
                )
                latencies.append(time.perf_counter() - sent)
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [x for part in pool.map(connection, range(clients)) for x in part]
    return Rate(len(latencies) * 1000 / (time.perf_counter() - started), latencies)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    command: list[str], env: dict[str, str], port: int, probe: str
) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", probe)
            if conn.getresponse().status < 500:
                return server
        except OSError as exc:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit(f"{command[0]} did not start") from exc
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="hrcore-api's")
    parser.add_argument("--batches", type=int, default=40, help="1000-row POSTs per client")
    parser.add_argument("--baseline-batches", type=int, default=3, help="the same, baseline")
    parser.add_argument("--gets", type=int, default=2000, help="GET pages per client")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()

    import hrcore
    from measure import fresh_database

    url = fresh_database(hrcore.database_url(args.database_url), "hrcore_api_bench")
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    bin_dir = Path(sys.executable).parent
    servers: list[tuple[str, int, list[str], int]] = []  # name, workers, command, batches
    for workers in args.workers:
        servers.append(
            ("hrcore-api", workers, [str(bin_dir / "hrcore-api"), "--workers", str(workers)],
             args.batches)
        )  # fmt: skip
    baseline = [str(bin_dir / "uvicorn"), "--factory", "benchmarks.baseline_app:create_app",
                "--log-level", "warning"]  # fmt: skip
    servers.append(("baseline (FastAPI + SQLModel, row by row)", 1, baseline,
                    args.baseline_batches))  # fmt: skip

    postmaster = postmaster_of(url)
    rows, alone_rows, cpu_rows, next_id = [], [], [], 1
    for name, workers, command, batches in servers:
        port = free_port()
        server = serve([*command, "--port", str(port)], env, port, "/health-db")
        try:
            meter = Meter(postmaster, server.pid)
            posted = ingest(port, batches, next_id)
            cpu_rows.append(meter.per_request(f"{name} | {workers}", CLIENTS * batches))
            stored = (next_id, next_id + CLIENTS * batches * 1000 - PAGE)
            next_id += CLIENTS * batches * 1000
            read = pages(port, args.gets, stored)
            floor = index(port, args.gets)
            if name == "hrcore-api" and workers == min(args.workers):
                one = ingest(port, batches, next_id, clients=1)  # a POST's own time
                next_id += batches * 1000
                alone_rows.append(_one_client_row(f"hrcore-api, {workers} worker(s)", one))
        finally:
            server.terminate()
            server.wait(timeout=30)
        rows.append(
            f"| {name} | {workers} | {posted.per_second:,.0f} | {posted.pct(50):.0f} "
            f"| {posted.pct(99):.0f} | {read.per_second:,.0f} | {read.pct(99):.1f} "
            f"| {floor.per_second:,.0f} |"
        )
    meter = Meter(postmaster, os.getpid())
    alone = postgres_alone(url, args.batches, next_id)
    cpu_rows.append(meter.per_request("PostgreSQL alone | -", CLIENTS * args.batches))
    next_id += CLIENTS * args.batches * 1000
    alone_rows.append(
        _one_client_row("PostgreSQL alone", postgres_alone(url, args.batches, next_id, clients=1))
    )
    rows.append(
        f"| PostgreSQL alone (INSERT ... SELECT, 1000 rows a statement) | - "
        f"| {alone.per_second:,.0f} | {alone.pct(50):.0f} | {alone.pct(99):.0f} | - | - | - |"
    )
    print(f"{CLIENTS} concurrent clients; POSTs of 1000 new employees; GETs of {PAGE}-row pages")
    print(
        "| service | workers | ingest rows/s | POST p50 (ms) | POST p99 (ms) "
        "| GET pages/s | GET p99 (ms) | GET / req/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("\nOne client at a time: what a 1000-row POST (or statement) takes when nothing queues")
    print("| service | rows/s | p50 (ms) | p99 (ms) |")
    print("|---|---:|---:|---:|")
    print("\n".join(alone_rows))
    print(
        "\nCPU per 1000-row POST (or statement) in the 4-client ingest, from /proc: the "
        "service's processes, and PostgreSQL's (the postmaster's tree)"
    )
    print(
        "| service | workers | service CPU (ms) | PostgreSQL CPU (ms) "
        "| rows/s per core of the service | rows/s per core of PostgreSQL |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(cpu_rows))


class Meter:
    """CPU seconds of PostgreSQL (the postmaster's tree) and of a service's process tree
    (``service``: the server's pid; for PostgreSQL alone, this process), from a start."""

    def __init__(self, postmaster: int, service: int) -> None:
        self.postmaster, self.service = postmaster, service
        self.start = self._read()

    def _read(self) -> tuple[float, float]:
        return (
            cpu_of(_tree(self.service), reaped=True),
            cpu_of(_tree(self.postmaster), reaped=True),
        )

    def per_request(self, name: str, requests: int) -> str:
        """A table row: each side's CPU per request since the start, and the rows/s one
        core of each could take at that cost."""
        service, database = (
            (after - before) / requests * 1000
            for after, before in zip(self._read(), self.start, strict=True)
        )
        own = f"{service:.1f} | " if not name.startswith("PostgreSQL") else "- | "
        per_core = f"{1000 / service * 1000:,.0f} | " if own != "- | " else "- | "
        return f"| {name} | {own}{database:.1f} | {per_core}{1000 / database * 1000:,.0f} |"


def _one_client_row(name: str, rate: Rate) -> str:
    return f"| {name} | {rate.per_second:,.0f} | {rate.pct(50):.0f} | {rate.pct(99):.0f} |"


if __name__ == "__main__":
    main()
