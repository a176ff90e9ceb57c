"""Looking at the host's kernel objects from the outside: a sandbox's cgroup directories and
processes by its owner's pid, and whether a BPF program still exists (by id, through bpf())."""

from __future__ import annotations

import ctypes
import glob
import os
import re

CGROUP_ROOT = "/sys/fs/cgroup"
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SYS_BPF = 321
_BPF_PROG_GET_FD_BY_ID = 13


def cgroup_dirs(owner: int) -> list[str]:
    """Every directory of sandboxes made by workbench process `owner`, in every hierarchy."""
    patterns = [f"{CGROUP_ROOT}/*/workbench-{owner}-*", f"{CGROUP_ROOT}/*/workbench/workbench-{owner}-*",
                f"{CGROUP_ROOT}/workbench/workbench-{owner}-*"]
    return sorted({d for p in patterns for d in glob.glob(p) if os.path.isdir(d)})


def cgroup_pids(owner: int) -> set[int]:
    pids: set[int] = set()
    for top in cgroup_dirs(owner):
        for dirpath, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    pids |= {int(x) for x in open(os.path.join(dirpath, "cgroup.procs")).read().split()}
                except OSError:
                    pass
    return pids


def app_pids(owner: int) -> set[int]:
    """Processes in the command's own cgroup (app/) of `owner`'s sandboxes: the sandbox is running."""
    pids: set[int] = set()
    for app in glob.glob(f"{CGROUP_ROOT}/unified/workbench-{owner}-*/app/cgroup.procs"):
        try:
            pids |= {int(x) for x in open(app).read().split()}
        except OSError:
            pass
    return pids


def alive(pid: int) -> bool:
    """Exists and is not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def bpf_prog_ids(pid: int) -> set[int]:
    """Ids of the BPF programs process `pid` holds open."""
    ids: set[int] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if "bpf-prog" not in os.readlink(f"/proc/{pid}/fd/{fd}"):
                continue
            m = re.search(r"^prog_id:\s*(\d+)", open(f"/proc/{pid}/fdinfo/{fd}").read(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    return ids


def bpf_prog_exists(prog_id: int) -> bool:
    attr = (ctypes.c_uint32 * 4)(prog_id, 0, 0, 0)
    fd = _libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_long(_BPF_PROG_GET_FD_BY_ID), attr,
                       ctypes.c_long(ctypes.sizeof(attr)))
    if fd >= 0:
        os.close(fd)
        return True
    return False


def descendants(pid: int) -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def children(pid: int) -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process(pid).children()}
    except psutil.Error:
        return set()
