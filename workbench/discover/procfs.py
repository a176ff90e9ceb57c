"""What /proc says about one process's isolation: namespaces, seccomp, no_new_privs, capabilities,
cgroup. Read-only: nothing here writes to /proc or touches the process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

NAMESPACE_TYPES = ("user", "pid", "mnt", "net", "uts", "ipc", "cgroup")
CGROUP_ROOT = os.environ.get("WORKBENCH_CGROUP_ROOT", "/sys/fs/cgroup")


def _read(path: str) -> str | None:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def namespace_inodes(pid: int | str) -> dict[str, int]:
    out = {}
    for name in NAMESPACE_TYPES:
        try:
            out[name] = os.stat(f"/proc/{pid}/ns/{name}").st_ino
        except OSError:
            pass
    return out


@dataclass
class ProcInfo:
    """One process as /proc shows it."""

    pid: int
    ppid: int
    comm: str
    argv: list[str]
    uid: int
    namespaces: dict[str, int]
    """Namespace type -> inode."""
    seccomp: int
    """0 off, 1 strict, 2 filter."""
    no_new_privs: bool
    cap_eff: int
    cap_bnd: int
    cgroup_v2: str
    """The process's path in the v2 hierarchy (`/` for the root)."""
    cgroups_v1: dict[str, str] = field(default_factory=dict)
    """controller -> path (hybrid hosts)."""

    @property
    def command(self) -> str:
        return " ".join(self.argv) if self.argv else f"[{self.comm}]"


def read_proc(pid: int) -> ProcInfo | None:
    """The process's isolation facts, or None if it is gone or a kernel thread."""
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return None
    fields = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    raw_argv = _read(f"/proc/{pid}/cmdline")
    if not raw_argv and fields.get("PPid") == "2":
        return None  # a kernel thread
    cg_text = _read(f"/proc/{pid}/cgroup") or ""
    v2, v1 = "/", {}
    for line in cg_text.splitlines():
        hid, controllers, path = line.split(":", 2)
        if hid == "0":
            v2 = path
        else:
            for c in controllers.split(","):
                v1[c] = path
    try:
        return ProcInfo(
            pid=pid, ppid=int(fields.get("PPid", "0")), comm=fields.get("Name", "?"),
            argv=[a for a in (raw_argv or "").split("\0") if a], uid=int(fields.get("Uid", "0").split()[0]),
            namespaces=namespace_inodes(pid), seccomp=int(fields.get("Seccomp", "0")),
            no_new_privs=fields.get("NoNewPrivs", "0") == "1", cap_eff=int(fields.get("CapEff", "0"), 16),
            cap_bnd=int(fields.get("CapBnd", "0"), 16), cgroup_v2=v2, cgroups_v1=v1)
    except ValueError:
        return None


def all_pids() -> list[int]:
    return sorted(int(e) for e in os.listdir("/proc") if e.isdigit())


def v2_mount() -> str | None:
    """Where the v2 hierarchy is mounted (pure v2 at the root, hybrid under unified/)."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return CGROUP_ROOT
    unified = os.path.join(CGROUP_ROOT, "unified")
    if os.path.exists(os.path.join(unified, "cgroup.procs")):
        return unified
    return None


def cgroup_dir(v2_path: str) -> str | None:
    """The directory of a v2 cgroup path like `/workbench-7-1/app`."""
    mount = v2_mount()
    if mount is None:
        return None
    return os.path.join(mount, v2_path.lstrip("/")) if v2_path != "/" else mount


def cgroup_procs(directory: str) -> list[int]:
    """Every process in a v2 cgroup directory and below."""
    found = []
    for dirpath, _dirs, _files in os.walk(directory):
        for line in (_read(os.path.join(dirpath, "cgroup.procs")) or "").split():
            found.append(int(line))
    return sorted(found)
