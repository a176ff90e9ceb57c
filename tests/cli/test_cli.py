"""The CLI contract of shared/DESIGN.md, through the real console script."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import wait_until

WORKBENCH = os.path.join(os.path.dirname(sys.executable), "workbench")
pytestmark = pytest.mark.privileged


def wb(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([WORKBENCH, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("command,status", [
    (["sh", "-c", "exit 7"], 7),
    (["sh", "-c", "kill -9 $$"], 137),
    (["no-such-command"], 127),
    (["/etc/hostname"], 126),
])
def test_run_exit_status(command, status):
    r = wb("run", "--no-trace", "--", *command)
    assert r.returncode == status, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--deny", "mkdri"], "unknown syscall 'mkdri': did you mean mkdir"),
    (["--memory", "lots"], "--memory: expected a size"),
    (["--profile", "nope"], "no bundled profile 'nope'"),
    (["--bind", "/does/not/exist"], "source does not exist"),
    (["--net", "bogus"], "invalid choice"),
])
def test_usage_errors_are_one_line_and_exit_2(args, message):
    r = wb("run", *args, "--", "true")
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_malformed_profile_file(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text('[limits]\nmemory = "12 parsecs"\n')
    r = wb("run", "--profile", str(p), "--", "true")
    assert r.returncode == 2
    assert r.stderr.strip() == "workbench: broken.toml: limits.memory: expected a size like '512M' or '2G', " \
                               "got '12 parsecs'"


def test_report_contract(tmp_path):
    report = tmp_path / "r.json"
    r = wb("run", "--no-trace", "--report", str(report), "--memory", "128M", "--pids", "23", "--",
           "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n" and r.stderr.startswith("err\n")
    data = json.loads(report.read_text())
    for key in ("command", "backend", "exit_code", "signal", "duration_s", "namespaces", "cgroup", "syscalls",
                "seccomp_denials", "processes", "lost_events", "diagnosis"):
        assert key in data
    assert data["command"] == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    assert (data["backend"], data["exit_code"], data["signal"]) == ("native", 3, None)
    assert set(data["namespaces"]) == {"pid", "mnt", "net", "uts", "ipc", "user", "cgroup"}
    assert all(v["isolated"] and v["inode"] > 0 for v in data["namespaces"].values())
    assert data["cgroup"]["memory_limit_bytes"] == 128 << 20 and data["cgroup"]["pids_limit"] == 23


def test_report_to_stdout_is_json():
    r = wb("run", "--no-trace", "--report", "-", "--", "true")
    assert r.returncode == 0
    assert json.loads(r.stdout)["exit_code"] == 0


def test_doctor_json():
    r = wb("doctor", "--json")
    data = json.loads(r.stdout)
    names = {c["name"] for c in data["checks"]}
    assert {"root", "cgroup layout", "seccomp", "bcc", "kernel headers", "tracefs", "BPF program types",
            "bwrap", "runsc"} <= names
    assert r.returncode == (0 if data["ok"] else 1)
    assert data["ok"], [c for c in data["checks"] if not c["ok"]]


def _sandbox_dirs(pid: int) -> list[str]:
    return glob.glob(f"/sys/fs/cgroup/*/workbench-{pid}-*")


def test_sigkill_of_the_workbench_takes_the_sandbox_down():
    proc = subprocess.Popen([WORKBENCH, "run", "--no-trace", "--", "sleep", "300"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        app = wait_until(lambda: [p for d in glob.glob(f"/sys/fs/cgroup/unified/workbench-{proc.pid}-*/app")
                                  for p in open(f"{d}/cgroup.procs").read().split()], 20, "the sandbox")
        sleeper = int(app[0])
        wait_until(lambda: open(f"/proc/{sleeper}/comm").read().strip() == "sleep", 20, "the exec of sleep")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_until(lambda: not os.path.exists(f"/proc/{sleeper}"), 2, "the sandboxed process to die")
        wait_until(lambda: not _sandbox_dirs(proc.pid), 2, "the cgroups to be removed")
    finally:
        proc.kill()
        proc.wait()


def test_fix_verifies_the_top_finding(tmp_path):
    report = tmp_path / "r.json"
    r = wb("run", "--fix", "--deny", "mkdir", "--report", str(report), "--",
           "python3", "-c", "import os; os.mkdir('/tmp/d')")
    assert "--fix: re-running with --allow mkdir" in r.stderr
    assert "--fix: the failure is gone" in r.stderr
    assert r.returncode == 0
    data = json.loads(report.read_text())
    assert data["fix"] == {"applied": ["--allow", "mkdir"], "before_exit": 1, "after_exit": 0, "verified": True}


def test_fix_applies_a_profile_patch_when_no_option_expresses_it():
    # A missing capability has no CLI option: the fix is a profile patch, applied and verified.
    r = wb("run", "--fix", "--", "python3", "-c",
           "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1); print('raw ok')")
    assert "[capabilities]" in r.stderr
    assert "--fix: re-running with profile patch {'capabilities': {'keep': ['net_raw']}}" in r.stderr
    assert "--fix: the failure is gone" in r.stderr
    assert (r.returncode, r.stdout) == (0, "raw ok\n")


def test_without_probes_denials_come_from_the_audit_log():
    r = wb("run", "--no-trace", "--deny", "mkdir", "--report", "-", "--", "mkdir", "/tmp/a")
    assert r.returncode == 1
    denials = json.loads(r.stdout)["seccomp_denials"]
    assert [(d["syscall"], d["action"], d["source"], d["count"]) for d in denials] == [("mkdir", "errno", "audit", 1)]
    assert denials[0]["rule"] == "seccomp.syscalls (deny-list) lists mkdir: errno EPERM"


def test_dump_bpf_prints_what_was_loaded():
    r = wb("run", "--dump-bpf", "--", "true")
    assert r.returncode == 0
    assert r.stderr.startswith("# cflags: ")
    assert "TRACEPOINT_PROBE" in r.stderr or "RAW_TRACEPOINT_PROBE" in r.stderr or "SEC(" in r.stderr
