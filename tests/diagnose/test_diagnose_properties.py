"""Property tests of the rules engine (pure unit tests, derandomized): whatever a session's events,
diagnose() returns findings in the layer vocabulary, ranked, with one line summaries, and every
fix it proposes is a profile the real validator accepts (and CLI options apply_overrides takes)."""

from __future__ import annotations

import errno as errno_mod
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.core import events as ev
from workbench.diagnose import apply_fix, diagnose
from workbench.sandbox.profile import apply_overrides, from_dict, load

LAYERS = {"seccomp", "mount", "readonly-fs", "capabilities", "user-namespace", "cgroup-memory", "cgroup-pids",
          "network", "exec", "gvisor"}
NAMES = ["openat", "mkdir", "execve", "connect", "bind", "socket", "clone", "fchownat", "setuid", "mount",
         "chdir", "read", "unlink", "io_uring_setup", "kill", "ptrace", "rename"]
ERRNOS = [None, "ENOENT", "EPERM", "EACCES", "EROFS", "EINVAL", "EAGAIN", "ENOSYS", "ENETUNREACH",
          "ECONNREFUSED", "ENOEXEC"]
PATHS = ["/etc/passwd", "/tmp", "/tmp/x", "/nonexistent", "relative/file", "/proc/self/status", "/usr/bin/env",
         "/dev/kvm", "/etc", "/", "out", "/tmp/pytest-of-root"]
ADDRS = ["127.0.0.1:80", "10.0.0.1:8080", "[::1]:53", "/run/x.sock", "@abstract", "0.0.0.0:81"]
T0 = 1_000_000_000


@st.composite
def syscalls(draw):
    name = draw(st.sampled_from(NAMES))
    err = draw(st.sampled_from(ERRNOS))
    decoded = {}
    if draw(st.booleans()):
        decoded["pathname"] = draw(st.sampled_from(PATHS))
    if name in ("connect", "bind"):
        decoded["addr"] = draw(st.sampled_from(ADDRS))
    if name == "chdir":
        decoded["path"] = draw(st.sampled_from(PATHS))
    args = tuple(draw(st.sampled_from([0, 1, 3, 17, 1000, 0xFFFFFFFF, -100 & 0xFFFFFFFF, 0x10000000,
                                       os.O_WRONLY | os.O_CREAT])) for _ in range(6))
    ret = -getattr(errno_mod, err) if err else draw(st.integers(0, 5))
    return ev.Syscall(ts_ns=T0 + draw(st.integers(0, 10**9)), pid=draw(st.sampled_from([7, 8, 9])), tid=7,
                      comm="app", nr=0, name=name, args=args, ret=ret, errno=err, duration_ns=5,
                      decoded=decoded, denied=draw(st.booleans()) if err else False,
                      source=draw(st.sampled_from(["host", "host", "gvisor"])))


@st.composite
def sessions(draw):
    base = draw(st.sampled_from(["default", "strict", "permissive"]))
    overrides = draw(st.fixed_dictionaries({}, optional={
        "memory": st.sampled_from(["32M", "1G"]), "pids": st.sampled_from(["9", "64"]),
        "net": st.sampled_from(["none", "loopback", "veth", "host"]),
        "binds": st.sampled_from([["/etc:/tmp/etc"], ["/usr:/usr:ro"], ["/tmp:/tmp:rw"]])}))
    profile = apply_overrides(load(base), **overrides)
    middle: list[ev.Event] = [ev.SyscallBatch(ts_ns=T0, syscalls=tuple(draw(st.lists(syscalls(), max_size=23))))]
    extras = draw(st.lists(st.sampled_from(["oom", "sigsys", "stderr", "denial", "sample", "fork"]), max_size=4))
    for kind in extras:
        if kind == "oom":
            middle.append(ev.OomKill(ts_ns=T0 + 5, pid=7, comm="app", pages=3))
        elif kind == "sigsys":
            middle.append(ev.FatalSignal(ts_ns=T0 + 6, pid=7, signal=31, code=1, comm="app"))
        elif kind == "stderr":
            middle.append(ev.Output(ts_ns=T0 + 7, stream="stderr", data=b"Cannot fork: Network is unreachable\n"))
        elif kind == "denial":
            middle.append(ev.SeccompDenial(ts_ns=T0 + 8, pid=7, tid=7, comm="app", syscall="unshare", nr=272,
                                           action="errno", errno="EPERM", args={"flags": "CLONE_NEWUSER"}))
        elif kind == "sample":
            middle.append(ev.ResourceSample(ts_ns=T0 + 9, memory_bytes=1, memory_peak_bytes=33 << 20,
                                            memory_limit_bytes=32 << 20, cpu_seconds=0.0, pids=9, pids_limit=9))
        else:
            middle.append(ev.ProcessForked(ts_ns=T0 + 10, pid=8, ppid=7, comm="app"))
    code, sig = draw(st.sampled_from([(1, None), (None, 9), (None, 31), (0, None), (127, None)]))
    exit_ev = ev.SandboxExited(ts_ns=T0 + 2 * 10**9, exit_code=code, signal=sig, duration_s=2.0,
                               exec_error=draw(st.sampled_from([None, "ENOENT", "EACCES"])))
    started = ev.SessionStarted(ts_ns=T0 - 1, command=(draw(st.sampled_from(["app", "/usr/bin/env", "/tmp/x"])),),
                                backend=draw(st.sampled_from(["native", "bwrap", "gvisor"])), profile_name=base,
                                profile=profile.to_dict())
    return profile, [started, ev.SandboxReleased(ts_ns=T0, pid=7), *middle, exit_ev]


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions())
def test_findings_are_ranked_in_the_vocabulary_and_every_fix_is_a_valid_profile(session):
    profile, events = session
    findings = diagnose(events, profile.to_dict())
    assert [f.score for f in findings] == sorted((f.score for f in findings), reverse=True)
    assert len({f.rule for f in findings}) == len(findings)
    for f in findings:
        assert f.layer in LAYERS
        assert f.summary and "\n" not in f.summary
        from_dict(apply_fix(profile.to_dict(), f), "fixed")  # raises ProfileError if the patch is bad
        if f.fix_options:
            flag, value = f.fix_options
            if flag == "--backend":
                assert value == "native"
                continue
            key = {"--allow": "allow", "--bind": "binds", "--memory": "memory", "--pids": "pids",
                   "--net": "net"}[flag]
            try:
                apply_overrides(profile, **{key: [value] if key in ("allow", "binds") else value})
            except Exception as exc:  # a bind onto a path the plan would refuse is still a valid option
                raise AssertionError(f"{f.fix_options} is not a valid option: {exc}") from None
