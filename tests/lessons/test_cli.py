"""`workbench learn` as users run it (subprocess): the list, a lesson's text, --check with what was
seen and the exit status, --record recordings that `workbench explain` reads, one-line mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import lessons
from workbench.lessons import Collector, evaluate_all

from .samples import WRONG

WORKBENCH = [sys.executable, "-m", "workbench.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


def workbench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*WORKBENCH, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_learn_lists_every_lesson_in_order():
    out = workbench("learn")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    names = [line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")]
    assert names == ["pid", "mount", "net", "user", "capabilities", "memory", "pids", "seccomp", "gvisor"]


def test_learn_name_prints_the_lesson_to_read():
    out = workbench("learn", "seccomp")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("Seccomp: errno or kill\n")
    assert "Where to look:\n  denials" in text
    assert "Step 2 (layer on): Layer on, kill action" in text and "Step 3 (layer off)" in text
    assert "    - mkdir is killed by SIGSYS" in text


@pytest.mark.parametrize("args, message", [
    (("learn", "--check", "pdi"), "workbench: no lesson 'pdi': choose one of capabilities, gvisor,"),
    (("learn", "pid", "--check", "pid"), "give the lesson either as NAME or to --check, not both"),
    (("learn", "--record", "x"), "--record and --json go with --check"),
    (("learn", "pdi", "--tui"), "workbench: no lesson 'pdi'"),
])
def test_mistakes_are_one_line_and_exit_2(args, message):
    out = workbench(*args)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


@pytest.mark.privileged
def test_check_prints_each_check_with_what_was_seen(no_leaks):
    out = workbench("learn", "--check", "pids")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "lesson pids — cgroup pids: fork fails with EAGAIN at the limit"
    assert "  step on (layer on): Layer on: --pids 11 — exit 1" in lines
    i = lines.index("    passed  exactly 9 children were forked")
    assert lines[i + 1] == "            seen: 9 (forked 9 children)"
    assert "pids: 8/8 checks passed" in lines


@pytest.mark.privileged
def test_check_records_each_step_for_explain(tmp_path, no_leaks):
    out = workbench("learn", "--check", "seccomp", "--record", str(tmp_path), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    [result] = json.loads(out.stdout)
    assert result["lesson"] == "seccomp" and result["passed"] and result["checks_passed"] == result["checks"] == 12
    assert [s["step"] for s in result["steps"]] == ["errno", "kill", "off"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seccomp-errno.sqlite", "seccomp-kill.sqlite",
                                                         "seccomp-off.sqlite"]
    kill = next(s for s in result["steps"] if s["step"] == "kill")
    assert kill["outcome"] == "killed by SIGSYS" and kill["record"] == str(tmp_path / "seccomp-kill.sqlite")
    explained = workbench("explain", str(tmp_path / "seccomp-kill.sqlite"))
    assert explained.returncode == 0, explained.stderr
    assert "[seccomp] seccomp killed the process on mkdir" in explained.stdout
    # Replayed onto a bus, each recording gives the checks the same verdicts and the same seen
    for step in lessons.load("seccomp").steps:
        replayed = replay_facts(tmp_path / f"seccomp-{step.name}.sqlite")
        live = next(s for s in result["steps"] if s["step"] == step.name)["checks"]
        assert [(r.passed, r.seen) for r in evaluate_all(step.checks, replayed)] == \
            [(c["passed"], c["seen"]) for c in live], step.name


def replay_facts(path: Path):
    """A recording's events, published in order on a fresh bus, gathered like a live run's."""
    from workbench.core.bus import Bus
    from workbench.record import open_recording
    from workbench.report import ReportBuilder

    bus, report = Bus(), ReportBuilder()
    bus.subscribe(report)
    collector = Collector(bus)
    with open_recording(path) as recording:
        for event in recording.events():
            bus.publish(event)
    return collector.snapshot(report.build(), ended=True)


@pytest.mark.privileged
def test_a_failed_check_says_what_was_seen_and_exits_1(tmp_path, no_leaks):
    path = tmp_path / "wrong.toml"
    path.write_text(WRONG)
    out = workbench("learn", "--check", str(path))
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    i = lines.index("    FAILED  the command believes it is pid 1")
    assert lines[i + 1] == "            seen: stdout: my pid: 2"
    assert "    passed  it exits 0" in lines and "wrong: 1/2 checks passed" in lines


NO_SUCH_COMMAND = WRONG.replace('command = ["sh", "-c", "echo my pid: $$"]', 'command = ["no-such-program-23"]')


@pytest.mark.privileged
def test_a_step_that_cannot_start_says_why_in_each_check(tmp_path, no_leaks):
    path = tmp_path / "wrong.toml"
    path.write_text(NO_SUCH_COMMAND)
    out = workbench("learn", "--check", str(path))
    assert out.returncode == 1, out.stdout + out.stderr
    seen = [line for line in out.stdout.splitlines() if line.startswith("            seen: ")]
    assert len(seen) == 2
    assert all("the sandbox could not be created:" in line and "no-such-program-23" in line for line in seen)
    assert "Traceback" not in out.stderr
