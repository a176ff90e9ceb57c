"""A recorded-looking run built from real event objects with fixed clocks: deterministic input for
pilot and snapshot tests (no sandbox needed to draw every pane)."""

from __future__ import annotations

from workbench.core import events as ev
from workbench.sandbox.profile import apply_overrides, load

T0 = 1_000_000_000_000
MS = 1_000_000

PROFILE = apply_overrides(load("default"), deny=["mkdir"])
COMMAND = ("sh", "-c", "mkdir /tmp/a; echo hello; cat /nope")
NS = {k: {"isolated": True, "inode": 4026532100 + i}
      for i, k in enumerate(("user", "pid", "mnt", "net", "uts", "ipc", "cgroup"))}


def syscall(i: int, name: str = "openat", ret: int = 3, errno: str | None = None, denied: bool = False,
            pid: int = 4242, decoded: dict | None = None) -> ev.Syscall:
    return ev.Syscall(ts_ns=T0 + 5 * MS + i * 1000, pid=pid, tid=pid, comm="sh", nr=257 if name == "openat" else 83,
                      name=name, args=(0xffffff9c, 0x7ffd0000 + i, 0, 0, 0, 0), ret=ret, errno=errno,
                      duration_ns=0 if denied else 1500 + i, decoded=decoded or {}, denied=denied)


def lifecycle_start() -> list[ev.Event]:
    return [
        ev.SessionStarted(ts_ns=T0, command=COMMAND, backend="native", profile_name="default",
                          profile=PROFILE.to_dict()),
        ev.ProbeStatus(ts_ns=T0 + 1 * MS, probe="syscalls", state="attached", compile_s=0.8),
        ev.SandboxReady(ts_ns=T0 + 2 * MS, pid=4242, init_pid=4241, cgroup_v2_path="/sys/fs/cgroup/unified/workbench-1",
                        cgroup_id=991, namespaces=NS, launch_ms=7.5),
        ev.SandboxReleased(ts_ns=T0 + 3 * MS, pid=4242),
        ev.ProcessExec(ts_ns=T0 + 4 * MS, pid=4242, filename="/usr/bin/sh", argv=COMMAND, comm="sh"),
        ev.NamespaceMembership(ts_ns=T0 + 4 * MS, pid=4242, namespaces=NS, uid_map="0 65534 1",
                               gid_map="0 65534 1", cap_eff=0, seccomp_mode=2, no_new_privs=True),
    ]


def flood(n: int = 23) -> list[ev.Event]:
    """`n` syscalls in one batch: most succeed, every 5th fails with ENOENT, one is denied."""
    calls = []
    for i in range(n):
        if i == 7:
            calls.append(syscall(i, "mkdir", ret=-1, errno="EPERM", denied=True, decoded={"pathname": "/tmp/a"}))
        elif i % 5 == 4:
            calls.append(syscall(i, ret=-2, errno="ENOENT", decoded={"pathname": f"/nope{i}"}))
        else:
            calls.append(syscall(i, decoded={"pathname": f"/etc/file{i}"}))
    return [ev.SyscallBatch(ts_ns=T0 + 6 * MS, syscalls=tuple(calls))]


def middle() -> list[ev.Event]:
    return [
        ev.SeccompDenial(ts_ns=T0 + 6 * MS, pid=4242, tid=4242, comm="sh", syscall="mkdir", nr=83,
                         action="errno", errno="EPERM", args={"pathname": "/tmp/a"},
                         rule="seccomp.syscalls: mkdir (deny-list, errno EPERM)"),
        ev.ProcessForked(ts_ns=T0 + 7 * MS, pid=4243, ppid=4242, comm="sh"),
        ev.ProcessExec(ts_ns=T0 + 8 * MS, pid=4243, filename="/usr/bin/cat", argv=("cat", "/nope"), comm="cat"),
        ev.Output(ts_ns=T0 + 9 * MS, stream="stdout", data=b"hello\n"),
        ev.Output(ts_ns=T0 + 9 * MS, stream="stderr", data=b"mkdir: cannot create directory '/tmp/a': Operation not permitted\n"),
        ev.ProcessExited(ts_ns=T0 + 10 * MS, pid=4243, exit_code=1, signal=None, comm="cat"),
        *[ev.ResourceSample(ts_ns=T0 + (10 + 250 * i) * MS, memory_bytes=(3 + i) << 20,
                            memory_peak_bytes=(3 + i) << 20, memory_limit_bytes=1 << 30,
                            cpu_seconds=0.01 * i, pids=1 + i % 2, pids_limit=512) for i in range(9)],
        ev.SyscallStats(ts_ns=T0 + 11 * MS, stats=(
            ev.SyscallStat("openat", 19, {"ENOENT": 4}, (0,) * 10 + (12, 5, 2)),
            ev.SyscallStat("mkdir", 1, {"EPERM": 1}, ()),
            ev.SyscallStat("read", 31, {}, (0,) * 9 + (30, 1)),
        )),
    ]


def ending() -> list[ev.Event]:
    return [
        ev.ProcessExited(ts_ns=T0 + 20 * MS, pid=4242, exit_code=1, signal=None, comm="sh"),
        ev.SandboxExited(ts_ns=T0 + 20 * MS, exit_code=1, signal=None, duration_s=0.017),
        ev.Finding(ts_ns=T0 + 21 * MS, layer="seccomp", summary="mkdir was denied by the seccomp profile",
                   evidence=("mkdir('/tmp/a') = EPERM by seccomp",), fix="--allow mkdir", score=0.9),
        ev.SessionEnded(ts_ns=T0 + 22 * MS),
    ]


def whole_run(n: int = 23) -> list[ev.Event]:
    return lifecycle_start() + flood(n) + middle() + ending()
