"""Timing a command in a process of its own, with its peak memory."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float


def _peak_rss_kb(pid: int) -> int:
    """The process's high-water RSS (VmHWM) so far; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def timed(command: list[str], env: dict[str, str] | None = None) -> Run:
    """Run a command in its own process; its wall time and peak RSS.

    The peak is read from /proc while the process runs (every 20 ms; VmHWM only
    grows), since the rusage of a child forked from this big process would
    report this process's size.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _peak_rss_kb(process.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        error = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed: {error}")
    return Run(seconds, peak / 1024)
