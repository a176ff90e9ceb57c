"""Launch latency: from the request to the command's first instruction, for our native backend
with the default profile against `bwrap --unshare-all` with the equivalent filesystem, and a bare
fork+exec, alternated in one run so that every subject sees the same machine state.

The command is a tiny C program (built here with gcc) that prints CLOCK_MONOTONIC as its first act,
so "exec" is measured where it happens, inside the sandbox, for every subject alike. The time to
the exit status (teardown included) is reported too.

Subjects:
  native        default profile, a spare built ahead (what the TUI's rerun, `r`, gets: the launcher
                builds the next sandbox of the profile while the user reads the last run)
  native_cold   default profile, built from nothing at the request
  bwrap         bwrap --unshare-all --ro-bind / / --proc --dev --tmpfs /tmp --cap-drop ALL ...
  bare          fork+exec, no sandbox
Before each timing the launcher is asked to be idle, so no spare is built while a peer runs.

    .venv/bin/python bench/launch.py [N]     (root; N defaults to 100)

Last line: {"bench": "launch", "ratio": <native / bwrap, to exec>, "ratio_cold": ..., ...}
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from workbench.sandbox import profile as prof
from workbench.sandbox.native import NativeSandbox, launcher
from workbench.sandbox.plan import make_plan

STAMP_C = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    printf("%lld\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
    return 0;
}
"""
INSIDE = "/tmp/stamp"


def build_stamp(workdir: str) -> str:
    src = os.path.join(workdir, "stamp.c")
    with open(src, "w") as f:
        f.write(STAMP_C)
    out = os.path.join(workdir, "stamp")
    subprocess.run(["gcc", "-O2", "-static", "-o", out, src], check=True)
    os.chmod(workdir, 0o755)
    return out


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def ours(plan, devnull: int) -> tuple[float, float]:
    launcher().ping()  # the launcher is idle (its spare built) before the clock starts
    r, w = os.pipe()
    t0 = time.monotonic_ns()
    sb = NativeSandbox(plan, (devnull, w, devnull))
    sb.launch()
    os.close(w)
    sb.release()
    status = sb.wait(30)
    t_exit = time.monotonic_ns()
    sb.close()
    assert status is not None and status.exit_code == 0, status
    return (int(read_all(r)) - t0) / 1e9, (t_exit - t0) / 1e9


def spawn(argv: list[str]) -> tuple[float, float]:
    launcher().ping()  # nothing of ours runs while a peer is timed
    t0 = time.monotonic_ns()
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, check=True).stdout
    t_exit = time.monotonic_ns()
    return (int(out) - t0) / 1e9, (t_exit - t0) / 1e9


def summary(samples: list[float]) -> dict:
    ms = sorted(s * 1000 for s in samples)
    return {"median_ms": round(statistics.median(ms), 3), "p90_ms": round(ms[max(0, int(len(ms) * 0.9) - 1)], 3),
            "min_ms": round(ms[0], 3)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    workdir = tempfile.mkdtemp(prefix="wb-bench-")
    stamp = build_stamp(workdir)
    base = prof.apply_overrides(prof.load("default"), binds=[f"{workdir}:{INSIDE}"])
    warm = make_plan(base, [f"{INSIDE}/stamp"], stdin="null")
    warm.extra["spare"] = True
    cold = make_plan(base, [f"{INSIDE}/stamp"], stdin="null")
    cold.extra["fresh"] = True  # never takes a spare: the full cost of building a sandbox
    devnull = os.open("/dev/null", os.O_RDWR)
    launcher()  # start the launcher process outside the timings, as a running workbench has it
    subjects = {"native": lambda: ours(warm, devnull), "native_cold": lambda: ours(cold, devnull),
                "bare": lambda: spawn([stamp])}
    if shutil.which("bwrap"):
        subjects["bwrap"] = lambda: spawn([
            "bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
            "--dev", "/dev", "--tmpfs", "/tmp", "--ro-bind", workdir, INSIDE, "--hostname", "sandbox",
            "--new-session", "--cap-drop", "ALL", f"{INSIDE}/stamp"])
    if shutil.which("runsc"):
        # gVisor: `runsc do` as the gvisor backend runs it (no network, host root under an overlay).
        # Its CLOCK_MONOTONIC is the Sentry's own (offset from the host's) while CLOCK_REALTIME
        # follows the host, so this subject stamps with a realtime twin of the stamp program.
        rt_src = os.path.join(workdir, "stamp_rt.c")
        with open(rt_src, "w") as f:
            f.write(STAMP_C.replace("CLOCK_MONOTONIC", "CLOCK_REALTIME"))
        subprocess.run(["gcc", "-O2", "-static", "-o", rt_src[:-2], rt_src], check=True)

        def gvisor() -> tuple[float, float]:
            launcher().ping()
            t0, m0 = time.time_ns(), time.monotonic_ns()
            out = subprocess.run(["runsc", "--network=none", f"--root={workdir}/runsc", "--ignore-cgroups", "do",
                                  "-quiet", rt_src[:-2]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 check=True).stdout
            return (int(out) - t0) / 1e9, (time.monotonic_ns() - m0) / 1e9

        subjects["gvisor"] = gvisor
    for f in subjects.values():  # warm caches, build the first spare
        f()
    to_exec: dict[str, list[float]] = {k: [] for k in subjects}
    to_exit: dict[str, list[float]] = {k: [] for k in subjects}
    for _ in range(n):
        for name, f in subjects.items():
            a, b = f()
            to_exec[name].append(a)
            to_exit[name].append(b)
    shutil.rmtree(workdir)
    result = {k: {"to_exec": summary(to_exec[k]), "to_exit": summary(to_exit[k])} for k in subjects}
    print(f"{'':12} {'to exec: median':>16} {'p90':>9} {'min':>9}   {'to exit: median':>16}")
    for name, r in result.items():
        e, x = r["to_exec"], r["to_exit"]
        print(f"{name:12} {e['median_ms']:13.2f} ms {e['p90_ms']:6.2f} ms {e['min_ms']:6.2f} ms   "
              f"{x['median_ms']:13.2f} ms")
    bwrap = result.get("bwrap", {}).get("to_exec", {}).get("median_ms")

    def ratio(name: str, phase: str = "to_exec") -> float | None:
        peer = result.get("bwrap", {}).get(phase, {}).get("median_ms")
        return round(result[name][phase]["median_ms"] / peer, 3) if peer else None

    print(json.dumps({"bench": "launch", "ratio": ratio("native") if bwrap else None,
                      "ratio_cold": ratio("native_cold"), "ratio_to_exit": ratio("native", "to_exit"),
                      "ratio_cold_to_exit": ratio("native_cold", "to_exit"), "n": n, **result}))


if __name__ == "__main__":
    main()
