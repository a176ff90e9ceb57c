"""Where a process stands, layer by layer, read from procfs (no eBPF needed).

For each namespace type the inode of /proc/PID/ns/TYPE, isolated when it differs from the host's
(init's /proc/1/ns/TYPE, or ours when that is unreadable); the uid/gid maps; and from /proc/PID/status the effective
capabilities, the seccomp mode and no_new_privs.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Iterable

from workbench.core.bus import Bus
from workbench.core.events import NamespaceMembership, now_ns

NAMESPACE_TYPES = ("user", "pid", "mnt", "net", "uts", "ipc", "cgroup")


def _inode(pid: int | str, ns: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{ns}").st_ino
    except OSError:
        return None


def host_namespaces() -> dict[str, int | None]:
    """The host's namespace inodes: init's (pid 1), or where init's cannot be read (some hosts
    deny it even to root, e.g. when pid 1 is a supervisor in a VM), the workbench's own, which
    runs on the host side of every sandbox it makes."""
    return {ns: _inode(1, ns) or _inode("self", ns) for ns in NAMESPACE_TYPES}


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def membership(pid: int, host: dict[str, int | None] | None = None) -> NamespaceMembership | None:
    """The NamespaceMembership of `pid`, or None when it is gone."""
    host = host if host is not None else host_namespaces()
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return None
    namespaces: dict[str, dict[str, Any]] = {}
    for ns in NAMESPACE_TYPES:
        ino = _inode(pid, ns)
        if ino is None:
            continue
        namespaces[ns] = {"inode": ino, "isolated": host.get(ns) is not None and ino != host[ns]}
    fields = _status_fields(status)
    return NamespaceMembership(
        ts_ns=now_ns(), pid=pid, namespaces=namespaces,
        uid_map=(_read(f"/proc/{pid}/uid_map") or "").strip(),
        gid_map=(_read(f"/proc/{pid}/gid_map") or "").strip(),
        cap_eff=int(fields.get("CapEff", "0"), 16),
        seccomp_mode=int(fields.get("Seccomp", "0")),
        no_new_privs=fields.get("NoNewPrivs", "0") == "1",
    )


class MembershipSampler:
    """Publishes a NamespaceMembership for each new pid of `pids_fn()`, and again when one
    changes (setns, unshare, a seccomp filter installed, capabilities dropped).

    `sample()` does one pass; `start()` runs passes on our own thread every `interval` seconds.
    """

    def __init__(self, bus: Bus, pids_fn: Callable[[], Iterable[int]], interval: float = 0.25):
        self.bus = bus
        self.pids_fn = pids_fn
        self.interval = interval
        self._host = host_namespaces()
        self._last: dict[int, tuple] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> list[NamespaceMembership]:
        published = []
        alive = set()
        for pid in sorted(set(self.pids_fn())):
            m = membership(pid, self._host)
            if m is None:
                continue
            alive.add(pid)
            key = (tuple(sorted((k, v["inode"]) for k, v in m.namespaces.items())), m.uid_map,
                   m.gid_map, m.cap_eff, m.seccomp_mode, m.no_new_privs)
            if self._last.get(pid) != key:
                self._last[pid] = key
                self.bus.publish(m)
                published.append(m)
        for pid in set(self._last) - alive:
            del self._last[pid]  # a reused pid is a new process: publish it again
        return published

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="workbench-ns-sampler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)
