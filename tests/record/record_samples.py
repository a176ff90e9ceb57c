"""One populated instance of every event type, with values that stress the codec (bytes, tuples,
nested events, None, unicode), for round-trip tests."""

from __future__ import annotations

import dataclasses

from workbench.core import events as ev


def syscall(i: int, *, ts: int = 1_000, name: str = "openat", ret: int = 3, errno: str | None = None,
            denied: bool = False, pid: int = 4242, decoded: dict | None = None) -> ev.Syscall:
    return ev.Syscall(ts_ns=ts + i, pid=pid, tid=pid + 1, comm="python3", nr=257, name=name,
                      args=(0xFFFFFF9C, 140737488346000 + i, 0o2000000, 0, 0, 0), ret=ret, errno=errno,
                      duration_ns=1_337 + i, decoded=decoded if decoded is not None else {"pathname": f"/etc/f{i}"},
                      denied=denied)


def every_event() -> list[ev.Event]:
    """At least one instance of each Event subclass in workbench.core.events."""
    out: list[ev.Event] = [
        ev.SessionStarted(ts_ns=1, command=("sh", "-c", "mkdir /x && echo é"), backend="native",
                          profile_name="default", profile={"seccomp": {"syscalls": ["mkdir"]}, "memory": None}),
        ev.SandboxReady(ts_ns=2, pid=100, init_pid=99, cgroup_v2_path="/sys/fs/cgroup/unified/wb-1",
                        cgroup_id=12345, namespaces={"pid": {"isolated": True, "inode": 4026532178}},
                        launch_ms=7.25),
        ev.SandboxReleased(ts_ns=3, pid=100),
        ev.Output(ts_ns=4, stream="stderr", data=b"\x00\xffmkdir: cannot create\n"),
        syscall(0, ts=5),
        ev.SyscallBatch(ts_ns=6, syscalls=tuple(syscall(i, ts=6) for i in range(23))),
        ev.SyscallBatch(ts_ns=7, syscalls=()),
        ev.SyscallBatch(ts_ns=7, syscalls=(dataclasses.replace(syscall(1, ts=7), source="gvisor", pid=1),
                                           syscall(2, ts=7, name="mkdir", ret=-1, errno="EPERM", denied=True))),
        ev.SyscallStats(ts_ns=8, stats=(ev.SyscallStat(name="openat", count=23, errors={"ENOENT": 7},
                                                       latency_log2_ns=(0, 1, 5, 17)),
                                        ev.SyscallStat(name="read", count=3, errors={}))),
        ev.SeccompDenial(ts_ns=9, pid=100, tid=100, comm="mkdir", syscall="mkdir", nr=83, action="errno",
                         errno="EPERM", args={"pathname": "/x"}, raw_args=(1, 2, 3, 4, 5, 6),
                         rule="seccomp.syscalls: mkdir (deny-list, errno EPERM)"),
        ev.EventsLost(ts_ns=10, count=17, source="ringbuf"),
        ev.ProbeStatus(ts_ns=11, probe="syscalls", state="off", reason="no BTF", compile_s=0.75),
        ev.ProcessForked(ts_ns=12, pid=101, ppid=100, comm="sh"),
        ev.ProcessExec(ts_ns=13, pid=101, filename="/usr/bin/mkdir", argv=("mkdir", "/x"), comm="mkdir"),
        ev.ProcessExited(ts_ns=14, pid=101, exit_code=None, signal=31, comm="mkdir"),
        ev.FatalSignal(ts_ns=15, pid=101, signal=31, code=1, comm="mkdir", sender_pid=0),
        ev.OomKill(ts_ns=16, pid=102, comm="python3", pages=65537),
        ev.NamespaceMembership(ts_ns=17, pid=101, namespaces={"net": {"inode": 1, "isolated": True}},
                               uid_map="0 65534 1", gid_map="0 65534 1", cap_eff=0, seccomp_mode=2,
                               no_new_privs=True),
        ev.ResourceSample(ts_ns=18, memory_bytes=1 << 20, memory_peak_bytes=3 << 20, memory_limit_bytes=None,
                          cpu_seconds=0.5, pids=3, pids_limit=23, oom_kills=1),
        ev.Finding(ts_ns=19, layer="seccomp", summary="mkdir was denied", evidence=("t+0.1s pid 101 mkdir",),
                   fix="--allow mkdir", score=3.5, fix_options=("--allow", "mkdir"),
                   fix_profile={"seccomp": {"syscalls": ["rmdir"]}}, rule="seccomp-denial", pid=101),
        ev.SandboxExited(ts_ns=20, exit_code=None, signal=31, duration_s=0.125, exec_error="ENOENT"),
        ev.Notice(level="warning", text="a view is off", source="probes", ts_ns=21),
        ev.SessionEnded(ts_ns=22),
    ]
    covered = {type(e) for e in out}
    missing = [c for c in vars(ev).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
               and issubclass(c, ev.Event) and c is not ev.Event and c not in covered]
    assert not missing, f"samples.every_event() lacks {missing}: add them"
    # Syscalls are stored in columns: every field must appear with a non-default value somewhere,
    # or a field added to Syscall could be lost by the recorder without a test noticing.
    calls = [c for e in out if isinstance(e, ev.SyscallBatch) for c in e.syscalls]
    for f in dataclasses.fields(ev.Syscall):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else object())
        assert any(getattr(c, f.name) != default for c in calls), f"no sample Syscall sets {f.name}"
    return out
