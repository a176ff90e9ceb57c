"""cgroups for one sandbox: limits, usage read-back, kill, removal, and a sweep of what a killed
workbench left behind.

Two layouts are supported:
- hybrid (our machines): v1 controllers under /sys/fs/cgroup/<controller>, and a controller-less
  cgroup2 at /sys/fs/cgroup/unified used only to give the sandbox a cgroup id for probes;
- unified (most user machines): one cgroup2 at /sys/fs/cgroup with memory, pids and cpu.

Every sandbox gets a directory named `workbench-<owner pid>-<n>` in each hierarchy it uses, and in
the v2 hierarchy a child `app/` that holds the command once it passes the start gate: the probes
filter on app/'s id, so the launcher's own syscalls before the gate are never recorded.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass, field

from workbench.core.errors import SandboxError

ROOT = os.environ.get("WORKBENCH_CGROUP_ROOT", "/sys/fs/cgroup")
PREFIX = "workbench-"
_NAME = re.compile(r"^workbench-(\d+)-\d+-\d+$")  # workbench-<owner pid>-<launcher pid>-<n>
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
# The launcher's first child stays in the sandbox's cgroups, outside its pid namespace, waiting
# for pid 1. Moving it out again would cost a cgroup migration (an RCU grace period that stalls
# every fork on the host, measured at 2-4 ms of launch time), so instead the pids limit is raised
# by one for it and it is subtracted from what is reported.
LAUNCHER_PROCS = 1
CPU_PERIOD_US = 100_000


def detect_layout(root: str = ROOT) -> str:
    """`unified`, `hybrid` or `none`."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return "unified"
    if os.path.isdir(os.path.join(root, "memory")) or os.path.isdir(os.path.join(root, "pids")):
        return "hybrid"
    return "none"


def v2_root(root: str = ROOT) -> str | None:
    layout = detect_layout(root)
    if layout == "unified":
        return root
    unified = os.path.join(root, "unified")
    if os.path.exists(os.path.join(unified, "cgroup.procs")):
        return unified
    return None


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    if text is None or text == "max":
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _keyed(path: str) -> dict[str, int]:
    """Parse a flat keyed file (memory.events, cpu.stat...)."""
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


@dataclass
class SandboxCgroup:
    """The cgroup directories of one sandbox and what they can tell."""

    name: str
    layout: str
    v1: dict[str, str] = field(default_factory=dict)
    """controller -> directory (hybrid layout)."""
    v2: str | None = None
    """The sandbox's directory in the v2 hierarchy."""
    memory_limit: int | None = None
    pids_limit: int | None = None
    _pids_peak: int = 0

    @property
    def app_dir(self) -> str | None:
        return os.path.join(self.v2, "app") if self.v2 else None

    @property
    def app_id(self) -> int | None:
        """What bpf_get_current_cgroup_id() returns for the command: the inode of app/."""
        return os.stat(self.app_dir).st_ino if self.app_dir else None

    def to_dict(self) -> dict:
        return {"name": self.name, "layout": self.layout, "v1": self.v1, "v2": self.v2,
                "memory_limit": self.memory_limit, "pids_limit": self.pids_limit}

    @classmethod
    def from_dict(cls, d: dict) -> "SandboxCgroup":
        return cls(name=d["name"], layout=d["layout"], v1=dict(d["v1"]), v2=d["v2"],
                   memory_limit=d.get("memory_limit"), pids_limit=d.get("pids_limit"))

    # --- placing processes ---------------------------------------------------------------------

    def dirs(self) -> list[str]:
        return list(self.v1.values()) + ([self.v2] if self.v2 else [])

    def add(self, pid: int) -> None:
        for d in self.dirs():
            _write(os.path.join(d, "cgroup.procs"), str(pid))

    def move_to_app(self, pid: int) -> None:
        if self.app_dir:
            _write(os.path.join(self.app_dir, "cgroup.procs"), str(pid))

    # --- reading -------------------------------------------------------------------------------

    def _ctl(self, controller: str) -> str | None:
        if self.layout == "unified":
            return self.v2
        return self.v1.get(controller)

    def usage(self) -> dict:
        """Current figures: memory, peak memory, cpu seconds, pids, OOM kills, io bytes."""
        mem_dir, pids_dir = self._ctl("memory"), self._ctl("pids")
        out = {"memory_bytes": 0, "memory_peak_bytes": 0, "memory_limit_bytes": self.memory_limit,
               "cpu_seconds": 0.0, "pids": 0, "pids_limit": self.pids_limit, "pids_peak": 0,
               "oom_kills": 0, "pids_max_hits": 0, "io_read_bytes": 0, "io_write_bytes": 0}
        if mem_dir:
            if self.layout == "unified":
                out["memory_bytes"] = _read_int(f"{mem_dir}/memory.current") or 0
                out["memory_peak_bytes"] = _read_int(f"{mem_dir}/memory.peak") or 0
                out["oom_kills"] = _keyed(f"{mem_dir}/memory.events").get("oom_kill", 0)
            else:
                out["memory_bytes"] = _read_int(f"{mem_dir}/memory.usage_in_bytes") or 0
                out["memory_peak_bytes"] = _read_int(f"{mem_dir}/memory.max_usage_in_bytes") or 0
                out["oom_kills"] = _keyed(f"{mem_dir}/memory.oom_control").get("oom_kill", 0)
        if pids_dir:
            current = _read_int(f"{pids_dir}/pids.current") or 0
            out["pids"] = max(0, current - LAUNCHER_PROCS)
            peak = max(0, (_read_int(f"{pids_dir}/pids.peak") or 0) - LAUNCHER_PROCS)
            self._pids_peak = max(self._pids_peak, out["pids"], peak)
            out["pids_peak"] = self._pids_peak
            out["pids_max_hits"] = _keyed(f"{pids_dir}/pids.events").get("max", 0)
        if self.layout == "unified" and self.v2:
            out["cpu_seconds"] = _keyed(f"{self.v2}/cpu.stat").get("usage_usec", 0) / 1e6
            for line in (_read(f"{self.v2}/io.stat") or "").splitlines():
                kv = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
                out["io_read_bytes"] += int(kv.get("rbytes", 0))
                out["io_write_bytes"] += int(kv.get("wbytes", 0))
        elif "cpuacct" in self.v1:
            out["cpu_seconds"] = (_read_int(f"{self.v1['cpuacct']}/cpuacct.usage") or 0) / 1e9
        return out

    def pids(self) -> list[int]:
        """Every process in the sandbox, from the v2 tree when there is one."""
        found: list[int] = []
        tops = [self.v2] if self.v2 else list(self.v1.values())[:1]
        for top in tops:
            for dirpath, _dirs, _files in os.walk(top):
                for line in (_read(os.path.join(dirpath, "cgroup.procs")) or "").split():
                    found.append(int(line))
        return found

    # --- ending --------------------------------------------------------------------------------

    def kill_all(self) -> None:
        """SIGKILL everything inside (cgroup.kill where the kernel has it, else pid by pid)."""
        if self.v2 and os.path.exists(os.path.join(self.v2, "cgroup.kill")):
            try:
                _write(os.path.join(self.v2, "cgroup.kill"), "1")
                return
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self, timeout: float = 2.0) -> bool:
        """Kill what is left and remove every directory. True when all are gone."""
        if self.pids():
            self.kill_all()
        deadline = time.monotonic() + timeout
        # Children first (app/, and any a backend made, like gVisor's stubs/), then ours.
        nested = []
        for top in self.dirs():
            for parent, subdirs, _files in os.walk(top, topdown=False):  # deepest first
                nested += [os.path.join(parent, sub) for sub in subdirs]
        remaining = nested + self.dirs()
        while remaining:
            left = []
            for d in remaining:
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(d)
            remaining = left
            if not remaining or time.monotonic() > deadline:
                break
            time.sleep(0.005)  # dying tasks leave the cgroup asynchronously
        return not remaining


_counter = 0
PID_MAX_LIMIT = 4_194_304  # the kernel's ceiling for pids.max


def _pids_max(pids: int) -> str:
    value = pids + LAUNCHER_PROCS
    return "max" if value > PID_MAX_LIMIT else str(value)



def create(memory: int | None, pids: int | None, cpus: float | None, root: str = ROOT,
           owner: int | None = None) -> SandboxCgroup:
    """Make the directories, write the limits. Raises SandboxError with a fix when it can't."""
    global _counter
    _counter += 1
    name = f"{PREFIX}{owner or os.getpid()}-{os.getpid()}-{_counter}"
    layout = detect_layout(root)
    cg = SandboxCgroup(name=name, layout=layout, memory_limit=memory, pids_limit=pids)
    try:
        if layout == "unified":
            _create_unified(cg, root, memory, pids, cpus)
        elif layout == "hybrid":
            _create_hybrid(cg, root, memory, pids, cpus)
        elif memory or pids or cpus:
            raise SandboxError("no cgroup hierarchy is mounted, so limits cannot be applied",
                               "mount cgroup2 on /sys/fs/cgroup, or drop --memory/--pids/--cpus")
    except OSError as exc:
        cg.remove(timeout=0.2)
        raise SandboxError(f"cannot set up the sandbox cgroup ({exc.strerror}: {exc.filename})",
                           "run as root on a host with cgroups mounted (see `workbench doctor`)") from None
    return cg


def _create_hybrid(cg: SandboxCgroup, root: str, memory, pids, cpus) -> None:
    for ctl in V1_CONTROLLERS:
        base = os.path.join(root, ctl)
        if os.path.isdir(base) and os.access(base, os.W_OK):
            path = os.path.join(base, cg.name)
            os.mkdir(path)
            cg.v1[ctl] = path
    if memory:
        if "memory" not in cg.v1:
            raise SandboxError("the memory cgroup controller is not mounted", "mount it or drop --memory")
        _write(f"{cg.v1['memory']}/memory.limit_in_bytes", str(memory))
        try:  # no swap escape hatch when the kernel accounts swap
            _write(f"{cg.v1['memory']}/memory.memsw.limit_in_bytes", str(memory))
        except OSError:
            pass
    if pids:
        if "pids" not in cg.v1:
            raise SandboxError("the pids cgroup controller is not mounted", "mount it or drop --pids")
        _write(f"{cg.v1['pids']}/pids.max", _pids_max(pids))
    if cpus and "cpu" in cg.v1:
        _write(f"{cg.v1['cpu']}/cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(f"{cg.v1['cpu']}/cpu.cfs_quota_us", str(int(cpus * CPU_PERIOD_US)))
    v2 = v2_root(root)
    if v2:
        cg.v2 = os.path.join(v2, cg.name)
        os.mkdir(cg.v2)
        os.mkdir(cg.app_dir)


def _create_unified(cg: SandboxCgroup, root: str, memory, pids, cpus) -> None:
    parent = os.path.join(root, "workbench")
    os.makedirs(parent, exist_ok=True)
    wanted = [c for c, v in (("memory", memory), ("pids", pids), ("cpu", cpus)) if v]
    available = set((_read(os.path.join(root, "cgroup.controllers")) or "").split())
    missing = [c for c in wanted if c not in available]
    if missing:
        raise SandboxError(f"cgroup v2 controller {missing[0]} is not available",
                           f"enable it in {root}/cgroup.subtree_control or drop the limit")
    for d in (root, parent):  # controllers must be enabled top-down to reach our directory
        control = os.path.join(d, "cgroup.subtree_control")
        try:
            _write(control, " ".join(f"+{c}" for c in wanted))
        except OSError:  # one refused (e.g. threaded mode): enable the others one by one
            for c in wanted:
                try:
                    _write(control, f"+{c}")
                except OSError:
                    pass
    cg.v2 = os.path.join(parent, cg.name)
    os.mkdir(cg.v2)
    os.mkdir(cg.app_dir)
    if memory:
        _write(f"{cg.v2}/memory.max", str(memory))
        try:
            _write(f"{cg.v2}/memory.swap.max", "0")
        except OSError:
            pass
    if pids:
        _write(f"{cg.v2}/pids.max", _pids_max(pids))
    if cpus:
        _write(f"{cg.v2}/cpu.max", f"{int(cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")


def owner_alive(pid: int) -> bool:
    """Is the process that created a sandbox still there? Any process with that pid counts: a
    reused pid only delays a sweep, while judging by the command line would kill the live
    sandboxes of a workbench embedded in another program (a test runner, say)."""
    return os.path.exists(f"/proc/{pid}")


def sweep(root: str = ROOT) -> list[str]:
    """Remove sandboxes whose workbench is gone (killed with SIGKILL). Returns what was removed."""
    removed: list[str] = []
    bases = [os.path.join(root, c) for c in V1_CONTROLLERS]
    v2 = v2_root(root)
    if v2:
        bases += [v2, os.path.join(v2, "workbench")]
    stale: dict[str, SandboxCgroup] = {}
    for base in bases:
        try:
            entries = os.listdir(base)
        except OSError:
            continue
        for entry in entries:
            m = _NAME.match(entry)
            if not m or int(m.group(1)) == os.getpid() or owner_alive(int(m.group(1))):
                continue
            cg = stale.setdefault(entry, SandboxCgroup(name=entry, layout=detect_layout(root)))
            path = os.path.join(base, entry)
            if base.startswith(v2 or "\0"):
                cg.v2 = path
            else:
                cg.v1[os.path.basename(base)] = path
    for name, cg in stale.items():
        cg.remove(timeout=1.0)
        removed.append(name)
    return removed
