"""Syscall and errno names for the probes and their decoders (the syscall table itself is
workbench.core.syscalls, shared with profiles)."""

from __future__ import annotations

import errno as _errno

from workbench.core.syscalls import available, name_of, number_of, numbers, table

__all__ = ["available", "errno_name", "name_of", "number_of", "numbers", "table"]

# Kernel-internal values a traced syscall can return before a signal restarts it
# (include/linux/errno.h); user space never sees them, a tracer does.
_KERNEL_ERRNOS = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
                  515: "ENOIOCTLCMD", 516: "ERESTART_RESTARTBLOCK"}


def errno_name(ret: int) -> str | None:
    """`ENOENT` for ret == -2; None for a success or a value outside the errno range."""
    if -4095 <= ret < 0:
        return _errno.errorcode.get(-ret) or _KERNEL_ERRNOS.get(-ret, f"E{-ret}")
    return None
