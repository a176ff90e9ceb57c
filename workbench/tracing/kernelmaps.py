"""Reading and resetting the probes' aggregate maps with raw bpf(2) lookups.

bcc's table objects build ctypes values per call; the aggregates are read a few times a second and
reset between sandboxes, so these helpers go through libbcc's plain lookup/update with one buffer.
"""

from __future__ import annotations

import ctypes as ct
import os
from typing import Any, Iterator

from workbench.core.events import SyscallStat
from workbench.tracing import names

_LAT_SLOTS = 40  # WB_LAT_SLOTS in probes/wb_layout.h
_ROW = ct.c_uint64 * (1 + _LAT_SLOTS)


def _lib() -> Any:
    from bcc.libbcc import lib

    return lib


def possible_cpus() -> int:
    from bcc.utils import get_possible_cpus

    return len(get_possible_cpus())


def percpu_rows(table: Any, count: int) -> Iterator[tuple[int, list[int]]]:
    """(index, per-field sums over cpus) for each non-zero row of a per-cpu array of u64 rows."""
    lib, ncpu, fd = _lib(), possible_cpus(), table.map_fd
    words = ct.sizeof(getattr(table, "sLeaf", table.Leaf)) // 8  # per-cpu tables: one cpu's value
    buf = (ct.c_uint64 * (words * ncpu))()
    key = ct.c_uint32()
    for index in range(count):
        key.value = index
        if lib.bpf_lookup_elem(fd, ct.byref(key), buf) != 0:
            continue
        sums = [sum(buf[c * words + w] for c in range(ncpu)) for w in range(words)]
        if any(sums):
            yield index, sums


def percpu_hash_sums(table: Any) -> dict[int, int]:
    """key -> sum over cpus, for a per-cpu hash of u32 -> u64."""
    out: dict[int, int] = {}
    for key, values in table.items():
        out[int(key.value)] = sum(int(v) for v in values)
    return out


def percpu_values(table: Any, index: int = 0) -> list[bytes]:
    """The raw value of one per-cpu array element on each cpu (each rounded up to 8 bytes)."""
    lib, ncpu, fd = _lib(), possible_cpus(), table.map_fd
    size = (ct.sizeof(getattr(table, "sLeaf", table.Leaf)) + 7) & ~7
    buf = (ct.c_char * (size * ncpu))()
    key = ct.c_uint32(index)
    if lib.bpf_lookup_elem(fd, ct.byref(key), buf) != 0:
        return []
    raw = bytes(buf)
    return [raw[c * size: (c + 1) * size] for c in range(ncpu)]


def zero_percpu_array(table: Any, indexes: range | list[int]) -> None:
    lib, ncpu, fd = _lib(), possible_cpus(), table.map_fd
    words = ct.sizeof(getattr(table, "sLeaf", table.Leaf)) // 8  # per-cpu tables: one cpu's value
    buf = (ct.c_uint64 * (words * ncpu))()
    key = ct.c_uint32()
    for index in indexes:
        key.value = index
        lib.bpf_update_elem(fd, ct.byref(key), buf, 0)


def syscall_stats(rows: Any, errors: Any, max_nr: int) -> tuple[SyscallStat, ...]:
    """The exact per-syscall aggregates: counts, errors by errno, log2 latency histograms."""
    by_nr: dict[int, dict[str, int]] = {}
    for key, n in percpu_hash_sums(errors).items():
        nr, err = key >> 12, key & 0xFFF
        name = names.errno_name(-err) or f"E{err}"
        by_nr.setdefault(nr, {})[name] = by_nr.get(nr, {}).get(name, 0) + n
    stats = []
    for nr, sums in percpu_rows(rows, max_nr):
        hist = tuple(sums[1:])
        last = max((i for i, v in enumerate(hist) if v), default=-1)
        stats.append(SyscallStat(name=names.name_of(nr), count=sums[0], errors=by_nr.get(nr, {}),
                                 latency_log2_ns=hist[: last + 1]))
    stats.sort(key=lambda s: -s.count)
    return tuple(stats)


def proc_comm(tid: int) -> str:
    try:
        with open(f"/proc/{tid}/comm", "rb") as f:
            return f.read().strip().decode(errors="replace")
    except OSError:
        return ""


def cgroup_of(pid: int) -> str | None:
    """The pid's path in the v2 hierarchy, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None




def cgroup2_mounts() -> list[str]:
    """Where cgroup2 hierarchies are mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified)."""
    out = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    out.append(parts[1])
    except OSError:
        pass
    return out


def cgroup_level(cgroup_id: int, pid: int) -> int | None:
    """Depth of the v2 cgroup whose inode is `cgroup_id` (the root is 0), found through the
    cgroup `pid` is in, or None when it cannot be told (then only that cgroup itself matches,
    not the ones an app makes below it)."""
    path = cgroup_of(pid)
    if path is None:
        return None
    parts = [p for p in path.split("/") if p]
    for mount in cgroup2_mounts():
        # The sandbox's cgroup is the pid's own or one of its ancestors.
        for depth in range(len(parts), -1, -1):
            try:
                if os.stat(os.path.join(mount, *parts[:depth])).st_ino == cgroup_id:
                    return depth
            except OSError:
                break
    return None
