"""Every sandboxed process tree on the host, grouped per sandbox, with the layers each one uses.

A process counts as sandboxed when it stands in a namespace other than ours, runs under a seccomp
filter or no_new_privs, or sits in a cgroup a known sandboxing tool made. Processes are grouped by
the set of namespaces they isolate (and that cgroup): a sandbox's processes share those. Within a
group, each process tree rooted outside the group is one sandbox (two seccomp-only daemons are two).
The kind (docker, bubblewrap, our own...) is guessed from the cgroup path and the launcher above
the sandbox's root process. Read-only: nothing here changes a process.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from workbench.core.errors import UsageError
from workbench.discover.procfs import (
    NAMESPACE_TYPES, ProcInfo, all_pids, cgroup_dir, cgroup_procs, namespace_inodes, read_proc,
)

# cgroup path patterns of tools that make one cgroup per sandbox.
_CGROUP_KINDS = (
    (re.compile(r"/workbench-[\d-]+(/|$)"), "workbench"),
    (re.compile(r"docker[-/]|/docker/"), "docker"),
    (re.compile(r"libpod[-_]|/libpod/"), "podman"),
    (re.compile(r"app-flatpak-"), "flatpak"),
    (re.compile(r"/lxc[./]|lxc\.payload"), "lxc"),
    (re.compile(r"/machine\.slice/"), "systemd-nspawn/vm"),
    (re.compile(r"\.service$"), "systemd service"),
)
# The launcher's name (parent of the sandbox's root, or the root itself) -> kind.
_LAUNCHERS = {"bwrap": "bubblewrap", "flatpak": "flatpak", "runsc": "gvisor", "runsc-sandbox": "gvisor",
              "runsc-gofer": "gvisor", "unshare": "unshare", "firejail": "firejail", "nsjail": "nsjail",
              "containerd-shim": "docker", "containerd-shim-runc-v2": "docker", "conmon": "podman",
              "systemd-nspawn": "systemd-nspawn", "lxc-start": "lxc", "workbench-hold": "workbench"}


@dataclass
class Sandbox:
    """One sandboxed process tree."""

    root: int
    """The topmost sandboxed process (host pid)."""
    kind: str
    layers: list[str]
    """`user-ns`, `pid-ns`, ..., `seccomp`, `no_new_privs`, `capabilities`, `cgroup`."""
    pids: list[int] = field(default_factory=list)
    cgroup: str = "/"
    command: str = ""
    namespaces: dict[str, dict] = field(default_factory=dict)
    """Per type: {"inode": int, "isolated": bool}."""
    launcher: str = ""
    """The process that started it (the root's parent), when it is outside the sandbox."""

    def to_dict(self) -> dict:
        return {"root": self.root, "kind": self.kind, "layers": self.layers, "pids": self.pids,
                "cgroup": self.cgroup, "command": self.command, "namespaces": self.namespaces,
                "launcher": self.launcher}


def _own_cgroup_kind(path: str) -> str | None:
    for pattern, kind in _CGROUP_KINDS:
        if pattern.search(path):
            return kind
    return None


def _layers(p: ProcInfo, host_ns: dict[str, int], host_cgroup: str, full_caps: int) -> list[str]:
    layers = [f"{t}-ns" for t in NAMESPACE_TYPES if t in p.namespaces and t in host_ns
              and p.namespaces[t] != host_ns[t]]
    if p.seccomp:
        layers.append("seccomp" if p.seccomp == 2 else "seccomp-strict")
    if p.no_new_privs:
        layers.append("no_new_privs")
    if (p.uid == 0 and p.cap_eff != p.cap_bnd) or p.cap_bnd != full_caps:
        layers.append("capabilities")
    if p.cgroup_v2 not in ("/", host_cgroup) and _own_cgroup_kind(p.cgroup_v2):
        layers.append("cgroup")
    return layers


def _kind(root: ProcInfo, parent: ProcInfo | None, cgroup: str) -> str:
    for proc in (parent, root):
        if proc is None:
            continue
        names = [proc.comm] + ([os.path.basename(proc.argv[0])] if proc.argv else [])
        for name in names:
            if name in _LAUNCHERS:
                kind = _LAUNCHERS[name]
                if kind == "bubblewrap" and any("flatpak" in a for a in (proc.argv or [])):
                    return "flatpak"
                return kind
    return _own_cgroup_kind(cgroup) or "unknown"


def scan(include_self: bool = False) -> list[Sandbox]:
    """Every sandbox on the host now, biggest first."""
    me = os.getpid()
    host_ns = namespace_inodes("self")
    own = read_proc(me)
    host_cgroup = own.cgroup_v2 if own else "/"
    procs: dict[int, ProcInfo] = {}
    for pid in all_pids():
        if pid == me and not include_self:
            continue
        p = read_proc(pid)
        if p is not None:
            procs[pid] = p
    return group(procs, host_ns, host_cgroup, own.cap_bnd if own else 0)


def group(procs: dict[int, ProcInfo], host_ns: dict[str, int], host_cgroup: str, full_caps: int) -> list[Sandbox]:
    """The sandboxes among `procs` (pid -> ProcInfo), against the host's namespaces and cgroup and
    an unrestricted bounding set (`full_caps`). Pure: no /proc access."""
    keyed: dict[int, tuple] = {}
    layers_of: dict[int, list[str]] = {}
    for pid, p in procs.items():
        layers = _layers(p, host_ns, host_cgroup, full_caps)
        if not layers or layers == ["capabilities"]:
            continue  # dropped capabilities alone are ordinary privilege separation
        pairs = frozenset((t, p.namespaces[t]) for t in NAMESPACE_TYPES if f"{t}-ns" in layers)
        keyed[pid] = (pairs, _cgroup_key(p.cgroup_v2) if "cgroup" in layers else "")
        layers_of[pid] = layers
    groups: dict[int, list[int]] = {}
    for pid in keyed:
        groups.setdefault(_group_root(pid, procs, keyed), []).append(pid)
    # Disjoint trees in the same namespaces or cgroup (`docker exec`, nsenter) are one sandbox.
    by_key: dict[tuple, int] = {}
    for root in sorted(groups):
        key = keyed[root]
        if key[0] or key[1]:
            first = by_key.setdefault(key, root)
            if first != root:
                groups[first] += groups.pop(root)
    out = []
    for pids in groups.values():
        pids.sort()
        members = set(pids)
        roots = [pid for pid in pids if procs[pid].ppid not in members]
        root = min(roots) if roots else pids[0]  # noqa: the topmost process stands for the sandbox
        rp = procs[root]
        parent = procs.get(rp.ppid)
        layers = sorted({layer for pid in pids for layer in layers_of[pid]}, key=_layer_order)
        ns = {}
        for t in NAMESPACE_TYPES:  # per type, the namespace the sandbox's members isolate, if any
            inside = next((procs[pid].namespaces[t] for pid in pids if f"{t}-ns" in layers_of[pid]), None)
            ns[t] = {"inode": inside or rp.namespaces.get(t), "isolated": inside is not None}
        out.append(Sandbox(root=root, kind=_kind(rp, parent, rp.cgroup_v2), layers=layers, pids=pids,
                           cgroup=rp.cgroup_v2, command=rp.command, namespaces=ns,
                           launcher=parent.command if parent else ""))
    out.sort(key=lambda s: (-len(s.pids), s.root))
    return out


def _cgroup_key(path: str) -> str:
    """The sandbox's own cgroup: ours nest the command in app/, so cut at the workbench directory."""
    m = re.search(r"^(.*?/workbench-[\d-]+)(/|$)", path)
    return m.group(1) if m else path


def _group_root(pid: int, procs: dict[int, ProcInfo], keyed: dict[int, tuple]) -> int:
    """Walk up while the parent is sandboxed and this process only adds isolation to it (a launcher
    that unshared more, a child that forked into a new pid namespace): one sandbox, one root."""
    seen = set()
    while pid not in seen:
        seen.add(pid)
        parent = procs[pid].ppid
        if parent not in keyed:
            return pid
        (mine, my_cg), (theirs, their_cg) = keyed[pid], keyed[parent]
        if not (theirs <= mine and (their_cg == my_cg or not their_cg)):
            return pid
        pid = parent
    return pid


_ORDER = [f"{t}-ns" for t in NAMESPACE_TYPES] + ["seccomp", "seccomp-strict", "no_new_privs", "capabilities",
                                                 "cgroup"]


def _layer_order(layer: str) -> int:
    return _ORDER.index(layer) if layer in _ORDER else len(_ORDER)


# --- attach targets ----------------------------------------------------------------------------


@dataclass
class Target:
    """What `attach` watches: a cgroup (by its v2 id) when the sandbox has one of its own, else a
    process tree from its root pid."""

    description: str
    root_pid: int
    cgroup_id: int | None
    cgroup_dir: str | None
    pids: list[int]


def resolve(spec: str) -> Target:
    """`PID` or a cgroup (`/workbench-7-1/app`, or a directory under /sys/fs/cgroup)."""
    if spec.isdigit():
        pid = int(spec)
        p = read_proc(pid)
        if p is None:
            raise UsageError(f"no process {pid}", "see `workbench ps` for sandboxed processes")
        own = read_proc(os.getpid())
        if p.cgroup_v2 not in ("/", own.cgroup_v2 if own else "/") and _own_cgroup_kind(p.cgroup_v2):
            d = cgroup_dir(p.cgroup_v2)
            if d and os.path.isdir(d):
                return Target(f"cgroup {p.cgroup_v2} (of pid {pid})", pid, os.stat(d).st_ino, d, cgroup_procs(d))
        return Target(f"pid {pid} ({p.comm}) and what it forks from now on", pid, None, None, [pid])
    d = spec if spec.startswith("/sys/fs/cgroup") else cgroup_dir(spec)
    if d is None or not os.path.isdir(d):
        raise UsageError(f"no cgroup {spec!r}", "give a pid or a path from /proc/PID/cgroup (`workbench ps`)")
    pids = cgroup_procs(d)
    if not pids:
        raise UsageError(f"cgroup {spec!r} holds no process", "attach to a running sandbox (`workbench ps`)")
    return Target(f"cgroup {spec}", pids[0], os.stat(d).st_ino, d, pids)
