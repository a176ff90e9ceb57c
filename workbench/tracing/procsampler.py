"""Per-process cpu and memory through psutil: what each sandboxed process costs, a few times a
second. The cgroup-wide figures come from the sandbox's own cgroupfs sampler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import psutil


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """One process's usage at one instant (plain data for the session's views, not an event)."""

    pid: int
    comm: str
    cpu_seconds: float
    """user + system time since it started."""
    rss_bytes: int
    threads: int


def sample(pids: Iterable[int]) -> list[ProcessUsage]:
    """Usage of each pid still alive; gone ones are skipped."""
    out = []
    for pid in sorted(set(pids)):
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                t = p.cpu_times()
                out.append(ProcessUsage(pid=pid, comm=p.name(), cpu_seconds=t.user + t.system,
                                        rss_bytes=p.memory_info().rss, threads=p.num_threads()))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out
