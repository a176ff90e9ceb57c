"""The JSON report of shared/DESIGN.md, built by listening to a session's events."""

from __future__ import annotations

import signal as signal_mod
import threading
from typing import Any

from workbench.core import events as ev


def signal_name(number: int) -> str:
    """SIGKILL, SIGRTMIN+3...: Python's Signals enum only names the first and last realtime ones."""
    try:
        return signal_mod.Signals(number).name
    except ValueError:
        if signal_mod.SIGRTMIN <= number <= signal_mod.SIGRTMAX:
            return f"SIGRTMIN+{number - signal_mod.SIGRTMIN}"
        return f"signal {number}"


MAX_DENIAL_ROWS = 1000
MAX_PROCESSES = 10_000


class ReportBuilder:
    """Subscribe with `bus.subscribe(builder)`; `build()` any time, complete after SessionEnded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.command: list[str] = []
        self.backend = ""
        self.profile_name = ""
        self.namespaces: dict[str, Any] = {}
        self.exit_code: int | None = None
        self.signal: int | None = None
        self.exec_error: str | None = None
        self.duration_s = 0.0
        self.launch_ms = 0.0
        self.cgroup = {"memory_peak_bytes": 0, "pids_peak": 0, "cpu_seconds": 0.0, "oom_killed": False}
        self.stats: dict[str, dict] = {}
        self.stream_counts: dict[str, dict] = {}
        self.app_counts: dict[str, dict] = {}
        self.denials: dict[tuple, dict] = {}
        self.processes: dict[int, dict] = {}
        self.processes_dropped = 0
        self.lost = 0
        self.findings: list[ev.Finding] = []
        self.notices: list[str] = []
        self.probes: dict[str, dict] = {}

    def __call__(self, e: ev.Event) -> None:
        with self._lock:
            handler = getattr(self, "_on_" + type(e).__name__, None)
            if handler:
                handler(e)

    def _on_SessionStarted(self, e: ev.SessionStarted) -> None:
        self.command, self.backend, self.profile_name = list(e.command), e.backend, e.profile_name

    def _on_SandboxReady(self, e: ev.SandboxReady) -> None:
        self.namespaces = e.namespaces
        self.launch_ms = e.launch_ms
        self.processes.setdefault(e.pid, {"pid": e.pid, "ppid": e.init_pid, "argv": list(self.command),
                                          "exit_code": None, "signal": None})

    def _on_SandboxExited(self, e: ev.SandboxExited) -> None:
        self.exit_code, self.signal, self.duration_s = e.exit_code, e.signal, e.duration_s
        self.exec_error = e.exec_error

    def _on_SyscallStats(self, e: ev.SyscallStats) -> None:
        self.stats = {s.name: {"count": s.count, "errors": dict(s.errors)} for s in e.stats}

    def _on_SyscallBatch(self, e: ev.SyscallBatch) -> None:
        # Host syscalls: only a fallback for when no in-kernel aggregate arrives. The app's
        # syscalls as gVisor's Sentry saw them are a view of their own.
        for s in e.syscalls:
            counts = self.app_counts if s.source == "gvisor" else self.stream_counts
            entry = counts.setdefault(s.name, {"count": 0, "errors": {}})
            entry["count"] += 1
            if s.errno:
                entry["errors"][s.errno] = entry["errors"].get(s.errno, 0) + 1

    def _on_SeccompDenial(self, e: ev.SeccompDenial) -> None:
        key = (e.syscall, e.abi, e.pid, e.action, repr(sorted(e.args.items())))
        entry = self.denials.get(key)
        if entry is None and len(self.denials) >= MAX_DENIAL_ROWS:
            # A sandbox can make endless distinct denials (a new path each time): past the cap,
            # the arguments are dropped and the rest is counted per syscall, process and action.
            key = (e.syscall, e.abi, e.pid, e.action, "*")
            entry = self.denials.get(key)
            if entry is None:
                entry = self.denials[key] = {"syscall": e.syscall, "action": e.action, "errno": e.errno,
                                             "pid": e.pid, "comm": e.comm, "args": {}, "count": 0,
                                             "rule": e.rule, "source": e.source, "abi": e.abi,
                                             "args_dropped": True}
        if entry is None:
            self.denials[key] = {"syscall": e.syscall, "action": e.action, "errno": e.errno, "pid": e.pid,
                                 "comm": e.comm, "args": dict(e.args), "count": 1, "rule": e.rule,
                                 "source": e.source, "abi": e.abi}
        else:
            entry["count"] += 1

    def _on_ProcessForked(self, e: ev.ProcessForked) -> None:
        if len(self.processes) >= MAX_PROCESSES:  # a fork bomb must not grow the report without end
            self.processes_dropped += 1
            return
        self.processes.setdefault(e.pid, {"pid": e.pid, "ppid": e.ppid, "argv": [], "exit_code": None,
                                          "signal": None})

    def _on_ProcessExec(self, e: ev.ProcessExec) -> None:
        if e.pid not in self.processes and len(self.processes) >= MAX_PROCESSES:
            return
        proc = self.processes.setdefault(e.pid, {"pid": e.pid, "ppid": None, "exit_code": None, "signal": None})
        proc["argv"] = list(e.argv) or [e.filename]

    def _on_ProcessExited(self, e: ev.ProcessExited) -> None:
        if e.pid not in self.processes and len(self.processes) >= MAX_PROCESSES:
            return
        proc = self.processes.setdefault(e.pid, {"pid": e.pid, "ppid": None, "argv": []})
        proc["exit_code"], proc["signal"] = e.exit_code, e.signal

    def _on_OomKill(self, e: ev.OomKill) -> None:
        self.cgroup["oom_killed"] = True

    def _on_ResourceSample(self, e: ev.ResourceSample) -> None:
        c = self.cgroup
        c["memory_peak_bytes"] = max(c["memory_peak_bytes"], e.memory_peak_bytes, e.memory_bytes)
        c["pids_peak"] = max(c["pids_peak"], e.pids, e.pids_peak)
        c["cpu_seconds"] = max(c["cpu_seconds"], e.cpu_seconds)
        c["memory_limit_bytes"], c["pids_limit"] = e.memory_limit_bytes, e.pids_limit
        if e.oom_kills:
            c["oom_killed"] = True

    def _on_EventsLost(self, e: ev.EventsLost) -> None:
        self.lost += e.count

    def _on_Finding(self, e: ev.Finding) -> None:
        # The live diagnosis republishes a finding as its evidence grows: keep the latest per rule.
        key = e.rule or (e.layer, e.summary)
        self.findings = [f for f in self.findings if (f.rule or (f.layer, f.summary)) != key] + [e]

    def _on_Notice(self, e: ev.Notice) -> None:
        if e.level in ("warning", "error"):
            self.notices.append(e.text)

    def _on_ProbeStatus(self, e: ev.ProbeStatus) -> None:
        self.probes[e.probe] = {"state": e.state, "reason": e.reason, "compile_s": round(e.compile_s, 3)}

    def build(self) -> dict[str, Any]:
        with self._lock:
            findings = sorted(self.findings, key=lambda f: -f.score)
            return {
                "command": self.command,
                "backend": self.backend,
                "profile": self.profile_name,
                "exit_code": self.exit_code,
                "signal": self.signal,
                "signal_name": signal_name(self.signal) if self.signal else None,
                "exec_error": self.exec_error,
                "duration_s": round(self.duration_s, 6),
                "launch_ms": round(self.launch_ms, 3),
                "namespaces": self.namespaces,
                "cgroup": dict(self.cgroup),
                "syscalls": self.stats or self.stream_counts,
                "app_syscalls": self.app_counts,
                "seccomp_denials": list(self.denials.values()),
                "processes": sorted(self.processes.values(), key=lambda p: p["pid"]),
                "processes_not_listed": self.processes_dropped,
                "lost_events": self.lost,
                "probes": self.probes,
                "notices": self.notices,
                "diagnosis": [{"layer": f.layer, "summary": f.summary, "evidence": list(f.evidence),
                               "fix": f.fix, "fix_options": list(f.fix_options),
                               "fix_profile": f.fix_profile, "rule": f.rule}
                              for f in findings],
            }
