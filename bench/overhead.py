"""What tracing costs a syscall-heavy workload, subjects alternated in one run.

    .venv/bin/python bench/overhead.py [--rounds N] [--count N]     (root)

Workload: `dd if=/dev/zero of=/dev/null bs=1 count=500000` (1M syscalls), held at a start gate in
its own v2 cgroup and timed from release to exit. Subjects, in turn each round:
  bare       nothing attached
  floor      empty programs on raw sys_enter/sys_exit (probes/floor.c): the price of switching
             syscall tracing on at all
  aggregate  the workbench tracer, in-kernel aggregates only (stream=False)
  stream     the workbench tracer streaming every syscall to a bus subscriber
  bpftrace   bpftrace counting syscalls by number
  strace     strace -f, on a tenth of the workload (it is ~70x slower), against bare at that size
The last line is one JSON object; medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbench.core.bus import Bus  # noqa: E402
from workbench.core.events import SyscallBatch  # noqa: E402
from workbench.tracing import loader  # noqa: E402
from workbench.tracing.tracer import Tracer  # noqa: E402

UNIFIED = Path("/sys/fs/cgroup/unified")


def dd(count: int) -> list[str]:
    return ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={count}", "status=none"]


class Held:
    """The workload behind a start gate (sh reads one byte from a pipe, then execs), in a cgroup."""

    def __init__(self, cmd: list[str], prefix: list[str] = ()):
        self.cg = UNIFIED / f"workbench-bench-{os.getpid()}-{time.monotonic_ns()}"
        self.cg.mkdir()
        r, self.w = os.pipe()
        self.proc = subprocess.Popen([*prefix, "sh", "-c", 'read -r x; exec "$@"', "gate", *cmd],
                                     stdin=r, stdout=subprocess.DEVNULL)
        os.close(r)
        (self.cg / "cgroup.procs").write_text(str(self.proc.pid))

    @property
    def cgroup_id(self) -> int:
        return os.stat(self.cg).st_ino

    def run(self) -> float:
        t0 = time.perf_counter()
        os.write(self.w, b"\n")
        if self.proc.wait() != 0:
            raise RuntimeError(f"workload failed: {self.proc.args}")
        return time.perf_counter() - t0

    def close(self) -> None:
        os.close(self.w)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.cg.rmdir()


def timed(cmd: list[str], prefix: list[str] = ()) -> float:
    held = Held(cmd, prefix)
    try:
        return held.run()
    finally:
        held.close()


def run_bare(count: int) -> float:
    return timed(dd(count))


def run_floor(count: int) -> float:
    from bcc import BPF

    bpf = BPF(text=(ROOT / "probes" / "floor.c").read_bytes())
    try:
        bpf.attach_raw_tracepoint(tp=b"sys_enter", fn_name=b"floor_enter")
        bpf.attach_raw_tracepoint(tp=b"sys_exit", fn_name=b"floor_exit")
        return timed(dd(count))
    finally:
        bpf.cleanup()


def run_tracer(count: int, stream: bool) -> tuple[float, int, int, int]:
    """Seconds, events lost, events delivered to the subscriber, syscalls in the aggregates."""
    bus = Bus()
    delivered = [0]

    def consume(ev):  # a consumer that looks at every event, as the recorder does
        for s in ev.syscalls:
            delivered[0] += s.nr >= 0

    bus.subscribe(consume, SyscallBatch)
    t = Tracer(bus, stream=stream)
    t.compile()
    held = Held(dd(count))
    try:
        t.attach(held.cgroup_id, held.proc.pid, held.proc.pid)
        t.start()
        seconds = held.run()
        t.stop()
        total = sum(s.count for s in t.stats().stats)
        return seconds, t.lost(), delivered[0], total
    finally:
        t.stop()
        held.close()


def run_bpftrace(count: int) -> float:
    proc = subprocess.Popen(["bpftrace", "-e", "tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        while not seen or "Attaching" not in seen[-1]:  # "Attaching 1 probe..." once attached
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"bpftrace did not start: {' '.join(seen)}")
            seen.append(line.strip())  # a warning about RLIMIT_MEMLOCK may come first
        return timed(dd(count))
    finally:
        proc.send_signal(signal.SIGINT)  # prints its map and exits
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave a syscall hook behind on the host
            proc.communicate()
            raise


def run_strace(count: int) -> float:
    return timed(dd(count), prefix=["strace", "-f", "-qq", "-o", "/dev/null"])


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=500_000, help="dd blocks: 2 syscalls each")
    ap.add_argument("--no-strace", action="store_true")
    opts = ap.parse_args()
    # SIGTERM (timeout, a CI runner) unwinds like Ctrl-C, so every cgroup and process made here
    # is removed by the finally blocks.
    signal.signal(signal.SIGTERM, _interrupt)
    if os.geteuid() != 0:
        print("bench/overhead.py needs root (cgroups, eBPF): sudo .venv/bin/python bench/overhead.py", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    Tracer(Bus(), stream=True).compile()  # warm the loader's cache for both subjects
    Tracer(Bus(), stream=False).compile()
    compile_s = time.monotonic() - t0
    small = max(opts.count // 10, 1)
    results: dict[str, list[float]] = {k: [] for k in
                                       ("bare", "floor", "aggregate", "stream", "bpftrace", "bare_small", "strace")}
    lost, delivered, aggregated = [], [], []
    have_bpftrace = shutil.which("bpftrace") is not None
    have_strace = shutil.which("strace") is not None and not opts.no_strace
    for r in range(opts.rounds):
        results["bare"].append(run_bare(opts.count))
        results["floor"].append(run_floor(opts.count))
        results["aggregate"].append(run_tracer(opts.count, stream=False)[0])
        s, n_lost, n_delivered, n_total = run_tracer(opts.count, stream=True)
        results["stream"].append(s)
        lost.append(n_lost)
        delivered.append(n_delivered)
        aggregated.append(n_total)
        if have_bpftrace:
            results["bpftrace"].append(run_bpftrace(opts.count))
        if have_strace:
            results["bare_small"].append(run_bare(small))
            results["strace"].append(run_strace(small))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in results.items() if v)
              + f", lost {lost[-1]}, delivered {delivered[-1]}/{aggregated[-1]}", flush=True)
    loader.release_cached()
    med = {k: statistics.median(v) for k, v in results.items() if v}
    ratio = lambda k, base="bare": round(med[k] / med[base], 3) if k in med else None  # noqa: E731
    out = {
        "bench": "overhead",
        "ratio": ratio("stream"),
        "ratio_aggregate": ratio("aggregate"),
        "ratio_floor": ratio("floor"),
        "ratio_bpftrace": ratio("bpftrace"),
        "ratio_strace": ratio("strace", "bare_small"),
        "aggregate_over_floor": round(med["aggregate"] / med["floor"], 3),
        "stream_over_floor": round(med["stream"] / med["floor"], 3),
        "lost": max(lost),
        "delivered": min(delivered),
        "syscalls": max(aggregated),
        "seconds": {k: round(v, 4) for k, v in med.items()},
        # Least-disturbed round of each subject: on a shared or noisy host the medians wander,
        # the minimums show what the probes themselves cost.
        "ratio_min": {k: round(min(v) / min(results["bare_small" if k == "strace" else "bare"]), 3)
                      for k, v in results.items() if v and not k.startswith("bare")},
        "aggregate_over_floor_min": round(min(results["aggregate"]) / min(results["floor"]), 3),
        "stream_over_floor_min": round(min(results["stream"]) / min(results["floor"]), 3),
        "rounds": opts.rounds,
        "count": opts.count,
        "compile_s": round(compile_s, 3),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
