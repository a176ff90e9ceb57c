"""Compiling and loading the probes in probes/*.c through bcc, and keeping them for reuse.

bcc rewrites map calls (`map.lookup(...)`) and generates tracepoint argument structs only in the
text it is handed, not in included files, so the loader hands it the probe files joined, in order:
wb_common.h (shared maps), then one file per concern. Configuration is -D cflags only.

A compile costs most of a second and bcc caches nothing, so a loaded object is kept after its
tracer stops (detached, maps cleared) and taken again by the next tracer with the same cflags.
`release_cached()` frees them; it also runs at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from workbench.core.errors import TracingUnavailable
from workbench.tracing import decode, names

PROBES_DIR = Path(__file__).resolve().parent.parent.parent / "probes"
SOURCES = ("wb_common.h", "syscalls.c", "processes.c")
TRACEFS = Path("/sys/kernel/tracing")

# Raw tracepoints (cheapest per event: the syscall hooks) and ordinary ones (layout from tracefs).
# sched_switch first: the syscall hooks keep a task's state in a per-CPU slot that only stays
# right while sched_switch moves it out with its task (probes/syscalls.c).
# signal_generate is raw for its siginfo (the ABI of a call seccomp killed).
RAW_TRACEPOINTS = {"sched_switch": "wb_sched_switch", "sys_enter": "wb_sys_enter", "sys_exit": "wb_sys_exit",
                   "signal_generate": "wb_signal_generate"}
# With the stream: a timer hook, so records waiting in a CPU's batch go out within a tick.
STREAM_RAW_TRACEPOINTS = {"hrtimer_expire_entry": "wb_tick"}


def raw_tracepoints(options: "Options") -> dict[str, str]:
    """The raw tracepoints a probe set with these options attaches: hook -> program."""
    return {**RAW_TRACEPOINTS, **(STREAM_RAW_TRACEPOINTS if options.stream else {})}
TRACEPOINTS = {
    "task:task_newtask": "tracepoint__task__task_newtask",
    "sched:sched_process_exec": "tracepoint__sched__sched_process_exec",
    "sched:sched_process_exit": "tracepoint__sched__sched_process_exit",
    "signal:signal_deliver": "tracepoint__signal__signal_deliver",
    "oom:mark_victim": "tracepoint__oom__mark_victim",
    "cgroup:cgroup_attach_task": "tracepoint__cgroup__cgroup_attach_task",
}
# Which user-facing probe each hook belongs to (ProbeStatus.probe).
PROBE_OF_HOOK = {
    "sched_switch": "syscalls", "hrtimer_expire_entry": "syscalls", "sys_enter": "syscalls", "sys_exit": "syscalls", "task:task_newtask": "processes",
    "sched:sched_process_exec": "processes", "sched:sched_process_exit": "processes",
    "signal:signal_deliver": "processes", "signal_generate": "seccomp",
    "oom:mark_victim": "oom", "cgroup:cgroup_attach_task": "syscalls",
}
PROBES = ("syscalls", "seccomp", "processes", "oom")

# Syscalls the kernel side must recognise, passed as -DWB_NR_<NAME> from libseccomp.
_NEEDED = ("execve", "execveat", "exit", "exit_group", "clone", "clone3", "fork", "vfork")


@dataclass(frozen=True)
class Options:
    """What is fixed at compile time; equal options share a loaded object."""

    stream: bool = True
    stream_pages: int = 8192
    """Syscall stream ring buffer, in 4 KiB pages (32 MiB: 0.3 s of a million syscalls a
    second; a copier process empties it at memcpy speed and the tracer decodes behind)."""
    ctrl_pages: int = 256
    """Control ring buffer (processes, denials), in pages (1 MiB)."""
    path_len: int = 256
    """Bytes kept of a path or socket address (a power of two)."""
    arg_len: int = 128
    """Bytes kept of each execve argument (a power of two)."""

    def cflags(self) -> list[str]:
        flags = [f"-I{PROBES_DIR}", f"-DWB_STREAM_PAGES={self.stream_pages}",
                 f"-DWB_CTRL_PAGES={self.ctrl_pages}", f"-DWB_PATH_LEN={self.path_len}",
                 f"-DWB_ARG_LEN={self.arg_len}"]
        if self.stream:
            flags.append("-DWB_STREAM=1")
        for name in _NEEDED:
            flags.append(f"-DWB_NR_{name.upper()}={names.number_of(name)}")
        return flags


@dataclass
class Loaded:
    """A compiled, loaded probe object and what the decoders need from it."""

    bpf: Any
    options: Options
    source: str
    compile_s: float
    layouts: dict[str, Any] = field(default_factory=dict)
    in_use: bool = False


_lock = threading.Lock()
_bcc_lock = threading.Lock()
"""bcc is not thread-safe (LLVM, its global tables) and both compiling and freeing borrow fd 2:
one at a time, process-wide."""
_cache: list[Loaded] = []
compiles = 0
"""How many times this process compiled the probes (a reused object does not count)."""


def check_host() -> None:
    """Raise TracingUnavailable naming the first thing this host lacks for the probes."""
    if os.geteuid() != 0:
        raise TracingUnavailable("eBPF tracing needs root", "run as root (sudo), or pass --no-trace")
    try:
        import bcc  # noqa: F401
    except ImportError:
        raise TracingUnavailable("bcc is not importable by this Python",
                                 "apt-get install python3-bpfcc and use the venv from scripts/setup.sh") from None
    if not names.available():
        raise TracingUnavailable("libseccomp's Python bindings are missing (syscall names)",
                                 "apt-get install python3-seccomp")
    if not (TRACEFS / "events" / "raw_syscalls").is_dir():
        raise TracingUnavailable("tracefs is not mounted at /sys/kernel/tracing",
                                 "mount -t tracefs tracefs /sys/kernel/tracing")
    if not Path("/sys/kernel/btf/vmlinux").exists():
        # Task-local storage and the current task's registers (seccomp kills) need kernel BTF.
        raise TracingUnavailable("this kernel has no BTF (/sys/kernel/btf/vmlinux)",
                                 "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's and "
                                 "Ubuntu's are), or pass --no-trace")
    build = Path("/lib/modules") / platform.release() / "build"
    if not (build / "include").is_dir():
        raise TracingUnavailable(f"no kernel headers for {platform.release()} at {build}",
                                 "run scripts/setup.sh (links Debian's linux-headers-amd64 there)")
    missing = [s for s in SOURCES if not (PROBES_DIR / s).is_file()]
    if missing:
        raise TracingUnavailable(f"probe source {PROBES_DIR / missing[0]} is missing",
                                 "reinstall workbench from its repository")


def source_text() -> str:
    return "".join(f"/* ---- {name} ---- */\n" + (PROBES_DIR / name).read_text() for name in SOURCES)


@contextlib.contextmanager
def _stderr_to(path: str) -> Iterator[None]:
    """bcc and clang write to fd 2, which would tear a TUI: send it to a file meanwhile."""
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "error:" in line or "Failed" in line or "Invalid argument" in line or "Permission" in line:
            return line.strip()[:200]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no message"


def _compile(options: Options) -> Loaded:
    from bcc import BPF

    text = source_text()
    t0 = time.monotonic()
    # One at a time: each borrows fd 2 for clang's messages.
    with _bcc_lock, tempfile.NamedTemporaryFile(prefix="workbench-bcc-", suffix=".log") as log:
        try:
            with _stderr_to(log.name):
                # bcc attaches the tracepoint programs as it loads them. They stay: with the filter
                # off they return after one array lookup, and detaching an ordinary tracepoint
                # costs ~70 ms each here (the kernel waits for a grace period).
                bpf = BPF(text=text.encode(), cflags=options.cflags())
                for fn in raw_tracepoints(options).values():
                    bpf.load_func(fn.encode(), BPF.RAW_TRACEPOINT)
        except Exception as exc:
            detail = _first_error(Path(log.name).read_text(errors="replace") + "\n" + str(exc))
            raise TracingUnavailable(f"the probes did not load ({detail})",
                                     "run `workbench doctor`; pass --no-trace to run without eBPF") from None
    loaded = Loaded(bpf=bpf, options=options, source=text, compile_s=time.monotonic() - t0)
    for key in ("sys", "newtask", "exec_argv", "exec", "exit", "signal", "denial", "oom"):
        loaded.layouts[key] = bpf[f"wb_layout_{key}".encode()].Leaf
    _fill_argkinds(bpf)
    return loaded


def _fill_argkinds(bpf: Any) -> None:
    table = bpf[b"wb_argkinds"]
    for name, copied in decode.COPIED.items():
        nr = names.number_of(name)
        if nr is None or nr >= len(table):
            continue
        value = table.Leaf()
        for slot, (kind, index, _key) in enumerate(copied[:2]):
            value.kind[slot] = kind
            value.idx[slot] = index
        table[table.Key(nr)] = value


def acquire(options: Options) -> Loaded:
    """A loaded object for `options`: an idle cached one, or a fresh compile (slow, blocking)."""
    with _lock:
        for loaded in _cache:
            if loaded.options == options and not loaded.in_use:
                loaded.in_use = True
                return loaded
    global compiles
    loaded = _compile(options)
    loaded.in_use = True
    compiles += 1
    with _lock:
        _cache.append(loaded)
    return loaded


def release(loaded: Loaded, keep: bool = True) -> None:
    """Give a detached object back; with keep=False (or a second idle copy) free it."""
    with _lock:
        twins = [c for c in _cache if c.options == loaded.options and not c.in_use]
        loaded.in_use = False
        if keep and not twins:
            return
        if loaded in _cache:
            _cache.remove(loaded)
    _free(loaded)


def _free(loaded: Loaded) -> None:
    with _bcc_lock, _stderr_to(os.devnull):
        loaded.bpf.cleanup()


def release_cached() -> int:
    """Free every idle cached object (all their BPF programs and maps); returns how many."""
    with _lock:
        idle = [c for c in _cache if not c.in_use]
        for c in idle:
            _cache.remove(c)
    for c in idle:
        _free(c)
    return len(idle)


atexit.register(release_cached)


def attach_all(loaded: Loaded) -> list[tuple[str, str]]:
    """Attach every hook; returns (hook, error) for those that failed (their probe is off)."""
    bpf, failed = loaded.bpf, []
    with _stderr_to(os.devnull):
        for tp, fn in TRACEPOINTS.items():
            if tp.encode() in bpf.tracepoint_fds:
                continue  # attached at load, filtered off between sandboxes
            try:
                bpf.attach_tracepoint(tp=tp.encode(), fn_name=fn.encode())
            except Exception as exc:  # one missing tracepoint turns one view off, not all
                failed.append((tp, str(exc)))
        for tp, fn in raw_tracepoints(loaded.options).items():
            try:
                bpf.attach_raw_tracepoint(tp=tp.encode(), fn_name=fn.encode())
            except Exception as exc:
                failed.append((tp, str(exc)))
    return failed


def detach_all(loaded: Loaded) -> None:
    """Take the syscall hooks off (they run on every syscall of the host). The process and
    signal tracepoints stay on a cached object, inert with the filter off (see _compile);
    freeing the object (release, release_cached) detaches them too."""
    bpf = loaded.bpf
    with _stderr_to(os.devnull):
        for tp in list(bpf.raw_tracepoint_fds):
            bpf.detach_raw_tracepoint(tp)


def dump(loaded: Loaded) -> str:
    """What was loaded: cflags, the source as compiled, and each program's instructions."""
    parts = ["# cflags: " + " ".join(loaded.options.cflags()), loaded.source]
    for fn in list(raw_tracepoints(loaded.options).values()) + list(TRACEPOINTS.values()):
        try:
            parts.append(f"# {fn}\n" + loaded.bpf.disassemble_func(fn.encode()))
        except Exception as exc:
            parts.append(f"# {fn}: not disassembled ({exc})")
    return "\n".join(parts)
