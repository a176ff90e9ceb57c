"""Docker / OCI seccomp JSON written from a traced run's allow-list (`workbench profile`).
Importing one into a profile is workbench/sandbox/seccomp_json.py."""

from __future__ import annotations

import errno as errno_mod
from typing import Any

try:
    import seccomp as _seccomp
except ImportError:  # pragma: no cover - doctor explains how to install python3-seccomp
    _seccomp = None


def known_syscall(name: str) -> bool:
    """Whether libseccomp knows `name` on x86-64 (profiles only accept those)."""
    if _seccomp is None:
        return True
    try:
        return _seccomp.resolve_syscall(_seccomp.Arch.X86_64, name) >= 0  # -1: unknown, < -1: pseudo
    except (ValueError, TypeError):
        return False


def allow_list_json(names: list[str], flavor: str = "docker", errno_name: str = "EPERM") -> dict[str, Any]:
    """An allow-list as Docker (`docker run --security-opt seccomp=FILE`) or OCI (`linux.seccomp` of
    config.json) seccomp JSON: everything else gets errno."""
    errno_value = getattr(errno_mod, errno_name, errno_mod.EPERM)
    rules = [{"names": sorted(names), "action": "SCMP_ACT_ALLOW"}]
    if flavor == "docker":
        return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno_value,
                "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                             "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
                "syscalls": rules}
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno_value,
            "architectures": ["SCMP_ARCH_X86_64"], "syscalls": rules}
