"""What the rules look at: the few events of a session that can explain a failure, kept small.

A session can publish millions of syscalls; only failing ones, denials, process endings, OOM kills,
the latest resource sample and the tail of stderr matter for a diagnosis. `Facts.add()` is cheap
and bounded, so the live diagnoser can feed every event through it.
"""

from __future__ import annotations

import collections
import copy
import errno as errno_mod
import os
import re
from typing import Any, Iterable

from workbench.core import events as ev
from workbench.diagnose.view import SandboxView

MAX_FAILED_CALLS = 5_000
MAX_DENIALS = 2_000  # each rule needs a handful of examples; a flood must not grow the workbench
STDERR_TAIL = 16_384
_LAUNCH_FAILED = re.compile(r"^(?P<cmd>\S+): (command not found|permission denied)")
_ADDR = re.compile(r"^\[?(?P<host>[0-9a-fA-F:.]+)\]?:(?P<port>\d+)$")


class Facts:
    """Evidence accumulated from a session's events."""

    def __init__(self, profile: dict[str, Any] | None = None):
        self.profile: dict[str, Any] = dict(profile or {})
        self.command: tuple[str, ...] = ()
        self.backend = "native"
        self.t0: int | None = None
        """Release time (or the first event's): evidence times are shown relative to it."""
        self.main_pid: int | None = None
        self.exited: ev.SandboxExited | None = None
        self.failed: collections.deque[ev.Syscall] = collections.deque(maxlen=MAX_FAILED_CALLS)
        self.denials: list[ev.SeccompDenial] = []
        self.fatal: list[ev.FatalSignal] = []
        self.ooms: list[ev.OomKill] = []
        self.proc_exits: list[ev.ProcessExited] = []
        self.execs: list[ev.ProcessExec] = []
        self.sample: ev.ResourceSample | None = None
        self.peak_memory = 0
        self.peak_pids = 0
        self.oom_kills = 0
        self.stderr = bytearray()
        self.notices: list[ev.Notice] = []
        self.cwds: dict[int, str] = {}
        self.saw_syscalls = False
        self._paths: dict[int, tuple[ev.Syscall, list[str]]] = {}
        self._view: SandboxView | None = None
        self._view_of: dict[str, Any] | None = None
        """False when no probe reported anything (--no-trace, or eBPF unavailable)."""
        self.version = 0
        """Bumped when something a rule could use arrived (the live diagnoser re-runs on change)."""

    def add(self, event: ev.Event) -> None:
        if self.t0 is None:
            self.t0 = event.ts_ns
        if isinstance(event, (ev.SyscallBatch, ev.Syscall)):
            self.saw_syscalls = True
            for sc in event.syscalls if isinstance(event, ev.SyscallBatch) else (event,):
                if sc.source != "host" and self.backend != "gvisor":
                    self._become_gvisor()
                elif sc.source == "host" and self.backend == "gvisor":
                    continue  # the Sentry's own host syscalls: not the app's
                if sc.ret < 0 and sc.errno:
                    self.failed.append(sc)
                    self.version += 1
                elif sc.name == "chdir":
                    self._chdir(sc)
        elif isinstance(event, ev.ProcessForked):
            if event.ppid in self.cwds:
                self.cwds[event.pid] = self.cwds[event.ppid]
        elif isinstance(event, ev.SeccompDenial):
            if self.backend == "gvisor":
                return  # gVisor's platform traps the app's syscalls with seccomp: not denials
            if len(self.denials) < MAX_DENIALS:
                self.denials.append(event)
            self.version += 1
        elif isinstance(event, ev.ResourceSample):
            self.sample = event
            self.peak_memory = max(self.peak_memory, event.memory_peak_bytes, event.memory_bytes)
            self.peak_pids = max(self.peak_pids, event.pids)
            if event.oom_kills > self.oom_kills:
                self.oom_kills = event.oom_kills
                self.version += 1
        elif isinstance(event, ev.Output):
            if event.stream == "stderr":
                self.stderr += event.data
                del self.stderr[:-STDERR_TAIL]
        elif isinstance(event, ev.SessionStarted):
            self.command = tuple(event.command)
            if event.backend == "gvisor":
                self._become_gvisor()
            else:
                self.backend = event.backend
            if isinstance(event.profile, dict) and event.profile and not self.profile:
                self.profile = dict(event.profile)
        elif isinstance(event, ev.SandboxReady):
            self.main_pid = event.pid
        elif isinstance(event, ev.SandboxReleased):
            self.t0 = event.ts_ns
            self.main_pid = event.pid
        elif isinstance(event, ev.SandboxExited):
            self.exited = event
            self.version += 1
        elif isinstance(event, ev.OomKill):
            self.ooms.append(event)
            self.version += 1
        elif isinstance(event, ev.FatalSignal):
            self.fatal.append(event)
            self.version += 1
        elif isinstance(event, ev.ProcessExited):
            if len(self.proc_exits) < 10_000:
                self.proc_exits.append(event)
        elif isinstance(event, ev.ProcessExec):
            if len(self.execs) < 10_000:
                self.execs.append(event)
        elif isinstance(event, ev.Notice):
            if event.source == "gvisor" and self.backend != "gvisor":
                self._become_gvisor()
            m = _LAUNCH_FAILED.match(event.text) if event.source == "sandbox" else None
            if m and not self.command:
                # A subscriber that joined after SessionStarted still learns the command here.
                self.command = (m.group("cmd"),)
            if len(self.notices) < 1000:
                self.notices.append(event)
                self.version += 1

    def _become_gvisor(self) -> None:
        """Under gVisor the host probes see the Sentry, not the app: its host syscalls and the
        seccomp traps of its platform would read as the app's failures. Only the Sentry's own
        account of the app's syscalls (source "gvisor") counts. A diagnoser that joined after
        SessionStarted learns the backend from the first such syscall or notice."""
        self.backend = "gvisor"
        self.failed = collections.deque((sc for sc in self.failed if sc.source != "host"), maxlen=MAX_FAILED_CALLS)
        self.denials = []
        self.fatal = [f for f in self.fatal if f.signal != 31]
        self.version += 1

    def _chdir(self, sc: ev.Syscall) -> None:
        path = sc.decoded.get("path")
        if isinstance(path, str) and len(self.cwds) < 10_000:
            self.cwds[sc.pid] = os.path.normpath(os.path.join(self.cwd_of(sc.pid), path))

    def cwd_of(self, pid: int) -> str:
        """The working directory of `pid` as far as the trace tells (chdir, inherited at fork)."""
        return self.cwds.get(pid) or self.profile.get("cwd") or "/"

    def paths(self, sc: ev.Syscall) -> list[str]:
        """Absolute paths of a syscall's path arguments, relative ones resolved (cached: every
        rule asks, at every live evaluation)."""
        hit = self._paths.get(id(sc))
        if hit is not None and hit[0] is sc:
            return hit[1]
        paths = paths_of(sc, self.cwd_of(sc.pid))
        if len(self._paths) > 4 * MAX_FAILED_CALLS:
            self._paths.clear()
        self._paths[id(sc)] = (sc, paths)
        return paths

    @property
    def view(self) -> SandboxView:
        """The sandbox's mount view for this profile; it caches what it looked up on the host."""
        if self._view is None or self._view_of is not self.profile:
            self._view, self._view_of = SandboxView(self.profile), self.profile
        return self._view

    def snapshot(self) -> Facts:
        """A copy whose containers are separate, so rules can read it while `add` goes on (the
        live diagnoser ranks outside its lock: a producer never waits for the rules)."""
        self.view  # noqa: B018 - create it here, so copies share its host-lookup caches
        other = copy.copy(self)
        other.failed = collections.deque(self.failed, maxlen=MAX_FAILED_CALLS)
        for name in ("denials", "fatal", "ooms", "proc_exits", "execs", "notices"):
            setattr(other, name, list(getattr(self, name)))
        other.stderr = bytearray(self.stderr)
        other.cwds = dict(self.cwds)
        return other

    def add_all(self, events: Iterable[ev.Event]) -> Facts:
        for event in events:
            self.add(event)
        return self

    # --- views for rules -----------------------------------------------------------------------

    @property
    def failed_run(self) -> bool:
        """The command failed: non-zero exit, a signal, or an exec error."""
        e = self.exited
        return e is not None and (e.exit_code != 0 or e.signal is not None or e.exec_error is not None)

    @property
    def end_ns(self) -> int | None:
        return self.exited.ts_ns if self.exited else None

    def seccomp(self) -> dict[str, Any]:
        return self.profile.get("seccomp") or {"mode": "off", "syscalls": []}

    def stderr_text(self) -> str:
        return self.stderr.decode(errors="replace")

    def when(self, ts_ns: int) -> str:
        return f"t+{(ts_ns - (self.t0 or ts_ns)) / 1e9:.3f}s"

    def evidence(self, calls: list[ev.Syscall], limit: int = 6) -> list[str]:
        """Evidence lines for `calls`: the first ones described, the rest counted (describing
        20,000 failed calls each time the live diagnoser runs would cost a core)."""
        if len(calls) <= limit:
            return [self.describe(sc) for sc in calls]
        return [self.describe(sc) for sc in calls[:limit - 1]] + [f"... and {len(calls) - limit + 1} more like these"]

    def describe(self, sc: ev.Syscall, note: str = "") -> str:
        """One evidence line: 't+0.012s pid 7 (mkdir) mkdir(pathname="/x") = -1 EPERM [seccomp]'."""
        args = ", ".join(f"{k}={short(v)}" for k, v in sc.decoded.items()) if sc.decoded else \
            ", ".join(hex(a) for a in sc.args[:3])
        result = f"-1 {sc.errno}" if sc.errno else str(sc.ret)
        tail = f" [{note}]" if note else (" [seccomp]" if sc.denied else "")
        return f"{self.when(sc.ts_ns)} pid {sc.pid} ({sc.comm}) {sc.name}({args}) = {result}{tail}"


def short(value: Any) -> str:
    text = f'"{value}"' if isinstance(value, str) else str(value)
    return text if len(text) <= 120 else text[:117] + "..."


_RELATIVE_KEYS = ("pathname", "path", "oldpath", "newpath", "linkpath")
_AT_FDCWD = (-100 & 0xFFFFFFFF, -100 & 0xFFFFFFFFFFFFFFFF, -100)


def paths_of(sc: ev.Syscall, cwd: str | None = None) -> list[str]:
    """The path arguments of a syscall, from its decoded arguments; relative ones are joined to
    `cwd` when given (and when they are relative to the working directory, not to a dirfd)."""
    out = []
    for key, value in sc.decoded.items():
        if not isinstance(value, str) or not value:
            continue
        if value.startswith("/"):
            out.append(value)
        elif cwd and key in _RELATIVE_KEYS and not (sc.name == "symlink" and key == "target"):
            if sc.name.endswith("at") and sc.args and sc.args[0] not in _AT_FDCWD:
                continue  # relative to a directory fd we cannot name
            out.append(os.path.normpath(os.path.join(cwd, value)))
    return out


def sockaddr_of(sc: ev.Syscall) -> tuple[str, int | None] | None:
    """(host, port) of a socket address argument, as the decoder gave it."""
    for key, value in sc.decoded.items():
        if isinstance(value, dict):
            host = value.get("addr") or value.get("host") or value.get("address") or value.get("path")
            port = value.get("port")
            if host is not None:
                return str(host), int(port) if isinstance(port, int) else None
        elif isinstance(value, str) and key in ("addr", "sockaddr", "address", "uservaddr", "umyaddr", "dest_addr"):
            m = _ADDR.match(value.split(" ")[-1])
            if m:
                return m.group("host"), int(m.group("port"))
            return value, None
    port = sc.decoded.get("port")
    host = sc.decoded.get("host") or sc.decoded.get("ip")
    if host is not None:
        return str(host), int(port) if isinstance(port, int) else None
    return None


def errno_name(value: int) -> str:
    return errno_mod.errorcode.get(value, str(value))
