"""The last steps before exec, in bubblewrap's order: rlimits, capabilities, no_new_privs, and the
seccomp filter last "so that filters don't need to handle anything above"."""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import resource
import struct

from workbench.sandbox import linux as L
from workbench.sandbox.profile import CAPABILITIES

RLIMIT_IDS = {
    "nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC, "core": resource.RLIMIT_CORE,
    "fsize": resource.RLIMIT_FSIZE, "stack": resource.RLIMIT_STACK, "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU, "memlock": resource.RLIMIT_MEMLOCK,
}
CLONE_NEWUSER = 0x10000000
# Syscalls the launcher makes between loading an allow-list filter and the command's first
# instruction: without them the command could never start.
LAUNCHER_NEEDS = ("execve", "exit_group")


def apply_rlimits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        resource.setrlimit(RLIMIT_IDS[name], (value, value))


def cap_mask(names: list[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES.index(name)
    return mask


def drop_capabilities(keep: list[str], ambient: bool) -> None:
    """Shrink the bounding set to `keep`, then the thread's sets. After exec, uid 0 gets exactly the
    bounding set; another uid gets the ambient set, raised here when asked."""
    keep_mask = cap_mask(keep)
    for cap in range(L.last_cap() + 1):
        if not keep_mask & (1 << cap):
            L.prctl(L.PR_CAPBSET_DROP, cap)
    L.capset(keep_mask, keep_mask, keep_mask)
    if ambient:
        for name in keep:
            L.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_RAISE, CAPABILITIES.index(name))


def set_no_new_privs() -> None:
    L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)


def _action(seccomp, sc: dict):
    return {
        "errno": lambda: seccomp.ERRNO(getattr(errno_mod, sc["errno"])),
        "kill": lambda: seccomp.KILL_PROCESS,
        "trap": lambda: seccomp.TRAP,
        "log": lambda: seccomp.LOG,
    }[sc["action"]]()


def build_filter(sc: dict):
    """A libseccomp filter for the profile's seccomp table, not loaded yet (None when off)."""
    if sc["mode"] == "off":
        return None
    import seccomp

    action = _action(seccomp, sc)
    if sc["mode"] == "deny":
        f = seccomp.SyscallFilter(seccomp.ALLOW)
        for name in sc["syscalls"]:
            f.add_rule(action, name)
        if sc["deny_clone_newuser"]:
            # A new user namespace hands back a full capability set: refuse it. clone3 passes its
            # flags in memory seccomp cannot read, so it gets ENOSYS and libc falls back to clone.
            if "clone" not in sc["syscalls"]:
                f.add_rule(action, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
            if "unshare" not in sc["syscalls"]:
                f.add_rule(action, "unshare", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
            if "clone3" not in sc["syscalls"]:
                f.add_rule(seccomp.ERRNO(errno_mod.ENOSYS), "clone3")
    else:
        f = seccomp.SyscallFilter(action)
        for name in dict.fromkeys(list(sc["syscalls"]) + list(LAUNCHER_NEEDS)):
            f.add_rule(seccomp.ALLOW, name)
    if sc["log"]:
        try:
            f.set_attr(seccomp.Attr.CTL_LOG, 1)
        except (ValueError, OSError):
            pass  # older kernels: denials are still seen by the probes
    return f


_SYS_SECCOMP = 317
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_LOG = 2
_compiled: dict[str, bytes] = {}


def compile_filter(sc: dict) -> bytes | None:
    """The filter as a classic BPF program (struct sock_filter[]), cached per policy: libseccomp
    compiles once per launcher instead of once per sandbox, and the sandbox only loads it."""
    import json

    key = json.dumps(sc, sort_keys=True)
    if key not in _compiled:
        f = build_filter(sc)
        if f is None:
            return None
        fd = os.memfd_create("seccomp-bpf")
        with os.fdopen(fd, "w+b") as out:
            f.export_bpf(out)
            out.flush()
            out.seek(0)
            _compiled[key] = out.read()
    return _compiled[key]


def load_compiled(program: bytes, log: bool) -> None:
    """seccomp(SET_MODE_FILTER) with a program from `compile_filter`; needs no_new_privs first."""
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    flags = _SECCOMP_FILTER_FLAG_LOG if log else 0
    if L._libc.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, flags, fbuf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")


def rule_for(sc: dict, syscall: str) -> str:
    """The profile rule that refuses `syscall`, in words (for denial events and the report)."""
    act = sc["action"] + (f" {sc['errno']}" if sc["action"] == "errno" else "")
    if sc["mode"] == "deny":
        if syscall in sc["syscalls"]:
            return f"seccomp.syscalls (deny-list) lists {syscall}: {act}"
        if syscall in ("clone", "unshare") and sc["deny_clone_newuser"]:
            return f"seccomp.deny_clone_newuser: {syscall} with CLONE_NEWUSER: {act}"
        if syscall == "clone3" and sc["deny_clone_newuser"]:
            return "seccomp.deny_clone_newuser: clone3 gets ENOSYS (libc falls back to clone)"
        return f"seccomp deny-list: {syscall}: {act}"
    if sc["mode"] == "allow":
        return f"seccomp.syscalls (allow-list) does not list {syscall}: {act}"
    return ""
