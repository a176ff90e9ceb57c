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
