"""What the TUI knows about one run, built from events in the UI thread only (no locks needed).

Everything here is bounded, whatever the session's length: the syscall stream keeps the last
`STREAM_KEEP` syscalls, output the last `OUTPUT_KEEP` lines, resources the last `SAMPLES_KEEP`
samples, denials merge repeats into counts. Nothing here imports Textual, so the same state can be
summarised for the compare view and unit-tested on its own.
"""

from __future__ import annotations

import errno as errno_mod
from collections import deque
from dataclasses import dataclass
from typing import Any

from workbench.core import events as ev

STREAM_KEEP = 50_000
OUTPUT_KEEP = 5_000
SAMPLES_KEEP = 1_200  # five minutes at 4 Hz
DENIALS_KEEP = 2_000
PROCESSES_KEEP = 4_096
NOTICES_KEEP = 200


@dataclass
class ProcessInfo:
    """One sandboxed process as the tree shows it."""

    pid: int
    ppid: int = 0
    comm: str = ""
    argv: tuple[str, ...] = ()
    exit_code: int | None = None
    signal: int | None = None
    exited: bool = False
    oom_killed: bool = False
    fatal_signal: int | None = None
    membership: ev.NamespaceMembership | None = None


@dataclass
class DenialRow:
    """Repeated denials of the same call by the same process with the same arguments, merged."""

    first: ev.SeccompDenial
    count: int = 1


@dataclass
class RunSummary:
    """A run in a few numbers, for comparing a relaunch with the run before it."""

    command: tuple[str, ...]
    profile_name: str
    exit_code: int | None
    signal: int | None
    duration_s: float | None
    syscalls: int
    errors: int
    denials: dict[str, int]
    errors_by_errno: dict[str, int]
    memory_peak_bytes: int
    lost: int
    findings: tuple[str, ...]


def _describe_exit(code: int | None, sig: int | None) -> str:
    if sig is not None:
        return f"killed by signal {sig}"
    if code is None:
        return "running"
    return f"exit {code}"


@dataclass
class StreamFilter:
    """Which syscalls the stream shows. Parsed from words like `openat errno:ENOENT pid:7 failed`."""

    names: frozenset[str] = frozenset()
    errnos: frozenset[str] = frozenset()
    pids: frozenset[int] = frozenset()
    failed_only: bool = False
    denied_only: bool = False

    @classmethod
    def parse(cls, text: str) -> "StreamFilter":
        names, errnos, pids = set(), set(), set()
        failed = denied = False
        for word in text.replace(",", " ").split():
            key, _, value = word.partition(":")
            if word in ("failed", "errors"):
                failed = True
            elif word == "denied":
                denied = True
            elif key == "pid" and value.isdigit():
                pids.add(int(value))
            elif key == "errno" and value:
                errnos.add(value.upper())
            elif key == "name" and value:
                names.add(value)
            elif word.upper() in errno_mod.__dict__ and word.upper().startswith("E"):
                errnos.add(word.upper())
            else:
                names.add(word)
        return cls(frozenset(names), frozenset(errnos), frozenset(pids), failed, denied)

    @property
    def empty(self) -> bool:
        return not (self.names or self.errnos or self.pids or self.failed_only or self.denied_only)

    def matches(self, sc: ev.Syscall) -> bool:
        if self.names and sc.name not in self.names:
            return False
        if self.errnos and sc.errno not in self.errnos:
            return False
        if self.pids and sc.pid not in self.pids and sc.tid not in self.pids:
            return False
        if self.failed_only and sc.errno is None:
            return False
        if self.denied_only and not sc.denied:
            return False
        return True

    def predicate(self):
        """A fast test for a flood: only the conditions that are set, as closures (no method call
        and no attribute walk over unset fields per syscall)."""
        checks = []
        if self.names:
            names = self.names
            checks.append(lambda sc: sc.name in names)
        if self.errnos:
            errnos = self.errnos
            checks.append(lambda sc: sc.errno in errnos)
        if self.pids:
            pids = self.pids
            checks.append(lambda sc: sc.pid in pids or sc.tid in pids)
        if self.failed_only:
            checks.append(lambda sc: sc.errno is not None)
        if self.denied_only:
            checks.append(lambda sc: sc.denied)
        if not checks:
            return lambda sc: True
        if len(checks) == 1:
            return checks[0]
        first, rest = checks[0], checks[1:]
        return lambda sc: first(sc) and all(c(sc) for c in rest)

    def describe(self) -> str:
        parts = sorted(self.names) + [f"errno:{e}" for e in sorted(self.errnos)]
        parts += [f"pid:{p}" for p in sorted(self.pids)]
        parts += ["failed"] * self.failed_only + ["denied"] * self.denied_only
        return " ".join(parts) or "all"


class SessionState:
    """The live picture of one run. Fed by the bridge in the UI thread."""

    def __init__(self) -> None:
        self.started: ev.SessionStarted | None = None
        self.ready: ev.SandboxReady | None = None
        self.released: ev.SandboxReleased | None = None
        self.exited: ev.SandboxExited | None = None
        self.ended = False
        self.t0_ns: int | None = None
        self.stream: deque[ev.Syscall] = deque(maxlen=STREAM_KEEP)
        self.syscalls_seen = 0
        self.stream_dropped = 0
        """Syscalls the UI skipped because it could not keep up (not the kernel's losses)."""
        self.kernel_lost = 0
        self.events_dropped = 0
        """Other events the UI skipped (an output flood beyond its inbox)."""
        self.processes: dict[int, ProcessInfo] = {}
        self.processes_dropped = 0
        self._memberships: dict[int, ev.NamespaceMembership] = {}
        self.denials: dict[tuple, DenialRow] = {}
        self.denials_total = 0
        self.stats: tuple[ev.SyscallStat, ...] = ()
        self.samples: deque[ev.ResourceSample] = deque(maxlen=SAMPLES_KEEP)
        self.output: deque[tuple[str, str]] = deque(maxlen=OUTPUT_KEEP)
        self.output_total = 0
        """Lines ever appended to `output` (so a pane knows how many are new)."""
        self._partial: dict[str, str] = {"stdout": "", "stderr": ""}
        self.findings: list[ev.Finding] = []
        self.notices: deque[ev.Notice] = deque(maxlen=NOTICES_KEEP)
        self.probes: dict[str, ev.ProbeStatus] = {}

    # --- feeding -------------------------------------------------------------------------------

    def add_syscalls(self, batch: list[ev.Syscall], skipped: int = 0) -> None:
        """Append to the stream; `skipped` arrived before these and were never kept (too many at once)."""
        if not batch:
            return
        if self.t0_ns is None:
            self.t0_ns = batch[0].ts_ns
        self.stream.extend(batch)  # C speed: this runs for every syscall of a flood
        self.syscalls_seen += skipped + len(batch)

    def apply(self, event: ev.Event) -> str:
        """Take one (non-syscall) event in; return the name of the part of the screen it changes."""
        if self.t0_ns is None:
            self.t0_ns = event.ts_ns
        handler = getattr(self, "_on_" + type(event).__name__, None)
        if handler is None:
            return ""
        return handler(event)

    def _on_SessionStarted(self, e: ev.SessionStarted) -> str:
        self.started = e
        self.t0_ns = e.ts_ns
        return "lifecycle"

    def _on_SandboxReady(self, e: ev.SandboxReady) -> str:
        self.ready = e
        info = self._process(e.pid)
        if info is not None and self.started and not info.argv:
            info.argv = self.started.command  # until its exec is seen, it is the command to come
        if info is not None and e.init_pid and e.init_pid != e.pid:
            init = self._process(e.init_pid)
            if init is not None:
                init.comm, init.argv = "init", ("init (pid 1)",)
                info.ppid = e.init_pid
        return "lifecycle"

    def _on_SandboxReleased(self, e: ev.SandboxReleased) -> str:
        self.released = e
        # Times are shown from the command's start, not from the request (which includes the
        # probes' compile): "0.003 s" then means 3 ms into the program.
        self.t0_ns = e.ts_ns
        return "lifecycle"

    def _on_SandboxExited(self, e: ev.SandboxExited) -> str:
        self.exited = e
        main = self.processes.get(self.ready.pid) if self.ready else None
        if main is not None and not main.exited:  # when no probe saw its exit, the backend did
            main.exited, main.exit_code, main.signal = True, e.exit_code, e.signal
        return "lifecycle"

    def _on_SessionEnded(self, e: ev.SessionEnded) -> str:
        self.ended = True
        self._flush_output()
        return "lifecycle"

    def _on_Notice(self, e: ev.Notice) -> str:
        self.notices.append(e)
        return "notices"

    def _on_ProbeStatus(self, e: ev.ProbeStatus) -> str:
        self.probes[e.probe] = e
        return "notices"

    def _on_Finding(self, e: ev.Finding) -> str:
        # The diagnosis may restate a finding (live, then final): the latest word replaces it.
        self.findings = [f for f in self.findings if (f.layer, f.summary) != (e.layer, e.summary)]
        self.findings.append(e)
        self.findings.sort(key=lambda f: -f.score)
        return "findings"

    def _on_EventsLost(self, e: ev.EventsLost) -> str:
        self.kernel_lost += e.count
        return "stream"

    def _on_SyscallStats(self, e: ev.SyscallStats) -> str:
        self.stats = e.stats
        return "top"

    def _on_SeccompDenial(self, e: ev.SeccompDenial) -> str:
        self.denials_total += 1
        key = (e.pid, e.syscall, e.action, repr(sorted(e.args.items())))
        row = self.denials.get(key)
        if row is not None:
            row.count += 1
        elif len(self.denials) < DENIALS_KEEP:
            self.denials[key] = DenialRow(e)
        return "denials"

    def _on_ResourceSample(self, e: ev.ResourceSample) -> str:
        self.samples.append(e)
        return "resources"

    def _on_Output(self, e: ev.Output) -> str:
        text = self._partial.get(e.stream, "") + e.data.decode("utf-8", "replace")
        *lines, rest = text.split("\n")
        for line in lines:
            self._line(e.stream, line)
        # A line with no end yet stays pending, but never grows without bound.
        if len(rest) > 4096:
            self._line(e.stream, rest)
            rest = ""
        self._partial[e.stream] = rest
        return "output"

    def _line(self, stream: str, text: str) -> None:
        self.output.append((stream, text))
        self.output_total += 1

    def _flush_output(self) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self._line(stream, rest)
        self._partial = {"stdout": "", "stderr": ""}

    def _process(self, pid: int) -> ProcessInfo | None:
        info = self.processes.get(pid)
        if info is None:
            if len(self.processes) >= PROCESSES_KEEP:
                self.processes_dropped += 1
                return None
            info = self.processes[pid] = ProcessInfo(pid, membership=self._memberships.pop(pid, None))
        return info

    def _on_ProcessForked(self, e: ev.ProcessForked) -> str:
        info = self._process(e.pid)
        if info is not None:
            info.ppid, info.comm = e.ppid, e.comm or info.comm
        return "processes"

    def _on_ProcessExec(self, e: ev.ProcessExec) -> str:
        info = self._process(e.pid)
        if info is not None:
            info.argv = e.argv or (e.filename,)
            info.comm = e.comm or e.filename.rsplit("/", 1)[-1]
        return "processes"

    def _on_ProcessExited(self, e: ev.ProcessExited) -> str:
        info = self._process(e.pid)
        if info is not None:
            info.exited, info.exit_code, info.signal = True, e.exit_code, e.signal
            info.comm = info.comm or e.comm
        return "processes"

    def _on_OomKill(self, e: ev.OomKill) -> str:
        info = self._process(e.pid)
        if info is not None:
            info.oom_killed = True
        return "processes"

    def _on_FatalSignal(self, e: ev.FatalSignal) -> str:
        info = self._process(e.pid)
        if info is not None:
            info.fatal_signal = e.signal
        return "processes"

    def _on_NamespaceMembership(self, e: ev.NamespaceMembership) -> str:
        # Samplers also see the launcher's helpers around the sandbox: keep their samples aside
        # until (unless) the pid shows up as a process of the sandbox.
        info = self.processes.get(e.pid)
        if info is None:
            if len(self._memberships) < PROCESSES_KEEP:
                self._memberships[e.pid] = e
            return ""
        info.membership = e
        return "processes"

    # --- reading -------------------------------------------------------------------------------

    @property
    def profile(self) -> dict[str, Any]:
        return self.started.profile if self.started else {}

    @property
    def phase(self) -> str:
        if self.ended:
            return "ended"
        if self.exited:
            return "exited"
        if self.released:
            return "running"
        if self.ready:
            return "ready"
        if self.started:
            return "starting"
        return "waiting"

    def exit_text(self) -> str:
        if self.exited is None:
            return self.phase
        text = _describe_exit(self.exited.exit_code, self.exited.signal)
        if self.exited.exec_error:
            text += f" (exec failed: {self.exited.exec_error})"
        return text + f" after {self.exited.duration_s:.2f} s"

    def summary(self) -> RunSummary:
        denials: dict[str, int] = {}
        for row in self.denials.values():
            denials[row.first.syscall] = denials.get(row.first.syscall, 0) + row.count
        by_errno: dict[str, int] = {}
        for stat in self.stats:
            for name, n in stat.errors.items():
                by_errno[name] = by_errno.get(name, 0) + n
        return RunSummary(
            command=self.started.command if self.started else (),
            profile_name=self.started.profile_name if self.started else "",
            exit_code=self.exited.exit_code if self.exited else None,
            signal=self.exited.signal if self.exited else None,
            duration_s=self.exited.duration_s if self.exited else None,
            syscalls=sum(s.count for s in self.stats),
            errors=sum(by_errno.values()),
            denials=denials,
            errors_by_errno=by_errno,
            memory_peak_bytes=max((s.memory_peak_bytes for s in self.samples), default=0),
            lost=self.kernel_lost + self.stream_dropped,
            findings=tuple(f.summary for f in self.findings),
        )


def percentile_ns(histogram: tuple[int, ...], q: float) -> int | None:
    """Upper bound of the log2 slot holding the q-th quantile; None for an empty histogram."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for slot, n in enumerate(histogram):
        seen += n
        if seen >= rank and n:
            return 2 ** (slot + 1)
    return 2 ** len(histogram)


def format_ns(ns: int | None) -> str:
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns} ns"


def format_bytes(n: int | None) -> str:
    if n is None:
        return "none"
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n}B"
