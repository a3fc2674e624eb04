"""API throughput: hrcore-api against the old service's way (FastAPI + SQLModel, a
row-by-row upsert), side by side on the same database, each as a real server process.

Ingest: 4 concurrent clients POST 1000-row JSON batches of new employees; we report
rows/s and the p50/p99 latency of a POST. Reads: 4 clients GET pages of 100
employees at random offsets; we report pages/s and p99.

    uv run python benchmarks/api_speed.py --batches 40 --baseline-batches 3
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hrcore
import httpx
from measure import fresh_database

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(command: list[str], env: dict[str, str], health: str) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(health).status_code < 500:
                return server
        except httpx.TransportError as exc:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit(f"{command[0]} did not start") from exc
        time.sleep(0.2)


def rows(first_id: int, n: int) -> list[dict[str, object]]:
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


def ingest(base: str, batches_per_client: int, first_id: int) -> tuple[float, list[float]]:
    """All clients' POSTs; returns rows/s and each POST's latency."""
    bodies = [
        [
            {"rows": rows(first_id + (c * batches_per_client + b) * 1000, 1000)}
            for b in range(batches_per_client)
        ]
        for c in range(CLIENTS)
    ]

    def client(mine: list[dict[str, object]]) -> list[float]:
        latencies = []
        with httpx.Client(base_url=base, timeout=600) as http:
            for body in mine:
                started = time.perf_counter()
                answer = http.post("/employees", json=body)
                latencies.append(time.perf_counter() - started)
                answer.raise_for_status()
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        latencies = [x for part in pool.map(client, bodies) for x in part]
    elapsed = time.perf_counter() - started
    return CLIENTS * batches_per_client * 1000 / elapsed, latencies


def reads(base: str, requests_per_client: int, max_id: int) -> tuple[float, list[float]]:
    def client(seed: int) -> list[float]:
        chooser = random.Random(seed)
        latencies = []
        with httpx.Client(base_url=base, timeout=60) as http:
            for _ in range(requests_per_client):
                started = time.perf_counter()
                http.get(
                    "/employees", params={"limit": 100, "after": chooser.randrange(max_id)}
                ).raise_for_status()
                latencies.append(time.perf_counter() - started)
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        latencies = [x for part in pool.map(client, range(CLIENTS)) for x in part]
    return len(latencies) / (time.perf_counter() - started), latencies


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(q) - 1] * 1000
        if len(values) > 1
        else values[0] * 1000
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--batches", type=int, default=40, help="1000-row POSTs per client, hrcore-api"
    )
    parser.add_argument("--baseline-batches", type=int, default=3, help="the same for the baseline")
    parser.add_argument("--gets", type=int, default=500, help="GET pages per client")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()

    url = fresh_database(hrcore.database_url(args.database_url), "hrcore_api_bench")
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    bin_dir = Path(sys.executable).parent
    ours_port, theirs_port = free_port(), free_port()
    ours = serve(
        [str(bin_dir / "hrcore-api"), "--port", str(ours_port)],
        env,
        f"http://127.0.0.1:{ours_port}/health-db",
    )
    theirs = serve(
        [str(bin_dir / "uvicorn"), "--factory", "benchmarks.baseline_app:create_app",
         "--port", str(theirs_port), "--log-level", "warning"],
        env,
        f"http://127.0.0.1:{theirs_port}/employees?limit=1",
    )  # fmt: skip
    try:
        results = []
        for name, port, batches in (
            ("hrcore-api (Litestar, staged COPY + set-based upsert)", ours_port, args.batches),
            (
                "baseline (FastAPI + SQLModel, row-by-row upsert)",
                theirs_port,
                args.baseline_batches,
            ),
        ):
            base = f"http://127.0.0.1:{port}"
            rate, post_latency = ingest(base, batches, 1)
            page_rate, get_latency = reads(base, args.gets, CLIENTS * batches * 1000)
            p50, p99 = pct(post_latency, 50), pct(post_latency, 99)
            results.append(
                f"| {name} | {rate:,.0f} | {p50:.0f} | {p99:.0f} "
                f"| {page_rate:,.0f} | {pct(get_latency, 99):.1f} |"
            )
    finally:
        for process in (ours, theirs):
            process.terminate()
            process.wait(timeout=30)
    print(f"{CLIENTS} concurrent clients; POSTs of 1000 new employees; GETs of 100-row pages")
    print(
        "| service | ingest rows/s | POST p50 (ms) | POST p99 (ms) | GET pages/s | GET p99 (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(results))


if __name__ == "__main__":
    main()
