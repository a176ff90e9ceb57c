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
import shutil
import signal
import sys
import threading
import time

from workbench.core import events as ev
from workbench.core.bus import Bus
from workbench.core.errors import UsageError

BACKENDS = ("native", "bwrap", "gvisor")
TOOL_OF = {"bwrap": "bwrap", "gvisor": "runsc"}


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


def available_backends() -> list[str]:
    return ["native"] + [b for b, tool in TOOL_OF.items() if shutil.which(tool)]


# --- compare -----------------------------------------------------------------------------------


class _Counts:
    """Per run: app syscalls as gVisor's Sentry saw them, and when the app's first syscall came."""

    def __init__(self, backend: str) -> None:
        self.source = "gvisor" if backend == "gvisor" else "host"
        self.gvisor_syscalls = 0
        self.released_ns: int | None = None
        self.first_app_ns: int | None = None

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.SyscallBatch):
            mine = [s for s in e.syscalls if s.source == self.source and not s.denied]
            if self.source == "gvisor":
                self.gvisor_syscalls += len(mine)
            if mine and self.first_app_ns is None:
                self.first_app_ns = min(s.ts_ns for s in mine)
        elif isinstance(e, ev.SandboxReleased):
            self.released_ns = e.ts_ns

    @property
    def start_ms(self) -> float | None:
        """Release to the app's first syscall (gVisor: its boot included)."""
        if self.released_ns is None or self.first_app_ns is None:
            return None
        return max(0.0, (self.first_app_ns - self.released_ns) / 1e6)


def _hook_gvisor(session) -> None:
    """Until the session calls attach_bus itself: hand the bus over while the app is held."""
    def on_ready(_e: ev.Event) -> None:
        sb = session.sandbox
        if getattr(sb, "_bus", False) is None and hasattr(sb, "attach_bus"):
            sb.attach_bus(session.bus)

    session.bus.subscribe(on_ready, ev.SandboxReady)


def run_counted(options) -> tuple[int, dict, _Counts]:
    """One headless session (like `workbench run`) with our counters on its bus."""
    from workbench.core.errors import WorkbenchError
    from workbench.session import Session

    session = Session(options)
    counts = _Counts(options.backend)
    session.bus.subscribe(counts)
    _hook_gvisor(session)
    exited = None
    try:
        try:
            session.start()
            exited = session.wait()
        except WorkbenchError as exc:
            print(f"workbench: {options.backend}: {exc}", file=sys.stderr)
            session.close()
            return exc.exit_status, session.report(), counts
        except KeyboardInterrupt:
            session.kill(signal.SIGKILL)
            raise
    finally:
        session.close()
    status = exited.exit_code if exited.signal is None else 128 + exited.signal
    return status, session.report(), counts


def compare_rows(args, backends: list[str]) -> list[dict]:
    from workbench.cli.main import session_options

    rows = []
    if "native" in backends:
        from workbench.sandbox.native import launcher

        conn = launcher()  # start the launcher now, so native's launch time is a launch, not a start-up
        if hasattr(conn, "ping"):
            conn.ping()
    for backend in backends:
        args.backend = backend
        status, report, counts = run_counted(session_options(args, stdin="null", echo=False))
        rows.append(_row(backend, status, report, counts))
    return rows


def _row(backend: str, status: int, report: dict, counts: _Counts) -> dict:
    traced = report.get("probes", {}).get("syscalls", {}).get("state") in ("attached", "detached")
    host_total = sum(v["count"] for v in report.get("syscalls", {}).values()) if traced else None
    denials = sum(d["count"] for d in report.get("seccomp_denials", []))
    isolated = sorted(t for t, v in report.get("namespaces", {}).items() if v.get("isolated"))
    if backend == "gvisor":
        app, host = counts.gvisor_syscalls, host_total
        denials = 0  # the Sentry's ptrace stubs show as sys_exit without sys_enter: not seccomp
    else:
        app, host = host_total, host_total
    return {"backend": backend, "exit": status, "launch_ms": report.get("launch_ms", 0.0),
            "start_ms": None if counts.start_ms is None else round(counts.start_ms, 3),
            "run_s": report.get("duration_s", 0.0), "app_syscalls": app, "host_syscalls": host,
            "denials": denials, "memory_peak_bytes": report.get("cgroup", {}).get("memory_peak_bytes", 0),
            "namespaces": isolated, "notes": list(report.get("notices", []))[:3]}


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
    rows = compare_rows(args, [b for b in wanted if b in have])
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
