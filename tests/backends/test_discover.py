"""`ps` and `attach` against sandboxes this test starts itself, of three kinds: bubblewrap and a
plain `unshare` started outside the workbench, and one of our own native sandboxes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading

import psutil
import pytest

from tests.conftest import wait_until
from workbench.cli.backends import Attachment
from workbench.cli.main import main
from workbench.core.bus import Bus
from workbench.discover import scan
from workbench.report import ReportBuilder
from workbench.sandbox import profile as prof
from workbench.session import Session, SessionOptions

pytestmark = pytest.mark.privileged
BWRAP = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-uts", "--die-with-parent", "--ro-bind", "/", "/",
         "--proc", "/proc", "--dev", "/dev"]


def _waiting(cmd: list[str]) -> subprocess.Popen:
    """A process that waits for lines on its stdin (so the test decides when it ends)."""
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _end(proc: subprocess.Popen) -> int:
    try:
        proc.stdin.write(b"end\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def test_ps_finds_a_bwrap_an_unshare_and_a_native_sandbox(capsys):
    bw = _waiting(BWRAP + ["--", "sh", "-c", "read x"])
    un = _waiting(["unshare", "--pid", "--mount", "--fork", "sh", "-c", "read x"])
    session = Session(SessionOptions(profile=prof.load("default"), command=["sh", "-c", "read x"], trace=False))
    try:
        session.start()
        ours = session.sandbox.cgroup.name

        def three():
            found = scan()
            by = {"bwrap": [s for s in found if bw.pid in s.pids and len(s.pids) >= 3],
                  "unshare": [s for s in found if un.pid in s.pids and len(s.pids) == 2],
                  "native": [s for s in found if ours in s.cgroup and "seccomp" in s.layers]}
            return by if all(by.values()) else None

        by = wait_until(three, what="three sandboxes in ps")
        bws, uns, nat = by["bwrap"][0], by["unshare"][0], by["native"][0]
        assert bws.kind == "bubblewrap" and bws.root == bw.pid  # the monitor heads its sandbox
        assert {"pid-ns", "net-ns", "uts-ns", "mnt-ns", "no_new_privs"} <= set(bws.layers)
        assert uns.kind == "unshare" and uns.root == un.pid
        assert {"pid-ns", "mnt-ns"} <= set(uns.layers) and "net-ns" not in uns.layers
        assert nat.kind == "workbench"
        assert {"user-ns", "pid-ns", "seccomp", "cgroup"} <= set(nat.layers)

        assert main(["ps", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert {s["root"] for s in listed} >= {bws.root, uns.root, nat.root}
    finally:
        session.close_stdin()
        session.close()
        assert _end(bw) == 0 and _end(un) == 0


def test_attach_to_a_bwrap_sandbox_started_outside_is_read_only_and_counts_exactly(bin_dir):
    bw = _waiting(BWRAP + ["--bind", str(bin_dir), str(bin_dir), "--", "sh", "-c",
                           f"read a; {bin_dir}/workload getppid 23; read b"])
    att = None
    try:
        sh = wait_until(lambda: next((c for c in psutil.Process(bw.pid).children(recursive=True)
                                      if c.name() == "sh"), None), what="the sandboxed shell")
        before = (open(f"/proc/{sh.pid}/cgroup").read(), os.readlink(f"/proc/{sh.pid}/ns/pid"))
        bus, builder = Bus(), ReportBuilder()
        bus.subscribe(builder)
        att = Attachment(str(sh.pid), bus)
        assert att.target.cgroup_id is None  # bwrap made no cgroup: follow the pid tree
        att.start()
        bw.stdin.write(b"go\n")
        bw.stdin.flush()

        def counted():
            stats = {s.name: s.count for s in att.tracer.stats().stats}
            return stats.get("getppid") == 23 and stats.get("exit_group", 0) >= 1

        wait_until(counted, what="the workload's 23 getppid calls")
        att.stop()
        report = builder.build()
        assert report["syscalls"]["getppid"]["count"] == 23
        assert any(p["argv"][:1] == [f"{bin_dir}/workload"] for p in report["processes"])
        # Read-only: the target is where it was, still running, and ends on its own terms.
        assert (open(f"/proc/{sh.pid}/cgroup").read(), os.readlink(f"/proc/{sh.pid}/ns/pid")) == before
        assert att.alive()
    finally:
        if att is not None:
            att.stop()
        assert _end(bw) == 0


def test_attach_to_a_missing_target_is_one_line(capsys):
    assert main(["attach", "999999999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("workbench: no process 999999999") and err.count("\n") == 1


def test_compare_puts_the_same_command_under_bwrap_and_gvisor(capsys):
    status = main(["compare", "--backends", "bwrap,gvisor", "--json", "--", "sh", "-c", "exit 3"])
    rows = json.loads(capsys.readouterr().out)
    assert status == 0  # same exit everywhere
    assert [r["backend"] for r in rows] == ["bwrap", "gvisor"]
    assert [r["exit"] for r in rows] == [3, 3]
    bwrap, gvisor = rows
    assert bwrap["app_syscalls"] == bwrap["host_syscalls"] > 0  # bwrap: the app's calls are the host's
    assert gvisor["app_syscalls"] > 0  # gVisor: the Sentry answers them ...
    assert gvisor["host_syscalls"] > gvisor["app_syscalls"]  # ... and makes many more of its own
    assert "pid" in bwrap["namespaces"] and bwrap["memory_peak_bytes"] > 0
    assert bwrap["start_ms"] is not None and gvisor["start_ms"] is not None  # release to first app call


def test_attach_command_writes_a_report_and_stops_when_the_target_ends(tmp_path, bin_dir, capsys):
    # An unshare sandbox that runs the workload 3 times, 23 getppid each, once we are attached.
    un = _waiting(["unshare", "--pid", "--mount", "--fork", "sh", "-c",
                   f"read a; for i in 1 2 3; do {bin_dir}/workload getppid 23; done"])
    try:
        sh = wait_until(lambda: next((c for c in psutil.Process(un.pid).children(recursive=True)
                                      if c.name() == "sh"), None), what="the sandboxed shell")
        out = tmp_path / "attach.json"

        seen: list[str] = []

        def go_once_attached():
            # The first "syscalls/s" line is printed once the probes are attached and polling.
            wait_until(lambda: seen.append(capsys.readouterr().err) or "syscalls/s" in "".join(seen),
                       timeout=60, what="the attach to be live")
            un.stdin.write(b"go\n")
            un.stdin.flush()

        t = threading.Thread(target=go_once_attached, daemon=True)
        t.start()
        status = main(["attach", str(sh.pid), "--seconds", "60", "--report", str(out)])
        t.join()
        assert status == 0
        report = json.loads(out.read_text())
        assert report["syscalls"]["getppid"]["count"] == 69
        assert un.wait(timeout=10) == 0
    finally:
        _end(un)


def test_attach_by_cgroup_follows_every_process_in_it(bin_dir, tmp_path):
    # One of our own native sandboxes, attached by its cgroup path as /proc/PID/cgroup shows it.
    shared = tmp_path / "bin"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)  # the sandbox's root is host nobody: it must be able to enter the directory
    shutil.copy(bin_dir / "workload", shared / "workload")
    p = prof.apply_overrides(prof.load("default"), binds=[f"{shared}:/tmp/bin:ro"])
    cmd = ["sh", "-c", "read a; /tmp/bin/workload getppid 23 & /tmp/bin/workload getppid 23; wait; read b"]
    session = Session(SessionOptions(profile=p, command=cmd, trace=False))
    att = None
    try:
        session.start()
        path = session.sandbox.cgroup_v2_path
        spec = path[path.index("/workbench"):] if "/workbench" in path else path
        bus, builder = Bus(), ReportBuilder()
        bus.subscribe(builder)
        att = Attachment(spec, bus)
        assert att.target.cgroup_id == session.sandbox.cgroup_id
        att.start()
        session.write_stdin(b"go\n")
        wait_until(lambda: {s.name: s.count for s in att.tracer.stats().stats}.get("getppid") == 46,
                   what="two workloads' 46 getppid calls")
        att.stop()
        assert builder.build()["syscalls"]["getppid"]["count"] == 46
    finally:
        if att is not None:
            att.stop()
        session.write_stdin(b"end\n")
        session.close_stdin()
        assert session.wait(timeout=10) is not None
        session.close()
