"""A lesson driven end to end in the TUI with the pilot: real sandboxes, the step screen with the
panes to look at marked, checks going from pending to passed live, back to the lesson with the
verdicts, and a wrong expectation shown FAILED with what was seen."""

from __future__ import annotations

import tomllib

import pytest

from workbench import lessons
from workbench.lessons.model import from_dict
from workbench.tui.capture import screen_text
from workbench.tui.messages import Lifecycle
from workbench.tui.screens.lessons import LessonListScreen, LessonScreen, LessonStepScreen, build_lesson_app

from .samples import WRONG

pytestmark = [pytest.mark.asyncio, pytest.mark.privileged, pytest.mark.usefixtures("live")]


from tests.conftest import wait_for_app as wait_for  # noqa: E402


class Seen:
    """Lifecycle messages, once each (a message hook sees a message at every node it passes)."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._seen: dict[int, object] = {}  # by id, holding the message: a freed one's id is reused

    def __call__(self, message) -> None:
        if isinstance(message, Lifecycle) and id(message) not in self._seen:
            self._seen[id(message)] = message
            self.events.append(type(message.event).__name__)


async def run_step(app, pilot, index: int) -> LessonStepScreen:
    lesson_screen = app.screen
    steps = lesson_screen.query_one("#lesson-steps")
    steps.highlighted = index
    steps.focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, LessonStepScreen), "the step screen")
    step_screen = app.screen
    await wait_for(pilot, lambda: step_screen.final, "the step's final checks")
    await pilot.pause()
    return step_screen


async def test_seccomp_lesson_on_then_off_in_the_tui():
    app = build_lesson_app(lessons.load("seccomp"))
    seen = Seen()
    async with app.run_test(size=(150, 50), message_hook=seen) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LessonScreen), "the lesson screen")
        lesson_screen = app.screen
        text = screen_text(app)
        assert "Seccomp: errno or kill" in text and "Where to look" in text
        assert text.count("not run") >= 3  # three steps, none run yet

        on = await run_step(app, pilot, 0)
        assert on.step.name == "errno" and [r.passed for r in on.results] == [True] * 5
        # the panes the lesson points at are marked; the others are not
        assert {w.id for w in on.query(".-look")} == {"denials", "stream", "processes"}
        text = screen_text(app)
        assert "5/5 checks passed" in text and "look at the marked panes: denials, stream, processes" in text
        assert "seen: mkdir(pathname=/tmp/lesson) EPERM" in text
        assert on.state.denials_total >= 1  # the denials pane got the denial itself, not only the check

        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is lesson_screen, "back to the lesson")
        await pilot.pause()
        assert "5/5 checks passed" in screen_text(app)

        off = await run_step(app, pilot, 2)
        assert off.step.name == "off" and all(r.passed for r in off.results)
        assert off.state.exited.exit_code == 0 and off.state.denials_total == 0
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is lesson_screen, "back to the lesson")
        await pilot.pause()
        assert screen_text(app).count("checks passed") == 2 and lesson_screen.results["off"][0].passed
        assert seen.events == ["SessionStarted", "SandboxReady", "SandboxReleased", "SandboxExited", "SessionEnded"] * 2

        await pilot.press("escape")  # the lesson leads back to the launch screen
        await wait_for(pilot, lambda: not isinstance(app.screen, LessonScreen), "the launch screen")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 20)
    assert app.return_code == 0


async def test_a_wrong_expectation_shows_failed_with_what_was_seen():
    app = build_lesson_app(from_dict(tomllib.loads(WRONG), "wrong"))
    async with app.run_test(size=(150, 50)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LessonScreen), "the lesson screen")
        step = await run_step(app, pilot, 0)
        assert [r.passed for r in step.results] == [False, True]
        text = screen_text(app)
        assert "1/2 checks passed" in text and "✘ FAILED" in text and "seen: stdout: my pid: 2" in text
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 20)


async def test_the_list_opens_a_lesson():
    app = build_lesson_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LessonListScreen), "the list")
        text = screen_text(app)
        for lesson in lessons.load_all():
            assert lesson.title in text
        options = app.screen.query_one("#lesson-list")
        options.highlighted = options.get_option_index("memory")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, LessonScreen), "the lesson")
        assert app.screen.lesson.name == "memory"
        assert "cgroup memory: the OOM killer at the limit" in screen_text(app)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 20)


WAITING = '''
name = "waiting"
title = "A step left while it runs"
layer = "pid"
summary = "s"
explanation = "e"
[[steps]]
name = "on"
title = "waits for a line on stdin"
command = ["sh", "-c", "echo waiting; read line; echo got $line"]
[[steps.checks]]
what = "it says it waits"
stdout_matches = "waiting"
[[steps.checks]]
what = "it exits 0"
expect = { exit_code = 0 }
'''


async def test_a_step_left_while_running_gets_its_verdict_when_it_ends():
    app = build_lesson_app(from_dict(tomllib.loads(WAITING), "waiting"))
    async with app.run_test(size=(150, 50)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LessonScreen), "the lesson screen")
        lesson_screen = app.screen
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, LessonStepScreen), "the step screen")
        step = app.screen
        # live: the line it printed passes at once, the exit status waits for the end
        await wait_for(pilot, lambda: [r.passed for r in step.results] == [True, None], "the live verdicts")
        assert "running — 1/2 so far" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is lesson_screen, "back to the lesson")
        assert [r.passed for r in lesson_screen.results["on"]] == [True, None]
        step.session.kill()  # the step ends off screen...
        await wait_for(pilot, lambda: lesson_screen.results["on"][1].passed is False, "the final verdict")
        # ...and its verdict still reaches the lesson
        assert lesson_screen.results["on"][1].seen == "killed by SIGKILL"
        await pilot.pause()
        assert "1/2 checks passed" in screen_text(app)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 20)
