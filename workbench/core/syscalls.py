"""Syscall names and numbers (x86-64) from libseccomp: one table for the whole project, and no
hand-written one that could drift from the kernel. Used by profiles (validating names), the
probes (naming numbers) and the diagnosis."""

from __future__ import annotations

import functools

try:  # Debian's python3-seccomp; `workbench doctor` says how to install it when missing
    import seccomp as _seccomp
except ImportError:  # pragma: no cover - exercised only on hosts without it
    _seccomp = None

MAX_NR = 512  # WB_MAX_NR in probes/wb_layout.h: above every x86-64 syscall number on 6.x kernels


def available() -> bool:
    return _seccomp is not None


@functools.cache
def table() -> dict[int, str]:
    """Number -> name for every syscall libseccomp knows on x86-64."""
    if _seccomp is None:
        return {}
    names: dict[int, str] = {}
    for nr in range(MAX_NR):
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


# Other ABIs an x86-64 kernel accepts calls through (AUDIT_ARCH_* values, linux/audit.h). Our
# filters kill every call through them; the probes name such a call from its SIGSYS siginfo.
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000


def abi_of(arch: int, nr: int) -> str:
    """`x86_64`, `i386` or `x32` for a call's AUDIT_ARCH (0: unknown, taken as x86-64) and number."""
    if arch == AUDIT_ARCH_I386:
        return "i386"
    return "x32" if nr & X32_SYSCALL_BIT else "x86_64"


@functools.cache
def name_in_abi(abi: str, nr: int) -> str:
    """The syscall's name in its own ABI's table: i386's 74 is sethostname, x86-64's is fsync."""
    if abi == "x86_64" or _seccomp is None:
        return name_of(nr)
    arch = _seccomp.Arch.X86 if abi == "i386" else _seccomp.Arch.X32
    try:
        return _seccomp.resolve_syscall(arch, nr).decode()
    except (ValueError, TypeError):
        return f"syscall_{nr & ~X32_SYSCALL_BIT}"
