"""Faults: the workbench killed with SIGKILL mid-run (with and without its launcher), the app killed
by every fatal signal, probes that cannot compile, tracefs missing, a full disk while recording.
Each run must end in a clear state: nothing left on the host, the status of the CLI contract,
a one-line reason where something was switched off."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from workbench.core import events as ev
from workbench.tracing import loader

from . import hostkernel as hk
from .conftest import REPO, run_sandbox

pytestmark = pytest.mark.privileged

WORKBENCH = str(REPO / ".venv" / "bin" / "workbench")
# Every signal whose default action ends the process (signal(7)), realtime ones apart.
FATAL = [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGILL, signal.SIGTRAP, signal.SIGABRT,
         signal.SIGBUS, signal.SIGFPE, signal.SIGKILL, signal.SIGUSR1, signal.SIGSEGV, signal.SIGUSR2,
         signal.SIGPIPE, signal.SIGALRM, signal.SIGTERM, signal.SIGSTKFLT, signal.SIGXCPU, signal.SIGXFSZ,
         signal.SIGVTALRM, signal.SIGPROF, signal.SIGIO, signal.SIGPWR, signal.SIGSYS]
REALTIME = list(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))


def wait_until(predicate, timeout: float, what: str):
    from tests.conftest import wait_until as wait

    return wait(predicate, timeout=timeout, what=what)


def start_workbench(tmp_path: Path, *options: str) -> subprocess.Popen:
    log = open(tmp_path / "workbench.log", "wb")
    return subprocess.Popen([WORKBENCH, "run", *options, "--", "sleep", "100"], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)


def launcher_of(owner: int) -> int:
    """The workbench's own child: the sandbox's processes run the same module further down."""
    for pid in hk.children(owner):
        try:
            if b"workbench.sandbox.zygote" in open(f"/proc/{pid}/cmdline", "rb").read():
                return pid
        except OSError:
            pass
    raise AssertionError(f"no launcher under workbench {owner}")


def copiers_of(owner: int) -> set[int]:
    """The tracer's stream copier processes (tracing/copier.py) under the workbench."""
    found = set()
    for pid in hk.children(owner):
        try:
            if b"workbench.tracing.copier" in open(f"/proc/{pid}/cmdline", "rb").read():
                found.add(pid)
        except OSError:
            pass
    return found


def running_sleep(owner: int) -> set[int]:
    """The sandbox's command once it has exec'd `sleep 100` in its app/ cgroup."""
    found = set()
    for pid in hk.app_pids(owner):
        try:
            if open(f"/proc/{pid}/cmdline", "rb").read().startswith(b"sleep\0"):
                found.add(pid)
        except OSError:
            pass
    return found


def test_sigkilled_workbench_takes_its_sandbox_and_probes_with_it(tmp_path):
    wb = start_workbench(tmp_path)
    try:
        wait_until(lambda: running_sleep(wb.pid), 60, "the traced sandbox to run sleep")
        progs = hk.bpf_prog_ids(wb.pid)
        launcher = launcher_of(wb.pid)
        copiers = copiers_of(wb.pid)
        sandbox = hk.cgroup_pids(wb.pid)
        dirs = hk.cgroup_dirs(wb.pid)
    finally:
        wb.kill()
        assert wb.wait() == -signal.SIGKILL
    # Probes were attached (two raw tracepoints and the ordinary ones), one stream copier ran; the
    # sandbox had its three processes (the launcher's child, init, the command) in five cgroup
    # directories.
    assert len(progs) >= 3 and len(copiers) == 1 and len(sandbox) == 3 and len(dirs) == 5
    wait_until(lambda: not any(hk.alive(p) for p in sandbox | copiers | {launcher}), 3,
               "the sandbox's processes, the stream copier and the launcher to go")
    wait_until(lambda: hk.cgroup_dirs(wb.pid) == [], 3, "the launcher to remove the sandbox's cgroups")
    wait_until(lambda: not any(hk.bpf_prog_exists(i) for i in progs), 3, "the BPF programs to be freed")


def kill_workbench_and_launcher(tmp_path: Path) -> tuple[subprocess.Popen, set[int], list[str]]:
    """A sandbox running `sleep 100` whose workbench and launcher were both SIGKILLed. The workbench
    is left a zombie (not reaped): while its pid exists, no sweep on this host touches its sandbox."""
    wb = start_workbench(tmp_path, "--no-trace")
    try:
        wait_until(lambda: running_sleep(wb.pid), 30, "the sandbox to run sleep")
        sandbox = hk.cgroup_pids(wb.pid)
        dirs = hk.cgroup_dirs(wb.pid)
        # Launcher first, so nobody is left to clean up on the socket's EOF.
        subprocess.run(["kill", "-KILL", str(launcher_of(wb.pid))], check=True)
    finally:
        wb.kill()
    assert len(sandbox) == 3 and len(dirs) == 5
    return wb, sandbox, dirs


def test_a_sandbox_dies_with_its_killed_launcher(tmp_path):
    wb, sandbox, _dirs = kill_workbench_and_launcher(tmp_path)
    try:
        wait_until(lambda: not any(hk.alive(p) for p in sandbox), 3, "the sandbox's processes to die")
    finally:
        wb.wait()
        subprocess.run([WORKBENCH, "sweep"], capture_output=True, timeout=60)


@pytest.mark.parametrize("cleaner", ["sweep", "next-run"])
def test_leftovers_of_a_workbench_killed_with_its_launcher_are_swept(tmp_path, cleaner):
    wb, sandbox, dirs = kill_workbench_and_launcher(tmp_path)
    assert hk.cgroup_dirs(wb.pid) == dirs  # nobody of that run is left to remove them
    wb.wait()
    # (Once its pid is gone, a workbench started meanwhile by someone else on this host may sweep
    # them first: then there is nothing left for this one to do.)
    leftovers = hk.cgroup_dirs(wb.pid)
    if cleaner == "sweep":
        done = subprocess.run([WORKBENCH, "sweep"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        if leftovers:
            assert [ln for ln in done.stdout.splitlines() if ln.startswith(f"cgroup workbench-{wb.pid}-")]
    else:
        done = subprocess.run([WORKBENCH, "run", "--no-trace", "--", "true"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
    assert hk.cgroup_dirs(wb.pid) == []
    wait_until(lambda: not any(hk.alive(p) for p in sandbox), 3, "the swept sandbox's processes to die")


def host_veths(owner: int) -> list[str]:
    """Host ends of the veth pairs of `owner`'s sandboxes (named wb<owner>x<n>)."""
    return [n for n in os.listdir("/sys/class/net") if n.startswith(f"wb{owner}x")]


@pytest.mark.parametrize("launcher_too", [False, True], ids=["workbench", "workbench-and-launcher"])
def test_a_killed_workbench_leaves_no_veth(tmp_path, launcher_too):
    wb = start_workbench(tmp_path, "--no-trace", "--net", "veth")
    try:
        wait_until(lambda: running_sleep(wb.pid), 30, "the veth sandbox to run sleep")
        veths = host_veths(wb.pid)
        if launcher_too:
            subprocess.run(["kill", "-KILL", str(launcher_of(wb.pid))], check=True)
    finally:
        wb.kill()
        wb.wait()
    assert len(veths) == 1
    # Killed alone, the launcher deletes it; killed with it, the sandbox dies, its network
    # namespace goes, and the kernel deletes both ends of the pair.
    wait_until(lambda: host_veths(wb.pid) == [], 5, "the host end of the veth to go")
    subprocess.run([WORKBENCH, "sweep"], capture_output=True, timeout=60)


@pytest.mark.parametrize("sig", [pytest.param(s, id=s.name) for s in FATAL])
def test_the_app_killed_by_a_fatal_signal_reports_it(sig):
    r = run_sandbox(["sh", "-c", f"kill -{int(sig)} $$"])
    assert r.status == 128 + sig
    assert (r.report["exit_code"], r.report["signal"], r.report["signal_name"]) == (None, sig, sig.name)


def test_the_app_killed_by_each_realtime_signal_reports_it():
    statuses = {}
    for sig in REALTIME:
        r = run_sandbox(["sh", "-c", f"kill -{sig} $$"])
        statuses[sig] = (r.status, r.report["signal"])
    assert statuses == {sig: (128 + sig, sig) for sig in REALTIME}


def test_the_cli_reports_a_realtime_signal_without_a_traceback():
    done = subprocess.run([WORKBENCH, "run", "--no-trace", "--", "sh", "-c", "kill -37 $$"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stderr
    assert done.returncode == 128 + 37


def _probes_off(r, words: str) -> None:
    assert r.status == 0 and r.stdout == "still runs\n"
    notices = [e.text for e in r.of(ev.Notice) if e.level == "warning" and e.source == "probes"]
    assert len(notices) == 1 and words in notices[0]
    # The eBPF probes are off; the kernel's audit log still shows seccomp denials.
    assert {name: p["state"] for name, p in r.report["probes"].items()} == {
        "syscalls": "off", "seccomp": "off", "processes": "off", "oom": "off", "seccomp-audit": "attached"}
    assert all(words in p["reason"] for name, p in r.report["probes"].items() if name != "seccomp-audit")


def test_a_probe_that_does_not_compile_turns_tracing_off_not_the_run(tmp_path, monkeypatch, capfd):
    broken = tmp_path / "probes"
    shutil.copytree(loader.PROBES_DIR, broken)
    with open(broken / "syscalls.c", "a") as f:
        f.write("\nthis is not C;\n")
    loader.release_cached()  # no loaded copy to fall back on: it must really compile
    monkeypatch.setattr(loader, "PROBES_DIR", broken)
    r = run_sandbox(["echo", "still runs"], trace=True)
    _probes_off(r, "the probes did not load")
    assert "error:" in r.report["probes"]["syscalls"]["reason"]  # clang's first error is named
    assert capfd.readouterr().err == ""  # bcc and clang said nothing on our terminal


def test_tracefs_missing_turns_tracing_off_with_the_fix(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(loader, "TRACEFS", tmp_path / "no-tracefs")
    r = run_sandbox(["echo", "still runs"], trace=True)
    _probes_off(r, "tracefs is not mounted")
    assert "mount -t tracefs" in r.report["probes"]["syscalls"]["reason"]
    assert capfd.readouterr().err == ""


@pytest.fixture
def small_disk(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(small)], check=True)
    try:
        yield small
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_full_disk_while_recording_stops_the_recording_not_the_run(small_disk):
    from workbench.record import open_recording

    path = small_disk / "run.sqlite"
    # 40001 one-byte writes: far more syscalls than 192 KiB of recording can hold.
    r = run_sandbox(["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=40001", "status=none"], trace=True,
                    record=str(path))
    assert r.status == 0
    stopped = [e.text for e in r.of(ev.Notice) if e.source == "recorder"]
    assert len(stopped) == 1 and "recording stopped" in stopped[0] and "full" in stopped[0]
    assert stopped[0] in r.report["notices"]
    dd = r.report["syscalls"]["write"]["count"]
    assert dd >= 40001  # the report, fed by the bus and not the file, is whole
    with open_recording(path) as rec:  # what was written before the disk filled is readable
        assert rec.complete is False
        kinds = [type(e).__name__ for e in rec.events()]
    assert kinds[0] == "SessionStarted"


def test_a_full_disk_while_recording_is_one_line_from_the_cli(small_disk):
    done = subprocess.run([WORKBENCH, "run", "--record", str(small_disk / "cli.sqlite"), "--", "dd",
                           "if=/dev/zero", "of=/dev/null", "bs=1", "count=40001", "status=none"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if "recording stopped" in ln]
    assert len(lines) == 1 and "full" in lines[0]

