"""The bubblewrap backend on the real kernel: our profile through bwrap's flags, held at its block
fd so the probes count from the command's execve, seccomp denials seen by our probes."""

from __future__ import annotations

import signal

import pytest

from tests.backends.conftest import profile, run
from tests.conftest import wait_until
from workbench.core import events as ev
from workbench.core.errors import UsageError
from workbench.sandbox.bwrap import bwrap_args, check_reachable

pytestmark = pytest.mark.privileged


def test_probes_count_exactly_the_commands_syscalls(bin_dir):
    # bwrap runs as root here (no user namespace) so it can reach pytest's 0700 tmp directory.
    p = profile(user_ns=False, binds=[f"{bin_dir}:{bin_dir}:ro"])
    r = run([f"{bin_dir}/workload", "getppid", "23"], "bwrap", p, trace=True)
    assert r.status == 0
    # The gate opens at the command's execve: none of bwrap's own set-up is counted.
    assert r.report["syscalls"]["getppid"]["count"] == 23
    assert r.report["syscalls"]["execve"]["count"] == 1
    assert r.report["backend"] == "bwrap"


def test_seccomp_denials_from_the_libseccomp_program_are_seen_by_the_probes(bin_dir):
    p = profile(user_ns=False, binds=[f"{bin_dir}:{bin_dir}:ro"], deny=["mkdir"])
    r = run([f"{bin_dir}/workload", "mkdir", "/tmp", "23"], "bwrap", p, trace=True)
    assert r.status == 0  # the workload ignores the errors
    denials = r.report["seccomp_denials"]
    assert sum(d["count"] for d in denials) == 23
    assert {d["syscall"] for d in denials} == {"mkdir"}
    assert {d["errno"] for d in denials} == {"EPERM"}
    assert {d["args"]["pathname"] for d in denials} == {f"/tmp/d{i}" for i in range(23)}
    assert r.report["diagnosis"][0]["layer"] == "seccomp"


def test_default_profile_isolates_like_the_native_backend():
    r = run(["sh", "-c", "echo pid=$$; hostname; cat /proc/self/uid_map; touch /etc/wb-escape; echo rc=$?; "
             "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/self/cgroup; "
             "echo run=$(ls -A /run | wc -l)"], "bwrap")
    out = r.out()
    assert r.status == 0, r.out("stderr")
    assert "pid=1" in out  # --as-pid-1: the command is the namespace's first process
    assert "\nsandbox\n" in out
    assert out.split("\n")[2].split() == ["0", "65534", "1"]  # sandbox root is host nobody
    assert "rc=1" in out and "Read-only file system" in r.out("stderr")
    assert "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out
    assert "0::/app" in out  # its cgroup namespace is rooted at our sandbox cgroup
    assert "run=0" in out  # an empty /run: none of the host's service sockets
    assert all(ns["isolated"] for ns in r.report["namespaces"].values())


def test_exit_code_and_signal_from_outside(bin_dir):
    assert run(["sh", "-c", "exit 7"], "bwrap").status == 7

    def kill_when_up(session, events):
        wait_until(lambda: any(isinstance(e, ev.Output) and b"up" in e.data for e in events), what="probe up")
        session.kill(signal.SIGKILL)

    p = profile(user_ns=False, binds=[f"{bin_dir}:{bin_dir}:ro"])
    r = run([f"{bin_dir}/probe", "sleep"], "bwrap", p, on_ready=kill_when_up)
    assert r.status == 128 + 9
    assert r.report["signal"] == 9


def test_command_not_found_is_127_and_nothing_is_built():
    r = run(["no-such-command-wb"], "bwrap")
    assert r.status == 127
    assert r.report["exit_code"] == 127


def test_unreachable_bind_source_is_a_usage_error(tmp_path):
    # pytest's tmp directories sit under a 0700 parent: unprivileged bwrap could not open them.
    p = profile(binds=[f"{tmp_path}:/tmp/data:ro"])
    with pytest.raises(UsageError, match="not reachable by uid 65534"):
        check_reachable(p)
    r = run(["true"], "bwrap", p)
    assert r.status == 2


def test_profile_translation():
    p = profile(binds=["/usr/share:/tmp/share:ro"], deny=["mkdir"])
    args = bwrap_args(p, ["/bin/true"], {}, block_fd=11, status_fd=13, seccomp_fd=17)
    joined = " ".join(args)
    for flag in ("--unshare-user --uid 0 --gid 0", "--unshare-pid", "--unshare-net", "--unshare-ipc",
                 "--unshare-uts", "--unshare-cgroup", "--hostname sandbox", "--as-pid-1", "--ro-bind / /",
                 "--proc /proc", "--dev /dev", f"--size {p.tmp_size} --tmpfs /tmp",
                 "--ro-bind /usr/share /tmp/share", "--cap-drop ALL", "--block-fd 11",
                 "--json-status-fd 13", "--seccomp 17", "-- /bin/true"):
        assert flag in joined
    with pytest.raises(UsageError, match="veth"):
        bwrap_args(profile(net="veth"), ["/bin/true"], {}, block_fd=3, status_fd=4, seccomp_fd=None)


def test_closing_a_held_sandbox_that_never_ran_leaves_nothing():
    import os

    from workbench.sandbox.bwrap import BwrapSandbox
    from workbench.sandbox.plan import make_plan

    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        sb = BwrapSandbox(make_plan(profile(), ["sh", "-c", "echo never"], "null"), (null, null, null))
        sb.launch()
        child = sb.pid
        assert os.path.exists(f"/proc/{child}") and sb.cgroup_id is not None
        usage = sb.close()
        assert "memory_peak_bytes" in usage
        assert sb.close() == {}  # idempotent
        wait_until(lambda: not os.path.exists(f"/proc/{child}"), what="the held child to be gone")
        assert sb.status is not None and sb.status.exit_code != 0
    finally:
        os.close(null)


def test_what_bwrap_cannot_honour_is_said_on_the_bus():
    from workbench.core.bus import Bus
    from workbench.sandbox.bwrap import BwrapSandbox
    from workbench.sandbox.plan import make_plan

    bus, said = Bus(), []
    bus.subscribe(said.append, ev.Notice)
    sb = BwrapSandbox(make_plan(profile(), ["true"], "null"), (0, 1, 2))
    sb.attach_bus(bus)
    texts = [n.text for n in said]
    assert {n.source for n in said} == {"bwrap"}
    assert any("process.init" in t and "--as-pid-1" in t for t in texts)
    assert any("network.mode = 'none'" in t for t in texts)
    assert not any("no_new_privs" in t for t in texts)  # the default profile asks for it: nothing lost
    sb.close()
