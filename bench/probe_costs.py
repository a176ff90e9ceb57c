"""What each piece of a syscall probe costs on this kernel: the evidence behind the probes' design
and behind what `bench/overhead.py`'s goals can and cannot reach here.

    .venv/bin/python bench/probe_costs.py [--rounds N] [--count N]     (root)

The workload of bench/overhead.py (dd, 1,000,128 syscalls), timed bare, under the floor (empty
programs on raw sys_enter/sys_exit) and under one piece at a time (probes/bench_costs.c, built
with -DWB_PART=N), alternated in each round. Each piece is reported in ns per syscall over the
floor and as a fraction of the floor's own cost (floor - bare), since the goals are ratios to
the floor. The last line is one JSON object; medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from overhead import _interrupt, dd, timed  # noqa: E402

PARTS = {
    0: "floor (empty programs)",
    1: "per-CPU slot, no helper call",
    2: "per-CPU slot + a clock read per hook",
    3: "a trivial helper call per hook",
    4: "cgroup-id read per hook",
    5: "task-local storage per hook",
}
SOURCE = ROOT / "probes" / "bench_costs.c"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--count", type=int, default=500_000, help="dd blocks: 2 syscalls each")
    opts = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    if os.geteuid() != 0:
        print("bench/probe_costs.py needs root (eBPF)", file=sys.stderr)
        return 1
    from bcc import BPF

    builds = {part: BPF(src_file=str(SOURCE).encode(), cflags=[f"-DWB_PART={part}"]) for part in PARTS}
    seconds: dict[str, list[float]] = {"bare": [], **{str(p): [] for p in PARTS}}
    try:
        for r in range(opts.rounds):
            seconds["bare"].append(timed(dd(opts.count)))
            for part, bpf in builds.items():
                bpf.attach_raw_tracepoint(tp=b"sys_enter", fn_name=b"wb_part_enter")
                bpf.attach_raw_tracepoint(tp=b"sys_exit", fn_name=b"wb_part_exit")
                try:
                    seconds[str(part)].append(timed(dd(opts.count)))
                finally:
                    bpf.detach_raw_tracepoint(tp=b"sys_enter")
                    bpf.detach_raw_tracepoint(tp=b"sys_exit")
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in seconds.items()), flush=True)
    finally:
        for bpf in builds.values():
            bpf.cleanup()
    calls = 2 * opts.count + 128  # dd's own start-up makes 128 more (bench/overhead.py counts them)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    per_call = {k: v / calls * 1e9 for k, v in med.items()}
    floor_cost = per_call["0"] - per_call["bare"]
    rows = {}
    for part, what in PARTS.items():
        extra = per_call[str(part)] - per_call["0"]
        rows[what] = {"ns_per_syscall_over_floor": round(extra, 1),
                      "fraction_of_floor": round(extra / per_call["0"], 3)}
    print(f"bare {per_call['bare']:.1f} ns/syscall; the floor adds {floor_cost:.1f}")
    for what, row in rows.items():
        print(f"  {what:40s} +{row['ns_per_syscall_over_floor']:6.1f} ns  ({row['fraction_of_floor']:.3f} of the floor)")
    print(json.dumps({"bench": "probe_costs", "bare_ns": round(per_call["bare"], 1),
                      "floor_ns": round(per_call["0"], 1), "parts": rows, "rounds": opts.rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
