"""Syscall names for profiles: validation with a hint (the table is workbench.core.syscalls)."""

from __future__ import annotations

import difflib

from workbench.core.errors import ProfileError
from workbench.core.syscalls import available, numbers


def check_name(name: object, where: str) -> str:
    """A known syscall name, or a ProfileError naming the closest ones."""
    if not available():
        raise ProfileError(where, "libseccomp's Python bindings are missing",
                           "apt-get install python3-seccomp (or run scripts/setup.sh)")
    if not isinstance(name, str) or name not in numbers():
        close = difflib.get_close_matches(str(name), list(numbers()), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see `ausyscall --dump` for names"
        raise ProfileError(where, f"unknown syscall {name!r}", hint)
    return name
