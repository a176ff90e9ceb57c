"""`workbench compare`, `ps` and `attach`: the same command under every backend side by side, the
sandboxes already on this host, and probes on one we did not start.

    workbench compare [RUN OPTIONS] -- CMD    one table: where the syscalls land per backend
    workbench ps [--json]                     every sandboxed process tree, grouped, with its layers
    workbench attach PID|CGROUP [--seconds S] [--report FILE]   read-only probes on a sandbox

`register(subparsers)` adds them; each handler returns an exit status.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from workbench.core import events as ev
from workbench.core.bus import Bus
from workbench.core.errors import UsageError

from workbench.compare import BACKENDS, TOOL_OF, available_backends, compare_rows


def register(sub) -> None:
    from workbench.cli.main import add_run_options

    cmp = sub.add_parser("compare", help="the same command under every available backend, one table")
    add_run_options(cmp)
    cmp.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated subset, in order")
    cmp.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    cmp.set_defaults(handler=compare_command)
    ps = sub.add_parser("ps", help="every sandboxed process tree on this host, with its isolation layers")
    ps.add_argument("--json", action="store_true")
    ps.set_defaults(handler=ps_command)
    att = sub.add_parser("attach", help="watch a sandbox we did not start (read-only eBPF probes)")
    att.add_argument("target", help="a pid, or a cgroup path as in /proc/PID/cgroup")
    att.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until it ends)")
    att.add_argument("--report", metavar="FILE", help="write the JSON report ('-' = stdout)")
    att.set_defaults(handler=attach_command)


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def format_table(rows: list[dict]) -> str:
    head = ("backend", "exit", "launch ms", "to app ms", "run s", "app syscalls", "host syscalls", "denials",
            "peak memory", "namespaces")
    lines = [head]
    for r in rows:
        start = "-" if r["start_ms"] is None else f"{r['start_ms']:.1f}"
        lines.append((r["backend"], str(r["exit"]), f"{r['launch_ms']:.1f}", start, f"{r['run_s']:.3f}",
                      _n(r["app_syscalls"]), _n(r["host_syscalls"]), str(r["denials"]),
                      f"{r['memory_peak_bytes'] / 2**20:.1f} MiB", ",".join(r["namespaces"]) or "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    out.append("launch: request to held at the start gate; to app: release to the app's first syscall "
               "(gVisor: runsc and the Sentry boot in between; - without probes).")
    out.append("app syscalls: what the command asked for (gVisor: as its Sentry answered them, never "
               "reaching the host); host syscalls: what the host kernel ran for it (- without probes).")
    return "\n".join(out)


def compare_command(args) -> int:
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in wanted if b not in BACKENDS]
    if unknown:
        raise UsageError(f"unknown backend {unknown[0]!r}", f"use some of {', '.join(BACKENDS)}")
    have = available_backends()
    missing = [b for b in wanted if b not in have]
    for b in missing:
        print(f"workbench: skipping {b}: {TOOL_OF[b]} is not installed (see `workbench doctor`)", file=sys.stderr)
    from workbench.cli.main import session_options

    options = session_options(args, stdin="null", echo=False)
    say = lambda line: print(f"workbench: {line}", file=sys.stderr)  # noqa: E731
    rows = compare_rows(options, [b for b in wanted if b in have], on_error=say)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    if args.report:
        from workbench.cli.run import write_report

        write_report({"compare": rows}, args.report)
    return 0 if rows and all(r["exit"] == rows[0]["exit"] for r in rows) else 1


# --- ps ----------------------------------------------------------------------------------------


def ps_command(args) -> int:
    from workbench.discover import scan

    found = scan()
    if args.json:
        print(json.dumps([s.to_dict() for s in found], indent=2))
        return 0
    if not found:
        print("no sandboxed processes found")
        return 0
    short = {"seccomp": "seccomp", "no_new_privs": "nnp", "capabilities": "caps", "cgroup": "cgroup"}
    lines = [("ROOT", "KIND", "PROCS", "LAYERS", "COMMAND")]
    for s in found:
        ns = [layer[:-3] for layer in s.layers if layer.endswith("-ns")]
        rest = [short.get(layer, layer) for layer in s.layers if not layer.endswith("-ns")]
        layers = (f"ns:{'+'.join(ns)} " if ns else "") + " ".join(rest)
        lines.append((str(s.root), s.kind, str(len(s.pids)), layers.strip(), s.command[:60]))
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line[:4], widths)) + "  " + line[4])
    return 0


# --- attach ------------------------------------------------------------------------------------


class Attachment:
    """Probes on a sandbox we did not start: by its cgroup id when it has a cgroup of its own, else
    its pid tree (the root and what it forks from now on). Read-only: the target is never moved,
    signalled or paused. Events go to `bus`, like a session's."""

    def __init__(self, spec: str, bus: Bus | None = None):
        from workbench.discover import resolve

        self.target = resolve(spec)
        self.bus = bus or Bus()
        self.tracer = None

    def start(self) -> None:
        from workbench.tracing.tracer import Tracer

        t = self.target
        self.tracer = Tracer(self.bus, stream=True)
        self.tracer.compile()
        self.bus.publish(ev.SandboxReady(ev.now_ns(), t.root_pid, t.root_pid, t.cgroup_dir, t.cgroup_id))
        self.tracer.attach(cgroup_id=t.cgroup_id, root_pid=t.root_pid, gate_pid=0)
        self.tracer.start()

    def alive(self) -> bool:
        t = self.target
        if t.cgroup_dir is not None:
            from workbench.discover.procfs import cgroup_procs

            try:
                return bool(cgroup_procs(t.cgroup_dir))
            except OSError:
                return False
        return os.path.exists(f"/proc/{t.root_pid}")

    def stop(self) -> None:
        if self.tracer is not None:
            self.tracer.stop()
            self.bus.publish(ev.SessionEnded(ev.now_ns()))


def attach_command(args) -> int:
    from workbench.report import ReportBuilder

    att = Attachment(args.target)
    builder = ReportBuilder()
    att.bus.subscribe(builder)
    seen = {"n": 0}
    att.bus.subscribe(lambda e: seen.__setitem__("n", seen["n"] + len(e.syscalls)), ev.SyscallBatch)
    print(f"workbench: attaching to {att.target.description}; Ctrl-C to detach", file=sys.stderr)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        att.start()
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        last = 0
        while not stop.wait(1.0):
            n = seen["n"]
            print(f"workbench: {n - last} syscalls/s, {n} in all", file=sys.stderr)
            last = n
            if not att.alive() or (deadline is not None and time.monotonic() >= deadline):
                break
    finally:
        att.stop()
        signal.signal(signal.SIGINT, previous)
    report = builder.build()
    report["command"] = [att.target.description]
    top = sorted(report["syscalls"].items(), key=lambda kv: -kv[1]["count"])[:10]
    print("top syscalls: " + ", ".join(f"{name} {v['count']}" for name, v in top), file=sys.stderr)
    for d in report["seccomp_denials"][:10]:
        print(f"denied: {d['syscall']} ({d['action']} {d['errno'] or ''}) pid {d['pid']} x{d['count']}",
              file=sys.stderr)
    if args.report:
        from workbench.cli.run import write_report

        write_report(report, args.report)
    return 0
