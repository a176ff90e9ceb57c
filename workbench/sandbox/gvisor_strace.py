"""gVisor's `--strace` output, parsed into our events: the app's syscalls as the Sentry saw them.

runsc writes, in the `*.boot.txt` file under `--debug-log=DIR/`, glog lines such as

    I1204 20:08:57.429790   12024 strace.go:602] [   1:   1] sh X access(0x7ffa43d112a0 /etc/ld.so.preload, 0o4) = 0 (0x0) errno=2 (no such file or directory) (132.339µs)

one `E` line at entry and one `X` line at exit with the result and the duration. Only `X` lines
are turned into `Syscall`s (they repeat the arguments). Pids are the Sentry's own (pid 1 is the
command), not host pids: the app's tasks have no host identity under gVisor.

Lines from compat.go ("Unsupported syscall NAME(...)") become `Notice`s with source `gvisor`; the
diagnosis blames the `gvisor` layer for them and for ENOSYS results.
"""

from __future__ import annotations

import datetime as dt
import errno as errno_mod
import re
import time
from dataclasses import dataclass

from workbench.core.events import Notice, Syscall
from workbench.core import syscalls

_HEAD = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\s+\d+ (\w+)\.go:\d+\] (.*)$")
_EXIT = re.compile(r"^\[\s*(\d+):\s*(\d+)\] (.*?) X (\w+)\((.*)\) = (-?\d+) \(0x[0-9a-f]+\)"
                   r"(?: errno=(\d+) \([^)]*\))? \(([\d.]+)(ns|µs|us|ms|s)\)$")
_UNSUPPORTED = re.compile(r"^Unsupported syscall (\w+)\((.*?)\)\.?\s*(.*)$")
_UNIT_NS = {"ns": 1, "µs": 1_000, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
# Kernel-internal restart codes the Sentry shows as errnos; Python's errno module has no names.
_INTERNAL_ERRNO = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
                   516: "ERESTART_RESTARTBLOCK"}
# Syscalls libc probes and falls back from on ENOSYS: gVisor lacking them is not a failure's cause.
# (gVisor's own message says "likely that you can safely ignore" for every unsupported syscall.)
FALLBACK_SYSCALLS = frozenset({"rseq", "clone3", "faccessat2", "close_range", "statx", "openat2",
                               "epoll_pwait2", "futex_waitv", "membarrier"})
_SPECIAL_VALUES = {"AT_FDCWD": -100, "null": 0}
ARG_TEXT_MAX = 256


def errno_name(n: int) -> str:
    return errno_mod.errorcode.get(n) or _INTERNAL_ERRNO.get(n) or f"E{n}"


def split_args(text: str) -> list[str]:
    """Top-level comma split of an argument list, minding brackets and quoted strings."""
    out, depth, start, i, quote = [], 0, 0, 0, False
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == '"':
                quote = False
        elif c == '"':
            quote = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
        i += 1
    tail = text[start:].strip()
    if tail or out:
        out.append(tail)
    return out


def raw_value(arg: str) -> int:
    """The register value an argument's text starts with (0 when it names no number)."""
    head = arg.split(" ", 1)[0]
    if head in _SPECIAL_VALUES:
        return _SPECIAL_VALUES[head]
    try:
        if head.startswith(("0x", "0o", "0b")):
            return int(head, 0)
        return int(head)
    except ValueError:
        return 0


def _paths(args: list[str]) -> list[str]:
    """User-memory path arguments: an address followed by an absolute or relative path."""
    found = []
    for arg in args:
        parts = arg.split(" ", 1)
        if len(parts) == 2 and parts[0].startswith("0x") and parts[1] and parts[1][0] not in '"[{(':
            if not parts[1].startswith(("pipe:", "host:", "socket:", "anon_inode:")):
                found.append(parts[1])
    return found


@dataclass
class Clock:
    """Maps the log's wall-clock stamps (local time, microseconds) onto the event clock."""

    year: int = 0
    offset_ns: int = 0

    @classmethod
    def now(cls) -> "Clock":
        return cls(dt.datetime.now().year, time.time_ns() - time.monotonic_ns())

    def monotonic_ns(self, month: int, day: int, h: int, m: int, s: int, us: int) -> int:
        wall = dt.datetime(self.year, month, day, h, m, s, us)
        return int(wall.timestamp()) * 1_000_000_000 + us * 1000 - self.offset_ns


class StraceParser:
    """Feed it lines; it returns events. Keeps the few facts it needs across lines."""

    def __init__(self, clock: Clock | None = None):
        self.clock = clock or Clock.now()
        self._unsupported_seen: set[str] = set()
        self.lines = 0
        self.skipped = 0
        """strace-looking lines it could not read (a format change: they are counted, not guessed)."""

    def parse(self, line: str) -> Syscall | Notice | None:
        self.lines += 1
        head = _HEAD.match(line.rstrip("\n"))
        if head is None:
            return None
        mon, day, h, m, s, us = (int(x) for x in head.groups()[:6])
        source, body = head.group(7), head.group(8)
        ts = self.clock.monotonic_ns(mon, day, h, m, s, us)
        if source == "strace":
            if " X " not in body:
                return None
            sc = self._syscall(body, ts)
            if sc is None:
                self.skipped += 1
            return sc
        if source == "compat":
            return self._unsupported(body, ts)
        return None

    def _syscall(self, body: str, exit_ts: int) -> Syscall | None:
        m = _EXIT.match(body)
        if m is None:
            return None
        pid, tid, comm, name, arg_text, ret, err, dur, unit = m.groups()
        args = split_args(arg_text)
        duration = int(float(dur) * _UNIT_NS[unit])
        ret_v = int(ret)
        errno = None
        if err is not None:
            ret_v = -int(err)  # the Sentry prints the value 0 and the errno beside it
            errno = errno_name(int(err))
        decoded: dict = {"args": [a[:ARG_TEXT_MAX] for a in args]}
        paths = _paths(args)
        if paths:
            decoded["pathname"] = paths[0]
        if len(paths) > 1:
            decoded["newpath"] = paths[1]
        if errno == "ENOSYS" and name in FALLBACK_SYSCALLS:
            decoded["gvisor_harmless"] = True  # libc falls back; not a reason for a failure
        nr = syscalls.number_of(name)
        raw = tuple(raw_value(a) for a in args[:6])
        return Syscall(ts_ns=exit_ts - duration, pid=int(pid), tid=int(tid), comm=comm,
                       nr=nr if nr is not None else -1, name=name, args=raw + (0,) * (6 - len(raw)),
                       ret=ret_v, errno=errno, duration_ns=duration, decoded=decoded, source="gvisor")

    def _unsupported(self, body: str, ts: int) -> Notice | None:
        m = _UNSUPPORTED.match(body)
        if m is None:
            return None
        name, args, rest = m.groups()
        if name in self._unsupported_seen:
            return None
        self._unsupported_seen.add(name)
        if name in FALLBACK_SYSCALLS:
            # Saying "unsupported" here would make every failing gVisor run blame gVisor.
            return Notice("info", f"gVisor lacks {name}; the app is expected to fall back (harmless)",
                          "gvisor", ts_ns=ts)
        return Notice("warning", f"gVisor: unsupported syscall {name}({args[:120]}): the Sentry "
                      "answered ENOSYS", "gvisor", ts_ns=ts)
