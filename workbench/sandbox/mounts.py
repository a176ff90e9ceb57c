"""The sandbox's filesystem, built inside its own mount namespace (runs in the sandbox's pid 1).

Order, as in bubblewrap: cut every mount off from the host's, stage the new root on a private tmpfs,
bind the root read-only, add /proc, /dev, /tmp, an empty /run and the binds on top, then
pivot_root and detach the old root. (Cut off as private, where bubblewrap makes them slaves: see
`build`.) Sources are opened before the staging tmpfs is mounted, so a rootfs or bind source under
/tmp stays reachable through /proc/self/fd.
"""

from __future__ import annotations

import os
import stat

from workbench.sandbox import linux as L

STAGE = "/tmp"
NEWROOT = "/tmp/.workbench-root"
RUN_SIZE = 16 << 20
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore"}


def _open_path(path: str) -> int:
    return os.open(path, os.O_PATH | os.O_CLOEXEC)


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _make_mountpoint(target: str, like_dir: bool) -> None:
    """Create a missing bind target. Only possible on our own tmpfs mounts (/tmp, /dev)."""
    if os.path.lexists(target):
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if like_dir:
        os.mkdir(target)
    else:
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))


def open_sources(plan: dict) -> tuple[int, list[tuple[int, dict]]]:
    """Open the rootfs and bind sources while still host uid 0: the sandbox's uid may not be
    allowed to walk to them (a 0700 parent), but it may mount an fd it holds."""
    fs = plan["profile"]
    return _open_path(fs["rootfs"]), [(_open_path(b["src"]), b) for b in fs["binds"]]


def build(plan: dict, sources: tuple[int, list[tuple[int, dict]]]) -> None:
    """Build the filesystem of `plan` and pivot into it. Raises OSError with the failing step."""
    fs = plan["profile"]
    root_fd, bind_fds = sources
    # Private, not a slave: a slave would receive what the host mounts later, with the host's flags,
    # so a filesystem mounted under a read-only bind (an automounted disk under /media, on hosts
    # where mounts are shared) would appear writable inside. The cost: the host's unmounts do not
    # reach the sandbox either, which keeps those filesystems busy until it ends.
    L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)

    L.mount("tmpfs", STAGE, "tmpfs", L.MS_NOSUID | L.MS_NODEV, "mode=0755,size=1m")
    os.mkdir(NEWROOT)
    L.mount(_fd_path(root_fd), NEWROOT, None, L.MS_BIND | L.MS_REC)
    os.close(root_fd)
    if fs["readonly_root"]:
        L.make_tree_readonly(NEWROOT)

    L.mount("proc", f"{NEWROOT}/proc", "proc", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
    _build_dev(f"{NEWROOT}/dev")
    L.mount("tmpfs", f"{NEWROOT}/tmp", "tmpfs", L.MS_NOSUID | L.MS_NODEV,
            f"mode=1777,size={fs['tmp_size']}")
    if fs["rootfs"] == "/" and os.path.isdir(f"{NEWROOT}/run"):
        # The host's /run holds its services' sockets, many writable by anyone (the D-Bus system
        # bus, journald, PostgreSQL's): a read-only mount does not stop connect(), and they would
        # be a way to the host's services with the network off. An empty /run instead.
        L.mount("tmpfs", f"{NEWROOT}/run", "tmpfs", L.MS_NOSUID | L.MS_NODEV, f"mode=0755,size={RUN_SIZE}")

    for fd, bind in bind_fds:
        target = NEWROOT + bind["dst"]
        like_dir = stat.S_ISDIR(os.stat(_fd_path(fd)).st_mode)
        _make_mountpoint(target, like_dir)
        L.mount(_fd_path(fd), target, None, L.MS_BIND | L.MS_REC)
        os.close(fd)
        if bind["readonly"]:
            L.make_tree_readonly(target)

    os.chdir(NEWROOT)
    L.pivot_root(".", ".")  # stacks the old root under the new one: no directory needed for it
    L.umount2(".", L.MNT_DETACH)
    os.chdir("/")


def _build_dev(dev: str) -> None:
    """A minimal /dev: a few character devices bound from the host, a private devpts and shm."""
    L.mount("tmpfs", dev, "tmpfs", L.MS_NOSUID | L.MS_NOEXEC, "mode=0755,size=64k")
    for name in DEVICES:
        if not os.path.exists(f"/dev/{name}"):
            continue
        _make_mountpoint(f"{dev}/{name}", like_dir=False)
        L.mount(f"/dev/{name}", f"{dev}/{name}", None, L.MS_BIND)
    for name, target in DEV_LINKS.items():
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/pts")
    L.mount("devpts", f"{dev}/pts", "devpts", L.MS_NOSUID | L.MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=620")
    os.mkdir(f"{dev}/shm")
    L.mount("tmpfs", f"{dev}/shm", "tmpfs", L.MS_NOSUID | L.MS_NODEV, "mode=1777,size=64m")
