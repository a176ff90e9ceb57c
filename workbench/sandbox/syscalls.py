"""Syscall names and numbers from libseccomp (x86-64): no hand-written table to drift."""

from __future__ import annotations

import difflib
import functools

from workbench.core.errors import ProfileError

try:  # Debian's python3-seccomp; doctor says how to install it when missing
    import seccomp as _seccomp
except ImportError:  # pragma: no cover - exercised by doctor on hosts without it
    _seccomp = None

_MAX_NR = 470  # above the highest x86-64 syscall number on 6.x kernels


@functools.cache
def table() -> dict[int, str]:
    """Number -> name for every syscall libseccomp knows on x86-64."""
    if _seccomp is None:
        return {}
    arch = _seccomp.Arch.X86_64
    names: dict[int, str] = {}
    for nr in range(_MAX_NR):
        try:
            names[nr] = _seccomp.resolve_syscall(arch, nr).decode()
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


def check_name(name: object, where: str) -> str:
    """A known syscall name, or a ProfileError naming the closest ones."""
    if _seccomp is None:
        raise ProfileError(where, "libseccomp's Python bindings are missing",
                           "apt-get install python3-seccomp (or run scripts/setup.sh)")
    if not isinstance(name, str) or name not in numbers():
        close = difflib.get_close_matches(str(name), list(numbers()), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see `ausyscall --dump` for names"
        raise ProfileError(where, f"unknown syscall {name!r}", hint)
    return name
