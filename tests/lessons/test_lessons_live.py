"""Every lesson, run for real (root, the real kernel): all its checks pass on this machine, and
its checks tell the layer on from the layer off — a check that passes both ways proves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import lessons
from workbench.lessons import evaluate_all

pytestmark = [pytest.mark.privileged, pytest.mark.usefixtures("live")]

NAMES = [lesson.name for lesson in lessons.load_all()]


def test_all_nine_layers_have_a_lesson():
    assert NAMES == ["pid", "mount", "net", "user", "capabilities", "memory", "pids", "seccomp", "gvisor"]


@pytest.mark.parametrize("name", NAMES)
def test_lesson_checks_pass_and_tell_on_from_off(name: str):
    lesson = lessons.load(name)
    run = lessons.run_lesson(lesson)
    failed = [f"{s.step.name}: {r.check.what} — seen: {r.seen}" for s in run.steps for r in s.results
              if r.passed is not True]
    assert not failed, "\n".join(failed)
    assert len(run.steps) >= 2 and run.steps[0].step.layer_on and not run.steps[-1].step.layer_on
    # The same checks over the other run's facts: each step must expect something the other lacks.
    for mine in run.steps:
        for other in run.steps:
            if other is mine:
                continue
            crossed = evaluate_all(mine.step.checks, other.facts)
            assert any(r.passed is False for r in crossed), \
                f"every check of step {mine.step.name} also passes on step {other.step.name}'s run"


def test_steps_in_any_order_see_a_fresh_scratch_directory():
    """The TUI lets a learner run the layer-off step first and the layer-on step after: the file the
    first left on the host must not fail the second ("nothing reached the host")."""
    lesson = lessons.load("mount")
    on, off = lesson.steps
    box = lessons.Scratch(lesson)
    with box as scratch:
        first = lessons.run_step(lesson, off, scratch)
        assert first.passed, [r.seen for r in first.results]
        box.reset()
        assert sorted(p.name for p in Path(scratch).iterdir()) == ["host-marker.txt"]
        second = lessons.run_step(lesson, on, scratch)
        assert second.passed, [r.seen for r in second.results if not r.passed]
