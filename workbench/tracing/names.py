"""Syscall names and numbers from libseccomp (x86-64), for the probes and their decoders.

The tracing floor may not import workbench.sandbox, so it asks libseccomp itself; nothing here is
a hand-written number table that could drift from the kernel.
"""

from __future__ import annotations

import errno as _errno
import functools

try:  # Debian's python3-seccomp; the loader reports its absence as TracingUnavailable
    import seccomp as _seccomp
except ImportError:  # pragma: no cover - exercised only on hosts without it
    _seccomp = None

_MAX_NR = 512  # WB_MAX_NR in probes/wb_layout.h: numbers above are not counted in the kernel


def available() -> bool:
    return _seccomp is not None


@functools.cache
def table() -> dict[int, str]:
    """Number -> name for every syscall libseccomp knows on x86-64."""
    if _seccomp is None:
        return {}
    names: dict[int, str] = {}
    for nr in range(_MAX_NR):
        try:
            names[nr] = _seccomp.resolve_syscall(_seccomp.Arch.X86_64, nr).decode()
        except (ValueError, TypeError):
            continue
    return names


@functools.cache
def numbers() -> dict[str, int]:
    return {name: nr for nr, name in table().items()}


def name_of(nr: int) -> str:
    return table().get(nr, f"syscall_{nr}")


def number_of(name: str) -> int | None:
    return numbers().get(name)


# Kernel-internal values a traced syscall can return before a signal restarts it
# (include/linux/errno.h); user space never sees them, a tracer does.
_KERNEL_ERRNOS = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
                  515: "ENOIOCTLCMD", 516: "ERESTART_RESTARTBLOCK"}


def errno_name(ret: int) -> str | None:
    """`ENOENT` for ret == -2; None for a success or a value outside the errno range."""
    if -4095 <= ret < 0:
        return _errno.errorcode.get(-ret) or _KERNEL_ERRNOS.get(-ret, f"E{-ret}")
    return None
