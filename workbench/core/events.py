"""Typed events: the one vocabulary shared by the sandbox, the probes, the recorder, the diagnosis
and the faces (TUI, headless report).

All events are frozen dataclasses with slots. Times are `ts_ns`: CLOCK_MONOTONIC nanoseconds, the
clock of both `time.monotonic_ns()` and the kernel's `bpf_ktime_get_ns()`, so kernel and user-space
events sort together. Pids are host pids unless a field says otherwise.

Adding a field with a default is compatible; removing or renaming one breaks recordings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


def now_ns() -> int:
    """The event clock (CLOCK_MONOTONIC, ns)."""
    return time.monotonic_ns()


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event."""

    ts_ns: int
    """When it happened, CLOCK_MONOTONIC nanoseconds."""


# --- session lifecycle -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionStarted(Event):
    """A session was asked to launch a command."""

    command: tuple[str, ...]
    """The command as given, argv style."""
    backend: str
    """`native`, `bwrap` or `gvisor`."""
    profile_name: str
    """The profile's name (bundled name or file path)."""
    profile: dict[str, Any] = field(default_factory=dict)
    """The effective profile after CLI overrides, as plain data (see docs/profiles.md)."""


@dataclass(frozen=True, slots=True)
class SandboxReady(Event):
    """The sandbox is built and the command is held at the start gate, not yet exec'd."""

    pid: int
    """Host pid of the process that will exec the command."""
    init_pid: int
    """Host pid of the sandbox's init (pid 1 inside), or the same as `pid`."""
    cgroup_v2_path: str | None
    """Directory in the v2 hierarchy holding the command (for probes), or None."""
    cgroup_id: int | None
    """Inode of that directory: what `bpf_get_current_cgroup_id()` returns inside."""
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per namespace type: {"isolated": bool, "inode": int}."""
    launch_ms: float = 0.0
    """Request to ready, milliseconds."""


@dataclass(frozen=True, slots=True)
class SandboxReleased(Event):
    """The start gate opened: the command's execve follows."""

    pid: int


@dataclass(frozen=True, slots=True)
class SandboxExited(Event):
    """The command (the sandbox's main process) ended."""

    exit_code: int | None
    """Exit status, or None when a signal killed it."""
    signal: int | None
    """The signal that killed it, or None."""
    duration_s: float
    """Release to exit, seconds."""
    exec_error: str | None = None
    """Set when execve failed inside: `ENOENT`, `EACCES`, ..."""


@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    """Everything is torn down; no more events follow."""


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """A message for people: a view that is off and why, a fallback taken, an internal error."""

    level: str = "info"
    """`info`, `warning` or `error`."""
    text: str = ""
    """One line."""
    source: str = ""
    """Which part said it (`probes`, `sandbox`, ...)."""

    def __init__(self, level: str = "info", text: str = "", source: str = "", ts_ns: int | None = None):
        object.__setattr__(self, "ts_ns", now_ns() if ts_ns is None else ts_ns)
        object.__setattr__(self, "level", level)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "source", source)


# --- output ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output(Event):
    """A chunk the command wrote to its stdout or stderr."""

    stream: str
    """`stdout` or `stderr`."""
    data: bytes


# --- syscalls (probes) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Syscall(Event):
    """One completed (or seccomp-skipped) syscall of a sandboxed thread. `ts_ns` is its entry."""

    pid: int
    """Host tgid."""
    tid: int
    """Host tid."""
    comm: str
    nr: int
    """Syscall number (x86-64)."""
    name: str
    """Name from libseccomp, or `syscall_<nr>`."""
    args: tuple[int, ...]
    """The six raw argument registers."""
    ret: int
    """Return value (negative errno on failure)."""
    errno: str | None
    """`ENOENT`, ... when ret is a negative errno, else None."""
    duration_ns: int
    """Entry to exit; 0 when the entry was not seen (seccomp denied it)."""
    decoded: dict[str, Any] = field(default_factory=dict)
    """Decoded arguments by name: {"pathname": "/etc/passwd", "flags": "O_RDONLY"}."""
    denied: bool = False
    """True when seccomp answered this syscall (no sys_enter was seen)."""
    source: str = "host"
    """`host` (our probes on the host kernel) or `gvisor` (the app's syscall as gVisor's Sentry
    saw it, from its strace log: then `pid`/`tid` are the Sentry's own numbers, not host pids)."""


@dataclass(frozen=True, slots=True)
class SyscallBatch(Event):
    """Several `Syscall`s delivered together: producers batch to keep per-event cost low."""

    syscalls: tuple[Syscall, ...]


@dataclass(frozen=True, slots=True)
class SyscallStat:
    """Exact in-kernel aggregate for one syscall (not an event)."""

    name: str
    count: int
    errors: dict[str, int]
    """Errors by errno name."""
    latency_log2_ns: tuple[int, ...] = ()
    """Histogram: slot i counts calls with duration in [2**i, 2**(i+1)) ns."""


@dataclass(frozen=True, slots=True)
class SyscallStats(Event):
    """A snapshot of the in-kernel aggregates: exact whatever the stream dropped."""

    stats: tuple[SyscallStat, ...]


@dataclass(frozen=True, slots=True)
class SeccompDenial(Event):
    """Seccomp refused a syscall."""

    pid: int
    tid: int
    comm: str
    syscall: str
    nr: int
    action: str
    """`errno`, `kill`, `trap`, `log` or `trace`."""
    errno: str | None
    """For errno actions: the errno returned."""
    args: dict[str, Any] = field(default_factory=dict)
    """Decoded arguments (e.g. {"pathname": "/tmp/a"})."""
    raw_args: tuple[int, ...] = ()
    rule: str = ""
    """The profile rule that matched, in words: `seccomp.syscalls: mkdir (deny-list, errno EPERM)`."""
    source: str = "bpf"
    """`bpf` (sys_exit without sys_enter, or SIGSYS) or `audit` (the kernel log record)."""
    abi: str = "x86_64"
    """The ABI the call came through: `x86_64`, or `i386` (`int $0x80`) / `x32`, which our filters
    kill outright; `syscall` and `nr` are in that ABI's table."""


@dataclass(frozen=True, slots=True)
class EventsLost(Event):
    """Events were dropped between kernel and user space."""

    count: int
    source: str
    """`ringbuf`, `kernel`, `queue`..."""


@dataclass(frozen=True, slots=True)
class ProbeStatus(Event):
    """A probe's state: attached, off (and why), or detached."""

    probe: str
    state: str
    """`compiling`, `attached`, `off`, `detached`."""
    reason: str = ""
    """Why it is off, and the fix."""
    compile_s: float = 0.0


# --- processes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessForked(Event):
    pid: int
    """The new process (host pid)."""
    ppid: int
    comm: str = ""


@dataclass(frozen=True, slots=True)
class ProcessExec(Event):
    pid: int
    filename: str
    argv: tuple[str, ...] = ()
    comm: str = ""


@dataclass(frozen=True, slots=True)
class ProcessExited(Event):
    pid: int
    exit_code: int | None
    signal: int | None
    comm: str = ""


@dataclass(frozen=True, slots=True)
class FatalSignal(Event):
    """A signal that will kill its target was generated (SIGSYS from seccomp, SIGKILL, ...)."""

    pid: int
    signal: int
    code: int = 0
    comm: str = ""
    sender_pid: int = 0


@dataclass(frozen=True, slots=True)
class OomKill(Event):
    """The kernel's OOM killer chose a sandboxed process."""

    pid: int
    comm: str = ""
    pages: int = 0
    """Its total_vm in pages at the time, when known."""


@dataclass(frozen=True, slots=True)
class NamespaceMembership(Event):
    """Where one sandboxed process stands, layer by layer."""

    pid: int
    namespaces: dict[str, dict[str, Any]]
    """Per type: {"inode": int, "isolated": bool}."""
    uid_map: str = ""
    gid_map: str = ""
    cap_eff: int = 0
    """Effective capability mask."""
    seccomp_mode: int = 0
    """0 off, 1 strict, 2 filter."""
    no_new_privs: bool = False


# --- resources ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourceSample(Event):
    """A sample of the sandbox cgroup's usage (a few per second)."""

    memory_bytes: int
    memory_peak_bytes: int
    memory_limit_bytes: int | None
    cpu_seconds: float
    pids: int
    pids_limit: int | None
    io_read_bytes: int = 0
    io_write_bytes: int = 0
    oom_kills: int = 0
    pids_peak: int = 0
    """Highest process count so far (the kernel's pids.peak where it has one, else sampled)."""


# --- diagnosis ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding(Event):
    """A diagnosis: which isolation layer made the command fail, the evidence and the fix."""

    layer: str
    """One of the layers in shared/DESIGN.md: `seccomp`, `mount`, ..."""
    summary: str
    evidence: tuple[str, ...] = ()
    fix: str = ""
    score: float = 0.0
    """Higher ranks first."""
    fix_options: tuple[str, ...] = ()
    """The fix as `workbench run` options, ready for argv: ("--allow", "mkdir"). Empty when no CLI
    option expresses it (then `fix_profile` does)."""
    fix_profile: dict[str, Any] = field(default_factory=dict)
    """The fix as a patch in the profile file's shape (TOML tables): {"capabilities": {"keep":
    ["chown"]}}. Tables merge key by key; values (lists included) replace. See
    `workbench.diagnose.apply_fix`."""
    rule: str = ""
    """Which diagnosis rule produced it (`seccomp-denial`, `host-path-missing`, ...)."""
    pid: int | None = None
    """The process the evidence is about, when there is one."""
