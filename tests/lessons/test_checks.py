"""Check evaluation over hand-made facts: each kind passes on what it expects, fails on what it
does not, and says what it saw either way; live evaluation keeps undecided checks pending."""

from __future__ import annotations

import pytest

from workbench.core import events as ev
from workbench.lessons import Check, Facts, evaluate

REPORT = {
    "exit_code": None, "signal": 9, "signal_name": "SIGKILL",
    "namespaces": {"pid": {"isolated": True, "inode": 4026532178}},
    "cgroup": {"memory_peak_bytes": 67_000_000, "memory_limit_bytes": 67_108_864, "oom_killed": True,
               "pids_peak": 11, "pids_limit": 11},
    "syscalls": {"openat": {"count": 71, "errors": {"EROFS": 1, "ENOENT": 13}}, "mkdir": {"count": 23, "errors": {}}},
    "seccomp_denials": [{"syscall": "mkdir", "action": "errno", "errno": "EPERM", "pid": 7,
                         "args": {"pathname": "/tmp/a"},
                         "count": 1, "rule": "seccomp.syscalls (deny-list) lists mkdir: errno EPERM"}],
    "probes": {"seccomp": {"state": "detached"}},
    "diagnosis": [{"layer": "cgroup-memory", "summary": "ran out", "fix_options": []},
                  {"layer": "seccomp", "summary": "refused mkdir", "fix_options": ["--allow", "mkdir"]}],
}


def facts(**kw) -> Facts:
    base = dict(report=REPORT, stdout="my pid: 2\npids in /proc: 5\n", stderr="mkdir: Operation not permitted\n",
                ended=True, scratch="/tmp/s")
    base.update(kw)
    return Facts(**base)


def check(kind: str, spec) -> Check:
    return Check(what=f"a {kind} check", kind=kind, spec=spec)


@pytest.mark.parametrize("kind, spec", [
    ("expect", {"signal": "SIGKILL"}),
    ("stdout_matches", r"(?m)^my pid: 2$"),
    ("stderr_matches", "Operation not permitted"),
    ("output_matches", "pids in /proc"),
    ("stdout_lacks", "done"),
    ("stdout_value", {"pattern": r"pids in /proc: (\d+)", "max": 9}),
    ("stdout_value", {"pattern": r"pids in /proc: (\d+)", "eq": 5}),
    ("report", {"cgroup": {"oom_killed": True, "pids_peak": 11}}),
    ("report", {"cgroup": {"memory_peak_bytes": {"near": "cgroup.memory_limit_bytes", "within": 0.05}}}),
    ("report", {"namespaces": {"pid": {"isolated": True}}}),
    ("denial", {"syscall": "mkdir", "action": "errno", "errno": "EPERM", "rule_contains": "deny-list"}),
    ("finding", {"layer": "cgroup-memory", "top": True}),
    ("finding", {"layer": "seccomp", "fix_options": ["--allow", "mkdir"]}),
    ("syscall", {"name": "openat", "errno": "EROFS", "min": 1}),
    ("syscall", {"name": "mkdir", "eq": 23}),
    ("syscall", {"name": "ptrace", "eq": 0}),
])
def test_kinds_pass_on_what_they_expect(kind, spec):
    result = evaluate(check(kind, spec), facts())
    assert result.passed is True, result.seen
    assert result.mark == "passed" and result.seen


@pytest.mark.parametrize("kind, spec, seen", [
    ("expect", {"exit_code": 0}, "killed by SIGKILL"),
    ("stdout_matches", r"(?m)^my pid: 3$", "stdout: my pid: 2 ⏎ pids in /proc: 5"),
    ("stderr_lacks", "not permitted", "stderr has it: mkdir: Operation not permitted"),
    ("stdout_value", {"pattern": r"pids in /proc: (\d+)", "min": 23}, "5 (pids in /proc: 5)"),
    ("stdout_value", {"pattern": r"forked (\d+)", "eq": 9}, "no line matching"),
    ("report", {"cgroup": {"oom_killed": False}}, "cgroup.oom_killed = True (expected False)"),
    ("report", {"cgroup": {"memory_peak_bytes": {"near": 268435456}}}, "cgroup.memory_peak_bytes = 67000000"),
    ("report", {"nothing": {"here": 1}}, "nothing.here missing from the report"),
    ("denial", {"syscall": "rmdir"}, "other denials: mkdir(pathname=/tmp/a) EPERM by pid 7"),
    ("denial", {"syscall": "mkdir", "action": "kill"}, "other denials"),
    ("no_denial", True, "mkdir(pathname=/tmp/a) EPERM"),
    ("finding", {"layer": "seccomp", "top": True}, "[cgroup-memory] ran out"),
    ("syscall", {"name": "openat", "errno": "EROFS", "min": 2}, "openat: 1 × EROFS of 71 calls"),
    ("syscall", {"name": "mkdir", "eq": 22}, "mkdir: 23 calls"),
])
def test_kinds_fail_and_say_what_they_saw(kind, spec, seen):
    result = evaluate(check(kind, spec), facts())
    assert result.passed is False and result.mark == "FAILED"
    assert seen in result.seen


def test_no_denial_needs_the_probe_to_have_watched():
    quiet = dict(REPORT, seccomp_denials=[])
    assert evaluate(check("no_denial", True), facts(report=quiet)).passed is True
    blind = dict(quiet, probes={"seccomp": {"state": "off", "reason": "--no-trace was given"}})
    result = evaluate(check("no_denial", True), facts(report=blind))
    assert result.passed is False and "--no-trace was given" in result.seen


def test_stream_counts_by_source():
    stream = {"host": {"ptrace": {"count": 4001, "errors": {}}}, "gvisor": {"mkdir": {"count": 23, "errors": {}}}}
    f = facts(stream=stream)
    assert evaluate(check("syscall", {"name": "mkdir", "source": "gvisor", "eq": 23}), f).passed is True
    assert evaluate(check("syscall", {"name": "mkdir", "source": "host", "eq": 23}), f).passed is False
    missing = evaluate(check("syscall", {"name": "mkdir", "source": "gvisor", "eq": 23}), facts())
    assert missing.passed is False and "Sentry's log was not followed" in missing.seen


def test_events_by_type_and_fields():
    denial = ev.SeccompDenial(1, pid=7, tid=7, comm="mkdir", syscall="mkdir", nr=83, action="errno", errno="EPERM")
    f = facts(events=[denial, ev.OomKill(2, pid=9)])
    assert evaluate(check("event", {"type": "SeccompDenial", "syscall": "mkdir"}), f).passed is True
    assert evaluate(check("event", {"type": "OomKill", "min": 1, "max": 1}), f).passed is True
    wrong = evaluate(check("event", {"type": "SeccompDenial", "syscall": "rmdir"}), f)
    assert wrong.passed is False and wrong.seen == "0 SeccompDenial event(s)"


def test_host_files_with_scratch_filled_in():
    host = {"/tmp/s/written": {"exists": True, "uid": 65534, "gid": 65534, "mode": 0o644}}
    f = facts(host=host)
    assert evaluate(check("host_file", {"path": "{scratch}/written", "uid": 65534}), f).passed is True
    owned = evaluate(check("host_file", {"path": "{scratch}/written", "uid": 0}), f)
    assert owned.passed is False and "owner uid 65534" in owned.seen
    assert evaluate(check("host_file", {"path": "{scratch}/other", "exists": False}), f).passed is True
    assert evaluate(check("host_file", {"path": "{scratch}/written", "exists": False}), f).passed is False


def test_live_evaluation_keeps_undecided_checks_pending():
    running = facts(ended=False, stdout="my pid: 2\n", report=dict(REPORT, exit_code=None, signal=None))
    # something that appeared passes at once...
    assert evaluate(check("stdout_matches", "my pid: 2"), running, final=False).passed is True
    # ...what has not appeared yet may still come...
    assert evaluate(check("stdout_matches", "done"), running, final=False).passed is None
    # ...and absences, exit statuses and counts wait for the end
    assert evaluate(check("stdout_lacks", "done"), running, final=False).passed is None
    assert evaluate(check("expect", {"exit_code": 0}), running, final=False).passed is None
    assert evaluate(check("stdout_lacks", "done"), running, final=True).passed is True


def test_an_unavailable_backend_fails_every_check_with_the_reason():
    f = Facts(unavailable="gVisor backend not available: workbench/sandbox/gvisor.py is not part of this install",
              ended=True)
    result = evaluate(check("stdout_matches", "4.4.0"), f)
    assert result.passed is False and result.seen.startswith("gVisor backend not available")
