"""Unit tests of the rules engine over constructed event sequences (no kernel involved: these are
pure unit tests; tests/scenarios/ proves the same rules against real failing sandboxes).

Each test also feeds the top finding's fix back through the real profile validator, so a fix that
names a bad key or value fails here.
"""

from __future__ import annotations

import os
import signal

import pytest

from workbench.core import events as ev
from workbench.diagnose import apply_fix, diagnose
from workbench.sandbox.profile import apply_overrides, from_dict, load

T0 = 5_000_000_000
SEC = 1_000_000_000


def sc(name, ret=-1, errno=None, t=0.1, pid=7, denied=False, args=(0, 0, 0, 0, 0, 0), source="host", **decoded):
    return ev.Syscall(ts_ns=T0 + int(t * SEC), pid=pid, tid=pid, comm="app", nr=0, name=name,
                      args=tuple(args), ret=ret, errno=errno, duration_ns=0 if denied else 900,
                      decoded=decoded, denied=denied, source=source)


def session(profile, *middle, exit_code=1, sig=None, exec_error=None, command=("app",), backend="native"):
    return [ev.SessionStarted(ts_ns=T0 - 10, command=command, backend=backend, profile_name="t",
                              profile=profile.to_dict()),
            ev.SandboxReleased(ts_ns=T0, pid=7),
            *middle,
            ev.SandboxExited(ts_ns=T0 + SEC, exit_code=exit_code, signal=sig, duration_s=1.0,
                             exec_error=exec_error)]


def top(events, profile):
    findings = diagnose(events, profile.to_dict())
    assert findings, "no finding"
    fixed = from_dict(apply_fix(profile.to_dict(), findings[0]), "fixed")
    return findings[0], fixed


def test_seccomp_errno_denial_names_the_syscall_and_allows_it():
    p = apply_overrides(load("default"), deny=["mkdir"])
    events = session(p, ev.SyscallBatch(ts_ns=T0 + 1, syscalls=(
        sc("openat", errno="ENOENT", t=0.01, pathname="/nonexistent/lib.so"),
        sc("mkdir", errno="EPERM", t=0.5, denied=True, pathname="/tmp/a"))))
    f, fixed = top(events, p)
    assert f.layer == "seccomp" and "mkdir" in f.summary
    assert f.fix_options == ("--allow", "mkdir")
    assert "mkdir" not in fixed.seccomp.syscalls and "mount" in fixed.seccomp.syscalls
    assert any('pathname="/tmp/a"' in line and "pid 7" in line and "t+0.500s" in line for line in f.evidence)


def test_seccomp_kill_with_a_denial_event_outranks_an_earlier_harmless_error():
    p = load("strict")
    events = session(p,
                     sc("access", errno="EACCES", t=0.2, pathname="/etc/shadow"),
                     ev.SeccompDenial(ts_ns=T0 + int(0.9 * SEC), pid=7, tid=7, comm="app", syscall="rmdir", nr=84,
                                      action="kill", errno=None, args={"pathname": "/tmp/d"},
                                      rule="seccomp.syscalls (allow-list) does not list rmdir: kill"),
                     exit_code=None, sig=signal.SIGSYS)
    f, fixed = top(events, p)
    assert f.layer == "seccomp" and "killed" in f.summary
    assert "rmdir" in fixed.seccomp.syscalls and f.score >= 3.0


def test_clone3_enosys_from_deny_clone_newuser_is_not_a_finding():
    p = load("default")
    events = session(p, sc("clone3", errno="ENOSYS", denied=True), exit_code=0)
    assert diagnose(events, p.to_dict()) == []


def test_host_path_missing_under_the_fresh_tmp(tmp_path):
    data = tmp_path / "input.txt"
    data.write_text("23\n")
    p = load("default")
    events = session(p, sc("openat", errno="ENOENT", t=0.3, pathname=str(data)))
    f, fixed = top(events, p)
    assert f.layer == "mount" and str(data) in f.summary and "/tmp" in f.summary
    assert f.fix_options == ("--bind", f"{tmp_path}:{tmp_path}:ro")
    assert [(b.src, b.readonly) for b in fixed.binds] == [(str(tmp_path), True)]


def test_a_path_missing_everywhere_is_not_a_mount_finding(tmp_path):
    p = load("default")
    events = session(p, sc("openat", errno="ENOENT", pathname=str(tmp_path / "never-created")))
    assert [f for f in diagnose(events, p.to_dict()) if f.layer == "mount"] == []


def test_write_into_a_read_only_bind_makes_the_bind_writable(tmp_path):
    p = apply_overrides(load("default"), binds=[f"{tmp_path}:/mnt:ro"])
    events = session(p, sc("openat", errno="EROFS", args=(0, 0, os.O_WRONLY | os.O_CREAT, 0, 0, 0),
                           pathname="/mnt/out.txt"))
    f, fixed = top(events, p)
    assert f.layer == "readonly-fs" and "read-only" in f.summary
    assert f.fix_options == ("--bind", f"{tmp_path}:/mnt:rw")
    assert [(b.dst, b.readonly) for b in fixed.binds] == [("/mnt", False)]


def test_write_to_the_read_only_root():
    p = load("default")
    f, _ = top(session(p, sc("mkdir", errno="EROFS", pathname="/newdir")), p)
    assert f.layer == "readonly-fs" and "root filesystem is read-only" in f.summary


def test_missing_capability_for_raw_sockets_and_low_ports():
    p = load("default")
    raw = sc("socket", errno="EPERM", t=0.2, args=(2, 3, 1, 0, 0, 0))
    low = sc("bind", errno="EACCES", t=0.8, addr="0.0.0.0:80")
    findings = diagnose(session(p, raw, low), p.to_dict())
    assert [(f.layer, f.rule) for f in findings[:2]] == [("capabilities", "missing-capability:net_bind_service"),
                                                         ("capabilities", "missing-capability:net_raw")]
    fixed = from_dict(apply_fix(p.to_dict(), findings[0]))
    assert fixed.cap_keep == ["net_bind_service"]


def test_seccomp_denied_eperm_is_not_blamed_on_capabilities():
    p = load("default")
    findings = diagnose(session(p, sc("mount", errno="EPERM", denied=True, source="tmpfs")), p.to_dict())
    assert [f.layer for f in findings] == ["seccomp"]


def test_chown_to_an_unmapped_uid():
    p = load("default")
    f, fixed = top(session(p, sc("fchownat", errno="EINVAL", args=(0xFFFFFF9C, 0, 1000, 0xFFFFFFFF, 0, 0),
                                 pathname="/tmp/f")), p)
    assert f.layer == "user-namespace" and "uid 1000" in f.summary
    assert fixed.uid == 1000


def test_eacces_on_a_bound_directory_owned_by_an_unmapped_host_user(tmp_path):
    os.chmod(tmp_path, 0o755)  # root-owned, not writable by others
    p = apply_overrides(load("default"), binds=[f"{tmp_path}:/data:rw"])
    f, fixed = top(session(p, sc("openat", errno="EACCES", args=(0, 0, os.O_WRONLY | os.O_CREAT, 0, 0, 0),
                                 pathname="/data/out")), p)
    assert f.layer == "user-namespace" and "host uid 0" in f.summary
    assert (fixed.host_uid, fixed.host_gid) == (0, 0)


def test_oom_kill():
    p = apply_overrides(load("default"), memory="32M")
    events = session(p, ev.ResourceSample(ts_ns=T0 + SEC // 2, memory_bytes=33 << 20, memory_peak_bytes=32 << 20,
                                          memory_limit_bytes=32 << 20, cpu_seconds=0.1, pids=1, pids_limit=512,
                                          oom_kills=1),
                     ev.OomKill(ts_ns=T0 + SEC - 5, pid=7, comm="python3", pages=23_001),
                     exit_code=None, sig=signal.SIGKILL)
    f, fixed = top(events, p)
    assert f.layer == "cgroup-memory" and f.fix_options == ("--memory", "288M")
    assert fixed.memory == 288 << 20


def test_fork_at_the_pids_limit():
    p = apply_overrides(load("default"), pids="9")
    calls = tuple(sc("clone", errno="EAGAIN", t=0.5 + i / 100) for i in range(3))
    f, fixed = top(session(p, ev.SyscallBatch(ts_ns=T0, syscalls=calls)), p)
    assert f.layer == "cgroup-pids" and "9" in f.summary
    assert fixed.pids == 9 * 2 + 3


def test_network_unreachable_without_a_network():
    p = load("default")
    f, fixed = top(session(p, sc("connect", errno="ENETUNREACH", addr="10.23.0.1:8080")), p)
    assert f.layer == "network" and f.fix_options == ("--net", "veth") and fixed.net == "veth"


def test_refused_on_loopback_and_name_resolution():
    p = apply_overrides(load("default"), net="loopback")
    refused = diagnose(session(p, sc("connect", errno="ECONNREFUSED", addr="127.0.0.1:8080")), p.to_dict())[0]
    assert refused.layer == "network" and "own loopback" in refused.summary
    dns = diagnose(session(p, ev.Output(ts_ns=T0 + 5, stream="stderr",
                                        data=b"curl: (6) Could not resolve host: example.org\n")), p.to_dict())[0]
    assert dns.layer == "network" and "name resolution" in dns.summary


def test_exec_of_a_binary_that_only_the_host_has(tmp_path):
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    p = load("default")
    events = session(p, sc("execve", errno="ENOENT", filename=str(tool)),
                     exit_code=127, exec_error="ENOENT", command=(str(tool),))
    f, fixed = top(events, p)
    assert f.layer == "exec" and "exists on the host" in f.summary
    assert [b.src for b in fixed.binds] == [str(tmp_path)]


def test_exec_of_a_script_whose_interpreter_is_missing(tmp_path):
    interp_dir = tmp_path / "interp"
    interp_dir.mkdir()
    (interp_dir / "run").write_text("#!/bin/sh\nexec /bin/sh \"$@\"\n")
    (interp_dir / "run").chmod(0o755)
    app = tmp_path / "app"
    app.mkdir()
    (app / "main").write_text(f"#!{interp_dir}/run\necho hi\n")
    (app / "main").chmod(0o755)
    p = apply_overrides(load("default"), binds=[f"{app}:/app"])
    events = session(p, sc("execve", errno="ENOENT", filename="/app/main"),
                     exit_code=127, exec_error="ENOENT", command=("/app/main",))
    f, fixed = top(events, p)
    assert f.layer == "exec" and "interpreter" in f.summary and str(interp_dir / "run") in f.summary
    assert str(interp_dir) in [b.src for b in fixed.binds]


def test_gvisor_unimplemented_syscall():
    p = load("default")
    sentry_trap = sc("read", errno="EPERM", denied=True, t=0.2)  # the host probes see the Sentry's platform
    harmless = sc("rseq", errno="ENOSYS", source="gvisor", t=0.05, gvisor_harmless=True)
    missing = sc("io_uring_setup", errno="ENOSYS", source="gvisor", t=0.3)
    notice = ev.Notice("warning", "gVisor: unsupported syscall io_uring_setup(0x1, 0x0): the Sentry answered ENOSYS",
                       "gvisor", ts_ns=T0 + int(0.3 * SEC))
    findings = diagnose(session(p, ev.SyscallBatch(ts_ns=T0, syscalls=(sentry_trap, harmless, missing)), notice,
                                backend="gvisor"), p.to_dict())
    assert [(f.layer, f.rule) for f in findings] == [("gvisor", "gvisor-unsupported:io_uring_setup")]
    assert findings[0].fix_options == ("--backend", "native") and len(findings[0].evidence) == 2


def test_a_diagnoser_that_missed_session_started_still_learns_it_is_gvisor():
    p = load("default")
    events = session(p, sc("read", errno="EPERM", denied=True, t=0.1),
                     sc("io_uring_setup", errno="ENOSYS", source="gvisor", t=0.3))[1:]  # no SessionStarted
    findings = diagnose(events, p.to_dict())
    assert [f.layer for f in findings] == ["gvisor"]


def test_a_successful_run_ranks_findings_lower():
    p = apply_overrides(load("default"), deny=["mkdir"])
    denied = sc("mkdir", errno="EPERM", denied=True, pathname="/tmp/a")
    failed = diagnose(session(p, denied, exit_code=1), p.to_dict())[0]
    ok = diagnose(session(p, denied, exit_code=0), p.to_dict())[0]
    assert ok.score == pytest.approx(failed.score - 1.0)


def test_relative_paths_resolve_against_the_traced_working_directory(tmp_path):
    p = load("default")
    chdir = sc("chdir", ret=0, t=0.1, path="/etc")
    fork = ev.ProcessForked(ts_ns=T0 + int(0.2 * SEC), pid=8, ppid=7, comm="sh")
    write = sc("openat", errno="EROFS", t=0.3, pid=8, args=(-100 & 0xFFFFFFFF, 0, os.O_WRONLY | os.O_CREAT, 0, 0, 0),
               pathname="out")
    f, _ = top(session(p, ev.SyscallBatch(ts_ns=T0, syscalls=(chdir,)), fork, write), p)
    assert "/etc/out" in f.summary and f.fix_options == ()  # never the host's /etc made writable


def test_no_bind_is_proposed_where_a_rootfs_has_no_mount_point(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "tmp").mkdir(parents=True)
    p = apply_overrides(load("default"), rootfs=str(rootfs))
    f, _ = top(session(p, sc("openat", errno="ENOENT", pathname="/etc/hostname")), p)
    assert f.layer == "mount" and "rootfs" in f.summary
    assert f.fix_options == () and f.fix_profile == {} and "copy it into the rootfs" in f.fix


def test_a_sigsys_exit_without_probes_still_names_seccomp():
    p = apply_overrides(load("default"), deny=["rmdir"])
    p.seccomp.action = "kill"
    findings = diagnose(session(p, exit_code=None, sig=signal.SIGSYS), p.to_dict())
    assert [(x.layer, x.rule) for x in findings] == [("seccomp", "seccomp-denial:(unknown syscall)")]
    assert "tracing" in findings[0].fix and findings[0].fix_options == ()


def test_without_probes_the_error_message_is_a_weak_hint():
    p = load("default")
    out = ev.Output(ts_ns=T0 + 5, stream="stderr", data=b"touch: cannot touch '/etc/x': Read-only file system\n")
    findings = diagnose(session(p, out), p.to_dict())
    assert [(f.layer, f.rule) for f in findings] == [("readonly-fs", "stderr-hint:read-only file system")]
    assert "no probes ran" in findings[0].summary and findings[0].fix_options == ()
    with_probes = diagnose(session(p, out, sc("getpid", ret=7)), p.to_dict())
    assert with_probes == []  # probes ran and saw nothing to blame: the message alone is not enough


def test_a_unix_socket_in_the_hosts_tmp_is_a_mount_finding(tmp_path):
    import socket as socket_mod

    path = tmp_path / "app.sock"
    server = socket_mod.socket(socket_mod.AF_UNIX)
    server.bind(str(path))
    try:
        p = load("default")
        f, fixed = top(session(p, sc("connect", errno="ENOENT", addr=str(path), family="AF_UNIX")), p)
        assert f.layer == "mount" and str(path) in f.summary
        assert [b.src for b in fixed.binds] == [str(tmp_path)]
    finally:
        server.close()
