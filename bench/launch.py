"""Launch latency: request to the command's exit for `/bin/true`, our native backend with the
default profile against `bwrap --unshare-all` with the equivalent filesystem, and a bare
fork+exec, alternated in one run so that both see the same machine state.

Ours is measured from the request (cgroup creation included) until the exit status is known and
the cgroups are removed: everything a user waits for. bwrap's from spawn to exit. The launcher
process is started once before timing, as a running workbench has it.

    .venv/bin/python bench/launch.py [N]     (root)

Last line: {"bench": "launch", "ratio": <ours / bwrap>, ...}
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from workbench.sandbox import profile as prof
from workbench.sandbox.native import NativeSandbox, launcher
from workbench.sandbox.plan import make_plan

BWRAP = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
         "--dev", "/dev", "--tmpfs", "/tmp", "--hostname", "sandbox", "--new-session", "--cap-drop", "ALL"]


def ours(plan, devnull: int) -> float:
    launcher().ping()  # the launcher is idle (its spare built) before the clock starts
    t0 = time.perf_counter()
    sb = NativeSandbox(plan, (devnull, devnull, devnull))
    sb.launch()
    sb.release()
    status = sb.wait(30)
    sb.close()
    assert status is not None and status.exit_code == 0, status
    return time.perf_counter() - t0


def spawn(argv: list[str]) -> float:
    launcher().ping()  # nothing of ours runs while a peer is timed
    t0 = time.perf_counter()
    rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL).returncode
    assert rc == 0, argv
    return time.perf_counter() - t0


def summary(samples: list[float]) -> dict:
    ms = sorted(s * 1000 for s in samples)
    return {"median_ms": round(statistics.median(ms), 3), "p90_ms": round(ms[int(len(ms) * 0.9) - 1], 3),
            "min_ms": round(ms[0], 3)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    plan = make_plan(prof.load("default"), ["/bin/true"], stdin="null")
    cold = make_plan(prof.load("default"), ["/bin/true"], stdin="null")
    cold.extra["fresh"] = True  # never takes the spare: the full cost of building a sandbox
    plan.extra["spare"] = True  # what the TUI's relaunch loop and `compare` ask for
    devnull = os.open("/dev/null", os.O_RDWR)
    launcher()  # start the launcher process outside the timings
    subjects = {"native": lambda: ours(plan, devnull), "native_cold": lambda: ours(cold, devnull),
                "bare": lambda: spawn(["/bin/true"])}
    if shutil.which("bwrap"):
        subjects["bwrap"] = lambda: spawn(BWRAP + ["/bin/true"])
    for f in subjects.values():  # warm caches
        f()
    times: dict[str, list[float]] = {k: [] for k in subjects}
    for _ in range(n):
        for name, f in subjects.items():
            times[name].append(f())
    result = {k: summary(v) for k, v in times.items()}
    for name, s in result.items():
        print(f"{name:8} median {s['median_ms']:7.2f} ms   p90 {s['p90_ms']:7.2f} ms   min {s['min_ms']:7.2f} ms")
    bwrap = result.get("bwrap", {}).get("median_ms")
    ratio = lambda name: round(result[name]["median_ms"] / bwrap, 3) if bwrap else None  # noqa: E731
    print(json.dumps({"bench": "launch", "ratio": ratio("native"), "ratio_cold": ratio("native_cold"),
                      "n": n, **result}))


if __name__ == "__main__":
    main()
