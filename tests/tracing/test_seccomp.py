"""Seccomp denials seen by the probes: errno actions (a sys_exit with no sys_enter) and kill/trap
actions (SIGSYS), with their syscall, decoded arguments, action and rule."""

from __future__ import annotations

import pytest

from workbench.core.events import FatalSignal, ProcessExited, SeccompDenial

pytestmark = pytest.mark.privileged


def test_7_denied_mkdir_give_7_denials_with_their_paths(traced, recorder, workload, tmp_path):
    rule = "seccomp.syscalls: mkdir (deny-list, errno EPERM)"
    t, held, code = traced([workload, "mkdir", str(tmp_path), "7"], ("--errno-mkdir",),
                        rule_for=lambda name: rule if name == "mkdir" else "")
    assert code == 0
    denials = recorder.of(SeccompDenial)
    assert [d.args["pathname"] for d in denials] == [f"{tmp_path}/d{i}" for i in range(7)]
    assert {(d.syscall, d.action, d.errno, d.pid, d.rule, d.source) for d in denials} == {
        ("mkdir", "errno", "EPERM", held.pid, rule, "bpf")}
    assert not any(tmp_path.iterdir())  # they really were refused
    # The stream marks the same calls as denied; the aggregate counts them with their errno.
    streamed = [s for s in recorder.syscalls() if s.name == "mkdir"]
    assert len(streamed) == 7 and all(s.denied and s.errno == "EPERM" for s in streamed)
    mkdir = next(s for s in t.stats().stats if s.name == "mkdir")
    assert (mkdir.count, mkdir.errors) == (7, {"EPERM": 7})


def test_mkdir_allowed_is_not_a_denial(traced, recorder, workload, tmp_path):
    t, held, code = traced([workload, "mkdir", str(tmp_path), "3"], ())
    assert code == 0
    assert recorder.of(SeccompDenial) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d0", "d1", "d2"]


def test_killed_by_seccomp_names_the_syscall(traced, recorder, workload, tmp_path):
    target = tmp_path / "keep"
    target.mkdir()
    t, held, code = traced([workload, "rmdir", str(target)], ("--kill-rmdir",),
                        stream=False)
    assert code == -31  # SIGSYS
    assert target.exists()
    denials = recorder.of(SeccompDenial)
    assert [(d.syscall, d.action, d.errno, d.args.get("pathname")) for d in denials] == [
        ("rmdir", "kill", None, str(target))]
    exits = [e for e in recorder.of(ProcessExited) if e.pid == held.pid]
    assert [(e.exit_code, e.signal) for e in exits] == [(None, 31)]


def test_trap_action_is_told_apart_from_kill(traced, recorder, workload, tmp_path):
    target = tmp_path / "keep"
    target.mkdir()
    t, held, code = traced([workload, "rmdir", str(target)], ("--trap-rmdir",))
    assert code == -31  # the default SIGSYS handler ends it, after the call returned
    denials = recorder.of(SeccompDenial)
    assert [(d.syscall, d.action) for d in denials] == [("rmdir", "trap")]
    assert [(f.pid, f.signal) for f in recorder.of(FatalSignal)] == [(held.pid, 31)]


@pytest.mark.parametrize("action", ["errno", "kill"])
def test_the_apps_execve_refused_is_the_first_thing_recorded(traced, recorder, workload, action):
    t, held, code = traced([workload, "getppid", "3"], (f"--{action}-execve",))
    assert code == (126 if action == "errno" else -31)
    denials = recorder.of(SeccompDenial)
    assert [(d.syscall, d.action, d.pid, d.args.get("pathname")) for d in denials] == [
        ("execve", action, held.pid, workload)]
    if action == "errno":
        first = recorder.syscalls()[0]
        assert (first.name, first.denied, first.errno) == ("execve", True, "EPERM")
    assert next(s.count for s in t.stats().stats if s.name == "execve") == 1
