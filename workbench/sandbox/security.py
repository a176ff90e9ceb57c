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
# ioctls that push input into a terminal: a program sharing the caller's terminal (the TUI's shell)
# could type commands for the host's shell to run once the sandbox ends. Refused whatever the
# policy says about ioctl, as bubblewrap does, with EIO: the kernel's own answer when
# dev.tty.legacy_tiocsti = 0.
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
TERMINAL_INJECTION = (TIOCSTI, TIOCLINUX)
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
        if "ioctl" not in sc["syscalls"]:
            # The request is an unsigned int: compare the low 32 bits only, or a caller could
            # slip past an exact match by setting the register's upper half.
            for request in TERMINAL_INJECTION:
                f.add_rule(seccomp.ERRNO(errno_mod.EIO), "ioctl",
                           seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request))
    else:
        f = seccomp.SyscallFilter(action)
        for name in dict.fromkeys(list(sc["syscalls"]) + list(LAUNCHER_NEEDS)):
            if name == "ioctl":
                _allow_ioctl_except(f, seccomp, TERMINAL_INJECTION)
            else:
                f.add_rule(seccomp.ALLOW, name)
    if sc["log"]:
        try:
            f.set_attr(seccomp.Attr.CTL_LOG, 1)
        except (ValueError, OSError):
            pass  # older kernels: denials are still seen by the probes
    return f


def _allow_ioctl_except(f, seccomp, refused: tuple[int, ...]) -> None:
    """Allow ioctl unless the low 32 bits of its request are one of `refused` (those fall to the
    filter's default, the allow-list's refusal).

    libseccomp lets an unconditional allow shadow any narrower rule for the same syscall, and has
    no masked not-equal, so "request not in refused" is spelled as allow rules that are ORed:
    one per bit on which every refused value agrees (the request differs there), and one per
    pattern of the remaining bits that no refused value has.
    """
    low = 0xFFFFFFFF
    differ = 0
    for r in refused:
        differ |= r ^ refused[0]
    common = low & ~differ
    for bit in range(32):
        if common & (1 << bit):
            f.add_rule(seccomp.ALLOW, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 1 << bit, ~refused[0] & (1 << bit)))
    free = [bit for bit in range(32) if differ & (1 << bit)]
    taken = {r & differ for r in refused}
    for n in range(1 << len(free)):
        pattern = sum(1 << bit for i, bit in enumerate(free) if n & (1 << i))
        if pattern not in taken:
            f.add_rule(seccomp.ALLOW, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, differ, pattern))


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


def terminal_guard() -> bytes:
    """A filter refusing only TIOCSTI/TIOCLINUX, for a command given the caller's terminal when its
    profile loads no seccomp policy (mode 'off'). Needs no_new_privs before it is loaded."""
    return compile_filter({"mode": "deny", "action": "errno", "errno": "EPERM", "syscalls": [], "log": False,
                           "deny_clone_newuser": False})


def rule_for(sc: dict, syscall: str) -> str:
    """The profile rule that refuses `syscall`, in words (for denial events and the report)."""
    act = sc["action"] + (f" {sc['errno']}" if sc["action"] == "errno" else "")
    if syscall == "ioctl" and sc["mode"] == "deny" and "ioctl" not in sc["syscalls"]:
        return "seccomp: ioctl TIOCSTI/TIOCLINUX (typing into a shared terminal) is always refused: errno EIO"
    if syscall == "ioctl" and sc["mode"] == "allow" and "ioctl" in sc["syscalls"]:
        return f"seccomp.syscalls (allow-list) lists ioctl, except TIOCSTI/TIOCLINUX (typing into a shared terminal): {act}"
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
