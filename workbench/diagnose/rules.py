"""The rules: each looks at the facts of a session and names the isolation layer that explains a
failure, with the evidence and a fix (words, `workbench run` options and a profile patch).

A rule returns `Candidate`s; the engine ranks them. `strength` says how conclusive the evidence is
(3: the kernel said so — an OOM kill, a SIGSYS, a failed exec; 2: a failing syscall whose errno
only this layer explains; 1.5: a hint such as an error message). The engine adds how close the
evidence is to the failure.
"""

from __future__ import annotations

import os
import signal as signal_mod
from dataclasses import dataclass, field
from typing import Any, Callable

from workbench.core import events as ev
from workbench.diagnose.facts import Facts, short
from workbench.diagnose.fixes import allow_syscall, patch_lines
from workbench.diagnose.view import SandboxView, top_dir

MAX_EVIDENCE = 6
SIGSYS = int(signal_mod.SIGSYS)
SIGKILL = int(signal_mod.SIGKILL)
CLONE_NEWUSER = 0x10000000
FORK_CALLS = ("clone", "clone3", "fork", "vfork")
EXEC_CALLS = ("execve", "execveat")
CHOWN_CALLS = {"chown": 1, "lchown": 1, "fchown": 1, "fchownat": 2}  # name -> index of the uid arg
SETID_CALLS = ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid")
NET_ERRNOS = ("ENETUNREACH", "EHOSTUNREACH", "ENETDOWN", "ECONNREFUSED", "EADDRNOTAVAIL")
RESOLVE_ERRORS = ("name or service not known", "temporary failure in name resolution",
                  "could not resolve host", "nodename nor servname", "no address associated with hostname",
                  "name resolution", "getaddrinfo failed", "unknown host")
SYSTEM_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/root",
               "/var", "/opt", "/srv", "/proc", "/sys", "/run", "/dev")
"""Where the diagnosis never proposes binding the host's own directory writable."""
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC
# Capabilities that a user namespace can never grant (they act on the whole machine).
GLOBAL_CAPS = {"sys_module", "sys_time", "sys_boot", "sys_rawio", "syslog", "mac_admin", "mac_override"}
CAP_BY_SYSCALL = {
    "mount": "sys_admin", "umount2": "sys_admin", "pivot_root": "sys_admin", "sethostname": "sys_admin",
    "setdomainname": "sys_admin", "swapon": "sys_admin", "swapoff": "sys_admin", "quotactl": "sys_admin",
    "chroot": "sys_chroot", "ptrace": "sys_ptrace", "process_vm_readv": "sys_ptrace",
    "process_vm_writev": "sys_ptrace", "kill": "kill", "tkill": "kill", "tgkill": "kill",
    "mknod": "mknod", "mknodat": "mknod", "setpriority": "sys_nice", "sched_setscheduler": "sys_nice",
    "sched_setparam": "sys_nice", "sched_setaffinity": "sys_nice", "settimeofday": "sys_time",
    "clock_settime": "sys_time", "adjtimex": "sys_time", "reboot": "sys_boot", "init_module": "sys_module",
    "finit_module": "sys_module", "delete_module": "sys_module", "setrlimit": "sys_resource",
    "prlimit64": "sys_resource", "chmod": "fowner", "fchmod": "fowner", "fchmodat": "fowner",
    "utimensat": "fowner", "setuid": "setuid", "setreuid": "setuid", "setresuid": "setuid",
    "setgid": "setgid", "setregid": "setgid", "setresgid": "setgid", "setgroups": "setgid",
    "iopl": "sys_rawio", "ioperm": "sys_rawio", "syslog": "syslog", "acct": "sys_pacct",
    "chown": "chown", "lchown": "chown", "fchown": "chown", "fchownat": "chown",
}


@dataclass
class Candidate:
    """A finding before ranking."""

    layer: str
    rule: str
    summary: str
    strength: float
    evidence: list[str]
    last_ns: int
    fix: str = ""
    fix_options: tuple[str, ...] = ()
    fix_profile: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    key: str = ""
    """Distinguishes findings of one rule (the syscall, the path...)."""


def _evidence(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_EVIDENCE:
        return lines
    return lines[:MAX_EVIDENCE - 1] + [f"... and {len(lines) - MAX_EVIDENCE + 1} more like these"]


def _group(calls: list[ev.Syscall], key: Callable[[ev.Syscall], Any]) -> dict[Any, list[ev.Syscall]]:
    groups: dict[Any, list[ev.Syscall]] = {}
    for sc in calls:
        k = key(sc)
        if k is not None:
            groups.setdefault(k, []).append(sc)
    return groups


def _fix_text(options: tuple[str, ...], patch: dict[str, Any], extra: str = "") -> str:
    """'workbench run --bind ... | profile: [filesystem] ... | bind it read-write'."""
    parts = []
    if options:
        parts.append("workbench run " + " ".join(options) + " ...")
    if patch:
        parts.append("profile: " + patch_lines(patch))
    if extra:
        parts.append(extra)
    return " | ".join(parts)


def bind_fix(f: Facts, view: SandboxView, src: str, mode: str = "ro",
             short: bool = False) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(`workbench run` options, profile patch) binding host `src` at the same place inside, or
    two empties when the sandbox has nowhere to mount it (a rootfs without that directory)."""
    if not view.bindable(src):
        return (), {}
    binds = [{"src": b["src"], "dst": b["dst"], "mode": "ro" if b.get("readonly", True) else "rw"}
             for b in f.profile.get("binds", [])]
    spec = src if short and mode == "ro" else f"{src}:{src}:{mode}"
    return ("--bind", spec), {"filesystem": {"binds": binds + [{"src": src, "dst": src, "mode": mode}]}}


def _open_flags(sc: ev.Syscall) -> int:
    if sc.name == "openat" or sc.name == "openat2":
        return sc.args[2] if len(sc.args) > 2 else 0
    if sc.name in ("open", "creat"):
        return (sc.args[1] if len(sc.args) > 1 else 0) | (os.O_CREAT | os.O_WRONLY if sc.name == "creat" else 0)
    return 0


def _writes(sc: ev.Syscall) -> bool:
    if sc.name in ("open", "openat", "openat2", "creat"):
        return bool(_open_flags(sc) & WRITE_FLAGS)
    return sc.name not in ("stat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2",
                           "readlink", "readlinkat", "execve", "execveat", "chdir", "getxattr", "lgetxattr")


# --- seccomp -----------------------------------------------------------------------------------


def seccomp_denials(f: Facts) -> list[Candidate]:
    sc_profile = f.seccomp()
    groups: dict[str, dict[str, Any]] = {}
    for d in f.denials:
        if d.syscall == "clone3" and d.errno == "ENOSYS":
            continue  # deny_clone_newuser answers clone3 with ENOSYS on purpose: libc falls back to clone
        key = d.syscall if d.abi == "x86_64" else f"{d.syscall} through the {d.abi} ABI"
        g = groups.setdefault(key, {"lines": [], "count": 0, "action": d.action, "errno": d.errno,
                                    "rule": d.rule, "last": 0, "pid": d.pid, "args": d.args, "abi": d.abi})
        g["count"] += 1
        g["last"] = max(g["last"], d.ts_ns)
        if len(g["lines"]) < MAX_EVIDENCE:  # the rest is counted, not formatted
            args = ", ".join(f"{k}={short(v)}" for k, v in d.args.items())
            via = "" if d.abi == "x86_64" else f" through the {d.abi} ABI"
            g["lines"].append(f"{f.when(d.ts_ns)} pid {d.pid} ({d.comm}) {d.syscall}({args}){via} refused by seccomp "
                              f"({d.action}{' ' + d.errno if d.errno else ''})")
    from_events = set(groups)
    for sc in f.failed:
        if not sc.denied or sc.name in from_events:
            continue  # a SeccompDenial already tells of it, with the rule
        if sc.name == "clone3" and sc.errno == "ENOSYS":
            continue  # deny_clone_newuser answers clone3 with ENOSYS on purpose: libc falls back to clone
        g = groups.setdefault(sc.name, {"lines": [], "count": 0, "action": "errno", "errno": sc.errno,
                                        "rule": "", "last": 0, "pid": sc.pid, "args": sc.decoded})
        g["count"] += 1
        g["last"] = max(g["last"], sc.ts_ns)
        if len(g["lines"]) < MAX_EVIDENCE:
            g["lines"].append(f.describe(sc))
    for fs in f.fatal:
        if fs.signal == SIGSYS and fs.code == 1 and not groups:
            groups["(unknown syscall)"] = {"lines": [f"{f.when(fs.ts_ns)} pid {fs.pid} ({fs.comm}) killed by SIGSYS "
                                                      "from seccomp"], "count": 1, "action": "kill", "errno": None,
                                           "rule": "", "last": fs.ts_ns, "pid": fs.pid, "args": {}}
    if not groups and f.exited is not None and f.exited.signal == SIGSYS and sc_profile.get("mode") != "off":
        # No probes (--no-trace): the exit alone says seccomp killed it, not for which syscall.
        groups["(unknown syscall)"] = {"lines": [f"{f.when(f.exited.ts_ns)} the command was killed by SIGSYS"],
                                       "count": 1, "action": "kill", "errno": None, "rule": "",
                                       "last": f.exited.ts_ns, "pid": f.main_pid, "args": {}}
    out = []
    for name, g in groups.items():
        killed = g["action"] in ("kill", "trap")  # an errno denial in a run killed by another is not
        newuser = name in ("clone", "unshare") and name not in sc_profile.get("syscalls", []) \
            and sc_profile.get("deny_clone_newuser", True) and sc_profile.get("mode") == "deny"
        if name.startswith("("):
            options, patch, extra = (), {}, "run with tracing on to see which syscall it was"
        elif g.get("abi", "x86_64") != "x86_64":
            options, patch = (), {}
            extra = (f"no profile setting allows a call through the {g['abi']} ABI (a 32-bit program, or "
                     "`int $0x80`): the filter is for x86-64 and kills the rest; run a 64-bit build")
        elif newuser:
            options, patch = (), {"seccomp": {"deny_clone_newuser": False}}
            extra = "it asked for a new user namespace, which would hand the process a full set of capabilities"
        else:
            options, patch, extra = ("--allow", name), {"seccomp": allow_syscall(sc_profile, name)}, ""
        what = f"errno {g['errno']}" if g["action"] == "errno" and g["errno"] else g["action"]
        how = g["rule"] or ("the profile's allow-list does not list it" if sc_profile.get("mode") == "allow"
                            else "the profile's deny-list lists it")
        # No counts in summaries: a summary names a finding for its whole life (the live diagnoser
        # republishes it as evidence grows; the evidence lines carry the counts).
        summary = f"seccomp {'killed the process on' if killed else 'refused'} {name} ({what}): {how}"
        fix_words = (f"allow {name}: " + ("add it to" if sc_profile.get("mode") == "allow" else "remove it from")
                     + " [seccomp] syscalls") if options else ""
        lines = g["lines"]
        if g["count"] > len(lines):
            lines = lines[:MAX_EVIDENCE - 1] + [f"... and {g['count'] - MAX_EVIDENCE + 1} more like these"]
        out.append(Candidate("seccomp", "seccomp-denial", summary, 3.0 if killed else 2.2, lines,
                             g["last"], fix=" | ".join(x for x in (("workbench run " + " ".join(options) + " ...")
                                                                  if options else "", fix_words,
                                                                  patch_lines(patch) if newuser else "", extra) if x),
                             fix_options=options, fix_profile=patch, pid=g["pid"], key=name))
    return out


# --- mounts and the read-only root -------------------------------------------------------------


def missing_paths(f: Facts) -> list[Candidate]:
    view = f.view
    groups: dict[str, list[ev.Syscall]] = {}
    for sc in f.failed:
        if sc.errno != "ENOENT" or sc.denied or sc.name in EXEC_CALLS:
            continue
        for path in f.paths(sc):
            norm = os.path.normpath(path)
            if view.missing_but_on_host(norm):
                groups.setdefault(norm, []).append(sc)
            elif _writes(sc) and not os.path.exists(norm) and os.path.isdir(os.path.dirname(norm)) \
                    and view.missing_but_on_host(os.path.dirname(norm)):
                groups.setdefault(os.path.dirname(norm), []).append(sc)
    out = []
    for path, calls in groups.items():
        writes = any(_writes(sc) for sc in calls)
        src = path if os.path.isdir(path) else os.path.dirname(path)
        mode = "rw" if writes else "ro"
        where = view.origin(path)
        why = ("a fresh, empty /tmp" if where.kind == "fresh" and path.startswith("/tmp")
               else "its own /dev" if where.kind == "fresh" else
               f"the rootfs {view.rootfs}" if where.kind == "rootfs" else "a bind that hides it")
        options, patch = bind_fix(f, view, src, mode)
        words = (f"bind {src} into the sandbox ({mode})" if options else
                 f"copy it into the rootfs {view.rootfs}: {src} has no mount point there to bind onto")
        out.append(Candidate(
            "mount", "host-path-missing",
            f"{path} exists on the host but not in the sandbox, which sees {why} there",
            2.0, f.evidence(calls), max(sc.ts_ns for sc in calls),
            fix=_fix_text(options, {}, words),
            fix_options=options, fix_profile=patch, pid=calls[-1].pid, key=path))
    return out


def readonly_writes(f: Facts) -> list[Candidate]:
    view = f.view
    groups: dict[tuple, list[ev.Syscall]] = {}
    for sc in f.failed:
        if sc.errno != "EROFS":
            continue
        paths = f.paths(sc) or ["(unknown path)"]
        origin = view.origin(paths[0]) if paths[0].startswith("/") else None
        key = (origin.kind, origin.bind["dst"]) if origin and origin.kind == "bind" else ("rootfs", paths[0])
        groups.setdefault(key, []).append(sc)
    out = []
    for (kind, where), calls in groups.items():
        first_path = (f.paths(calls[0]) or ["(unknown path)"])[0]
        if kind == "bind":
            bind = next(b for b in f.profile.get("binds", []) if b["dst"] == where)
            options = ("--bind", f"{bind['src']}:{bind['dst']}:rw")
            binds = [{"src": b["src"], "dst": b["dst"],
                      "mode": "rw" if b is bind or not b.get("readonly", True) else "ro"}
                     for b in f.profile.get("binds", [])]
            patch = {"filesystem": {"binds": binds}}
            summary = f"write to {first_path} failed: {bind['dst']} is bound read-only from {bind['src']}"
            fix = _fix_text(options, {}, f"make the bind of {bind['src']} writable (mode = \"rw\")")
        else:
            parent = os.path.dirname(first_path) or "/"
            summary = f"write to {first_path} failed: the sandbox's root filesystem is read-only"
            if parent != "/" and os.path.isdir(parent) and top_dir(parent) not in SYSTEM_DIRS:
                options, patch = bind_fix(f, view, parent, "rw")
                fix = _fix_text(options, {}, f"write under /tmp (private, writable), or bind the host's {parent} writable")
            elif f.profile.get("rootfs", "/") != "/":
                options, patch = (), {"filesystem": {"readonly_root": False}}
                fix = _fix_text((), patch, "the rootfs is yours: let the sandbox write to it")
            else:  # a system directory: making the host's own writable would be bad advice
                options, patch = (), {}
                fix = (f"write under /tmp (private, writable), or bind a directory of yours there: "
                       f"--bind DIR:{parent}:rw")
        out.append(Candidate("readonly-fs", "read-only-write", summary, 2.1,
                             f.evidence(calls), max(sc.ts_ns for sc in calls),
                             fix=fix, fix_options=options, fix_profile=patch, pid=calls[-1].pid,
                             key=f"{kind}:{where}"))
    return out
