"""Lessons in the TUI: pick a lesson, read it, launch each step (the layer on, then off) as an
ordinary session shown on the session screen, with the panes to look at marked and the lesson's
checks evaluated live on this run's events and report.

    LessonListScreen ─▶ LessonScreen (explanation, steps, checks) ─▶ LessonStepScreen
                                                                      (the session screen + checks)

The lesson layer (workbench.lessons) does the work: `step_options` builds the session, `Collector`
gathers the facts, `evaluate_all` answers the checks; here we only show them.
"""

from __future__ import annotations

import threading

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from workbench.core import events as ev
from workbench.core.errors import WorkbenchError
from workbench.lessons import (CheckResult, Collector, Facts, Lesson, Scratch, Step, evaluate_all, load_all,
                               step_options)
from workbench.tui.messages import Lifecycle
from workbench.tui.runner import open_session
from workbench.tui.screens.session import SessionScreen
from workbench.tui.widgets.syscall_stream import SyscallStream

LIVE_CHECK_HZ = 4

_MARK_STYLE = {True: ("✔ passed", "bold green"), False: ("✘ FAILED", "bold red"), None: ("… pending", "yellow")}


def checks_table(step: Step, results: list[CheckResult] | None, compact: bool = False) -> Table:
    """One row per check: its verdict (or "not run"), what it expects and what was seen (on one
    line each when `compact`, for the banner over the session screen)."""
    table = Table(box=None, expand=True, show_header=False, pad_edge=False)
    table.add_column("mark", no_wrap=True, width=10)
    if compact:
        table.add_column("check", ratio=2, no_wrap=True, overflow="ellipsis")
        table.add_column("seen", ratio=3, no_wrap=True, overflow="ellipsis", style="dim")
    else:
        table.add_column("check", ratio=1)
    if results is None:
        for check in step.checks:
            table.add_row(Text("· not run", style="dim"), Text(check.what), *([""] if compact else []))
        return table
    for r in results:
        mark, style = _MARK_STYLE[r.passed]
        if compact:
            # Text, not str: what was seen may hold brackets ("[seccomp] ...") that are not markup
            table.add_row(Text(mark, style=style), Text(r.check.what), Text(f"seen: {r.seen}"))
        else:
            table.add_row(Text(mark, style=style), Group(Text(r.check.what), Text(f"seen: {r.seen}", style="dim")))
    return table


def verdict(results: list[CheckResult] | None) -> Text:
    if results is None:
        return Text("not run", style="dim")
    passed = sum(1 for r in results if r.passed)
    if any(r.passed is None for r in results):
        return Text(f"running — {passed}/{len(results)} so far", style="yellow")
    ok = passed == len(results)
    return Text(f"{passed}/{len(results)} checks passed", style="bold green" if ok else "bold red")


class LessonListScreen(Screen):
    """Every lesson, in teaching order; enter opens one."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    DEFAULT_CSS = """
    LessonListScreen #lesson-list { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.lessons = load_all()

    def compose(self):
        yield Static("[b]Lessons[/b] — each isolation layer shown live, on then off, and checked", id="launch-title")
        yield OptionList(*[Option(Text.assemble((f"{lesson.title}", "bold"), "\n  ", (lesson.summary, "dim")),
                                  id=lesson.name) for lesson in self.lessons], id="lesson-list")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#lesson-list", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        lesson = next(lesson for lesson in self.lessons if lesson.name == event.option.id)
        self.app.push_screen(LessonScreen(lesson))


class LessonScreen(Screen):
    """One lesson: its explanation and where to look, its steps with their verdicts, and the
    checks of the highlighted step. Enter launches the step."""

    BINDINGS = [
        Binding("enter", "run_step", "Run step", show=True),
        Binding("r", "run_step", "Run step", show=False),
        Binding("escape", "app.pop_screen", "Back"),
        Binding("tab", "app.focus_next", show=False),
    ]
    DEFAULT_CSS = """
    LessonScreen #lesson-title { height: auto; padding: 0 1; background: $panel; }
    LessonScreen #lesson-main { height: 1fr; }
    LessonScreen #lesson-text { width: 1fr; padding: 0 1; }
    LessonScreen #lesson-side { width: 1fr; }
    LessonScreen #lesson-steps { height: auto; max-height: 50%; }
    LessonScreen #lesson-checks { height: 1fr; padding: 0 1; overflow-y: auto; }
    """

    def __init__(self, lesson: Lesson, scratch_parent: str | None = None) -> None:
        super().__init__()
        self.lesson = lesson
        self.results: dict[str, list[CheckResult]] = {}
        """The latest verdicts per step name (live while a step runs)."""
        self._scratch = Scratch(lesson, scratch_parent)
        self.scratch = ""

    def compose(self):
        yield Static(Text.assemble((self.lesson.title, "bold"), "  ", (self.lesson.summary, "italic")),
                     id="lesson-title")
        with Horizontal(id="lesson-main"):
            with VerticalScroll(id="lesson-text", classes="pane"):
                yield Static(self._text(), id="lesson-explanation")
            with Vertical(id="lesson-side"):
                yield OptionList(id="lesson-steps", classes="pane")
                yield Static("", id="lesson-checks", classes="pane")
        yield Footer()

    def _text(self) -> Group:
        parts = [Text(p.replace("\n", " ") + "\n") for p in self.lesson.explanation.split("\n\n")]
        parts.append(Text("Where to look", style="bold"))
        for look in self.lesson.look:
            parts.append(Text.assemble(("  " + look.pane, "bold cyan"), "  ", look.what))
        return Group(*parts)

    def on_mount(self) -> None:
        self.scratch = self._scratch.__enter__()
        self.query_one("#lesson-text").border_title = "The lesson"
        self.query_one("#lesson-steps").border_title = "Experiment: enter runs a step"
        self.query_one("#lesson-checks").border_title = "Checks"
        self.refresh_steps()
        steps = self.query_one("#lesson-steps", OptionList)
        steps.highlighted = 0
        steps.focus()

    def on_unmount(self) -> None:
        self._scratch.__exit__(None, None, None)

    @property
    def current(self) -> Step:
        index = self.query_one("#lesson-steps", OptionList).highlighted or 0
        return self.lesson.steps[index]

    def refresh_steps(self) -> None:
        steps = self.query_one("#lesson-steps", OptionList)
        highlighted = steps.highlighted
        steps.clear_options()
        for i, step in enumerate(self.lesson.steps, 1):
            state = Text("layer on ", style="bold green") if step.layer_on else Text("layer off", style="bold yellow")
            steps.add_option(Option(Text.assemble(f"{i}. ", state, "  ", (step.title, "bold"), "\n     ",
                                                  verdict(self.results.get(step.name))), id=step.name))
        if highlighted is not None:
            steps.highlighted = highlighted
        self.show_checks()

    def show_checks(self) -> None:
        step = self.current
        parts = [Text(step.explain + "\n", style="italic")] if step.explain else []
        parts.append(checks_table(step, self.results.get(step.name)))
        self.query_one("#lesson-checks", Static).update(Group(*parts))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.show_checks()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_run_step()

    def action_run_step(self) -> None:
        step = self.current
        try:
            self._scratch.reset()
            options = step_options(self.lesson, step, self.scratch, stdin="pipe")
            session = open_session(options)
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        sessions = getattr(self.app, "sessions", None)
        if isinstance(sessions, list):
            sessions.append(session)  # the app tears down every session it knows when it quits
        self.results[step.name] = evaluate_all(step.checks, Facts(), final=False)
        self.refresh_steps()
        self.app.push_screen(LessonStepScreen(self, step, session, options), self._step_done)

    def step_results(self, step: Step, results: list[CheckResult]) -> None:
        """Called by the step screen as checks are (re)evaluated."""
        self.results[step.name] = results
        if self.is_mounted:
            self.refresh_steps()

    def _step_done(self, _result=None) -> None:
        self.refresh_steps()


class LessonStepScreen(SessionScreen):
    """The session screen for one step, with the lesson's banner on top: what to expect, the panes
    to look at (marked), and the checks, live. Escape goes back to the lesson."""

    # A priority binding: the syscall pane takes escape for its own input, and gets it back below.
    BINDINGS = [Binding("escape", "back", "Back to the lesson", priority=True)]
    DEFAULT_CSS = """
    LessonStepScreen #lesson-banner { height: auto; max-height: 12; padding: 0 1; border: round $success; }
    LessonStepScreen .pane.-look { border: double $success; }
    LessonStepScreen .pane.-look:focus-within { border: double $accent; }
    """

    def __init__(self, parent: LessonScreen, step: Step, session, options) -> None:
        super().__init__(session, options)
        self.lesson_screen = parent
        self.lesson = parent.lesson
        self.step = step
        self.collector = Collector(session.bus, parent.scratch)
        self.results: list[CheckResult] = evaluate_all(step.checks, Facts(), final=False)
        self.final = False
        self._finish_lock = threading.Lock()

    def compose(self):
        yield Static("", id="lesson-banner")
        yield from super().compose()

    # Textual runs the handlers of every class in the MRO: SessionScreen's on_mount, on_unmount and
    # on_lifecycle run on their own, so these must not call super() (that would start it twice).
    def on_mount(self) -> None:
        looks = {look.pane: look.what for look in self.lesson.look}
        for pane, what in looks.items():
            for widget in self.query(f"#{pane}"):
                widget.add_class("-look")
                widget.border_subtitle = "◀ look here"
                widget.tooltip = what
        self._timer = self.set_interval(1 / LIVE_CHECK_HZ, self.live_checks, name="lesson-checks")
        self.show_banner()

    def on_unmount(self) -> None:
        if self.final:
            self.collector.close()
            return
        # Left while the step still runs: its verdict reaches the lesson screen when it ends.
        app = self.app
        if self.collector.facts.ended:
            self._finish_offscreen(app)
            return

        def on_end(_event) -> None:
            self._finish_offscreen(app, from_thread=True)

        self._end_unsubscribe = self.session.bus.subscribe(on_end, ev.SessionEnded)
        if self.collector.facts.ended:  # ended between the check above and the subscription
            self._end_unsubscribe()
            self._finish_offscreen(app)

    def _finish_offscreen(self, app, from_thread: bool = False) -> None:
        with self._finish_lock:  # the bus thread and the unmount may both get here: once is enough
            if self.final:
                return
            self.final = True
        facts = self.collector.snapshot(self.session.report(), self.lesson.host_paths(), ended=True)
        self.collector.close()
        results = evaluate_all(self.step.checks, facts, final=True)
        if from_thread:
            try:
                app.call_from_thread(self.lesson_screen.step_results, self.step, results)
            except RuntimeError:
                pass  # the app has exited meanwhile: nobody is left to show it
        else:
            self.lesson_screen.step_results(self.step, results)

    def live_checks(self) -> None:
        if self.final:
            return
        facts = self.collector.snapshot(self.session.report(), ended=False)
        self._publish(evaluate_all(self.step.checks, facts, final=False))

    def final_checks(self) -> None:
        self.final = True
        self._timer.stop()
        facts = self.collector.snapshot(self.session.report(), self.lesson.host_paths(), ended=True)
        self._publish(evaluate_all(self.step.checks, facts, final=True))

    def _publish(self, results: list[CheckResult]) -> None:
        self.results = results
        self.lesson_screen.step_results(self.step, results)
        self.show_banner()

    def show_banner(self) -> None:
        state = "layer on" if self.step.layer_on else "layer off"
        head = Text.assemble((f"{self.lesson.title}", "bold"), " — ", (f"{state}: {self.step.title}", "bold"),
                             "   ", verdict(self.results))
        looks = Text.assemble(("look at the marked panes: ", "bold"), ", ".join(look.pane for look in self.lesson.look),
                              ("   escape: back to the lesson", "dim"))
        self.query_one("#lesson-banner", Static).update(
            Group(head, looks, checks_table(self.step, self.results, compact=True)))

    def on_lifecycle(self, message: Lifecycle) -> None:
        if isinstance(message.event, ev.SessionEnded):
            self.final_checks()

    def action_back(self) -> None:
        stream = self.query_one(SyscallStream)
        if stream.query_one("#stream-input").display:
            stream.action_close_input()
            return
        self.dismiss(self.results)


def build_lesson_app(lesson: Lesson | None = None, theme: str = "dark"):
    """The workbench app opened on a lesson (or on the list of lessons when `lesson` is None)."""
    from workbench.tui.app import THEMES, WorkbenchApp
    from workbench.core.errors import UsageError

    if theme not in THEMES:
        raise UsageError(f"unknown theme {theme!r}", f"use one of {', '.join(THEMES)}")

    class LessonApp(WorkbenchApp):
        def on_mount(self) -> None:
            # Textual also runs WorkbenchApp.on_mount (after this one): it pushes the launch
            # screen, so ours goes on top of it once that is done, and escape leads back there.
            self.call_later(self.push_screen, LessonScreen(lesson) if lesson is not None else LessonListScreen())

    return LessonApp(theme=theme)
