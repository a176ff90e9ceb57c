"""Views that need no eBPF: seccomp denials from the kernel log, namespace membership from procfs."""

from __future__ import annotations

import os

import pytest

from workbench.core.events import NamespaceMembership, SeccompDenial
from workbench.tracing import audit, namespaces

pytestmark = pytest.mark.privileged


def test_audit_log_gives_the_7_mkdir_denials_of_our_pid_only(sandboxes, recorder, workload, tmp_path, wait_for):
    held = sandboxes.launch([workload, "mkdir", str(tmp_path), "7"], flags=("--errno-mkdir",))
    other = sandboxes.launch([workload, "mkdir", str(tmp_path), "5"], flags=("--errno-mkdir",), cgroup=False)
    reader = audit.AuditReader(recorder.bus, lambda: {held.pid},
                               rule_for=lambda name: f"deny {name}")
    reader.start()
    try:
        other.release()
        held.release()
        assert held.wait() == 0 and other.wait() == 0
        wait_for(lambda: reader.count >= 7, what="7 audit records")
    finally:
        reader.stop()
    denials = recorder.of(SeccompDenial)
    assert len(denials) == 7
    # The record names the action, not the errno value (the kernel logs the action bits only).
    assert {(d.pid, d.syscall, d.action, d.errno, d.source, d.rule) for d in denials} == {
        (held.pid, "mkdir", "errno", None, "audit", "deny mkdir")}


def test_audit_record_parsing_of_a_kill():
    line = ('audit: type=1326 audit(1733333333.123:45): auid=4294967295 uid=0 gid=0 ses=4294967295 '
            'subj=unconfined pid=4242 comm="python3" exe="/usr/bin/python3.11" sig=31 arch=c000003e '
            'syscall=84 compat=0 ip=0x7f0000000000 code=0x80000000')
    d = audit.parse(line, ts_ns=17)
    assert (d.pid, d.comm, d.syscall, d.nr, d.action, d.errno, d.ts_ns) == (4242, "python3", "rmdir", 84, "kill", None, 17)
    assert audit.parse("audit: type=1400 apparmor=DENIED") is None


def test_namespace_membership_of_an_isolated_process(recorder, wait_for):
    import subprocess

    # unshare(1) from util-linux: new uts, ipc and net namespaces, then wait on stdin.
    proc = subprocess.Popen(["unshare", "--uts", "--ipc", "--net", "cat"], stdin=subprocess.PIPE)
    try:
        def isolated_net():
            m = namespaces.membership(proc.pid)
            return m if m and m.namespaces["net"]["isolated"] and m.namespaces["uts"]["isolated"] else None

        m = wait_for(isolated_net, what="cat inside its namespaces")
        assert {k for k, v in m.namespaces.items() if v["isolated"]} == {"uts", "ipc", "net"}
        assert m.namespaces["net"]["inode"] == os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        assert m.seccomp_mode == 0 and m.cap_eff != 0
        sampler = namespaces.MembershipSampler(recorder.bus, lambda: [proc.pid, os.getpid()])
        assert [x.pid for x in sampler.sample()] == sorted([proc.pid, os.getpid()])
        assert sampler.sample() == []  # nothing changed: nothing published again
        mine = next(e for e in recorder.of(NamespaceMembership) if e.pid == os.getpid())
        assert not any(v["isolated"] for v in mine.namespaces.values())
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_per_process_usage_of_live_pids_only():
    import subprocess

    from workbench.tracing import procsampler

    proc = subprocess.Popen(["sleep", "30"])
    try:
        [usage] = procsampler.sample([proc.pid])
        assert (usage.pid, usage.comm, usage.threads) == (proc.pid, "sleep", 1)
        assert usage.rss_bytes > 0 and usage.cpu_seconds >= 0
    finally:
        proc.kill()
        proc.wait()
    assert procsampler.sample([proc.pid]) == []  # gone: skipped, not an error
