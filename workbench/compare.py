"""The same command under several backends, side by side: where its syscalls land, how long each
takes to start, what each isolates. Used by `workbench compare` and the TUI's backends screen."""

from __future__ import annotations

import dataclasses
import shutil
import signal
from typing import Callable

from workbench.core import events as ev

BACKENDS = ("native", "bwrap", "gvisor")
TOOL_OF = {"bwrap": "bwrap", "gvisor": "runsc"}


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


def run_counted(options, on_error: Callable[[str], None] | None = None) -> tuple[int, dict, _Counts]:
    """One headless session (like `workbench run`) with our counters on its bus. A launch failure
    is passed to `on_error` as one line (the CLI prints it; the TUI shows it)."""
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
            if on_error is not None:
                on_error(f"{options.backend}: {exc}")
            session.close()
            return exc.exit_status, session.report(), counts
        except KeyboardInterrupt:
            session.kill(signal.SIGKILL)
            raise
    finally:
        session.close()
    status = exited.exit_code if exited.signal is None else 128 + exited.signal
    return status, session.report(), counts


def compare_rows(options, backends: list[str], on_error: Callable[[str], None] | None = None,
                 on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Run `options` once per backend, in order; one row each (`on_row` hears each as it lands)."""
    rows = []
    if "native" in backends:
        from workbench.sandbox.native import launcher

        launcher().ping()  # started now, so that native's launch time is a launch, not a start-up
    for backend in backends:
        run_options = dataclasses.replace(options, backend=backend, stdin="null", echo_output=False, record=None)
        status, report, counts = run_counted(run_options, on_error)
        rows.append(row(backend, status, report, counts))
        if on_row is not None:
            on_row(rows[-1])
    return rows


def row(backend: str, status: int, report: dict, counts: _Counts) -> dict:
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
