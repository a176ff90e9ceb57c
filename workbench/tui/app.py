"""The workbench app: composes the screens and routes messages between them and the session layer.

`build_app()` is what the CLI calls, and what the tests call, so tests run exactly what users run.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.theme import Theme

from workbench.core.errors import UsageError, WorkbenchError
from workbench.tui.messages import LaunchRequested, ShellRequested
from workbench.tui.runner import drop_spares, open_session
from workbench.tui.screens.dialogs import Help
from workbench.tui.screens.launch import LaunchScreen
from workbench.tui.screens.lessons import LessonListScreen
from workbench.tui.screens.session import SessionScreen

THEMES_DIR = Path(__file__).resolve().parents[2] / "themes"
THEMES = {"dark": "textual-dark", "light": "textual-light", "high-contrast": "workbench-high-contrast"}
"""Our theme name -> the Textual colour theme under it; themes/<name>.tcss adds our own rules."""

_HIGH_CONTRAST = Theme(
    name="workbench-high-contrast", primary="#ffffff", secondary="#00ffff", accent="#ffff00",
    foreground="#ffffff", background="#000000", surface="#000000", panel="#1a1a1a",
    error="#ff3030", warning="#ffff00", success="#00ff00", dark=True)


class WorkbenchApp(App):
    """Routes: launch requests to new session screens, quit to teardown, themes to CSS classes."""

    TITLE = "workbench"
    CSS_PATH = [Path(__file__).with_name("layout.tcss"), *(THEMES_DIR / f"{n}.tcss" for n in THEMES)]
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
        # A function key: the launch screen's command field takes every letter.
        Binding("f2", "push_screen('lessons')", "Lessons"),
    ]
    SCREENS = {"lessons": LessonListScreen}

    def __init__(self, options=None, replay=None, theme: str = "dark") -> None:
        super().__init__()
        self.options = options
        self.replay = replay
        """An open Recording to replay, or None."""
        self.theme_name = theme
        self.sessions: list = []
        """Every session opened, so that quitting can tear each one down."""
        self._quitting = False

    def on_mount(self) -> None:
        self.register_theme(_HIGH_CONTRAST)
        self.apply_theme(self.theme_name)
        if self.replay is not None:
            from workbench.tui.screens.replay import ReplayScreen

            self.push_screen(ReplayScreen(self.replay))
        elif self.options is not None:
            self.launch(self.options)
        else:
            self.push_screen(LaunchScreen())

    # --- themes --------------------------------------------------------------------------------

    def apply_theme(self, name: str) -> None:
        # Textual owns the `-theme-*` classes (it sets one per colour theme): ours are `-wb-*`.
        self.theme = THEMES[name]
        for other in THEMES:
            self.remove_class(f"-wb-{other}")
        self.add_class(f"-wb-{name}")
        self.theme_name = name

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for name in THEMES:
            yield SystemCommand(f"Theme: {name}", f"Switch to the {name} theme (themes/{name}.tcss)",
                                lambda name=name: self.apply_theme(name))
        yield SystemCommand("Help", "Keys and what each pane shows", self.action_help)
        for command in super().get_system_commands(screen):
            if command.title != "Theme":  # ours above carry our CSS with them
                yield command

    # --- routing -------------------------------------------------------------------------------

    def launch(self, options) -> None:
        """Open a session for `options` and show it; a previous session screen is replaced."""
        if getattr(options, "backend", "native") == "native":
            # The debugging loop relaunches: the launcher builds the next sandbox of this profile
            # while the user reads this run (dropped at exit, replaced when the profile changes).
            options = dataclasses.replace(options, keep_spare=True)
        try:
            session = open_session(options)
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.sessions.append(session)
        current = self.screen
        if isinstance(current, SessionScreen):
            screen = SessionScreen(session, options, previous=current.state.summary())
            self.close_in_background(current)
            self.switch_screen(screen)
        else:
            self.push_screen(SessionScreen(session, options))

    def on_launch_requested(self, message: LaunchRequested) -> None:
        self.launch(message.options)

    def on_shell_requested(self, message: ShellRequested) -> None:
        if message.options is None:
            self.notify("no profile to build a shell sandbox from", severity="warning")
            return
        options = dataclasses.replace(message.options, command=["/bin/sh", "-i"], stdin="terminal",
                                      trace=False, stream=False, record=None)
        try:
            with self.suspend():
                # The terminal belongs to the shell until it exits; the UI is suspended meanwhile.
                sys.__stdout__.write("workbench: a shell in a sandbox made like this run's; "
                                     "`exit` brings you back\n")
                sys.__stdout__.flush()
                session = open_session(options)
                self.sessions.append(session)
                try:
                    session.start()
                    session.wait()
                finally:
                    session.close()
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error", timeout=10)
        except Exception as exc:  # SuspendNotSupported in a headless or web driver
            self.notify(f"cannot hand over the terminal here: {exc}", severity="warning")

    @work(thread=True, group="teardown", description="tear down a replaced session")
    def close_in_background(self, screen: SessionScreen) -> None:
        screen.close_session()

    def action_help(self) -> None:
        if not isinstance(self.screen, Help):
            self.push_screen(Help())

    async def action_quit(self) -> None:
        if not self._quitting:
            self._quitting = True
            self.notify("ending the sandbox…", timeout=2)
            self.shutdown()

    @work(thread=True, exclusive=True, group="teardown", description="end every sandbox, then exit")
    def shutdown(self) -> None:
        self.close_all()
        self.call_from_thread(lambda: self.exit(return_code=0))

    def close_all(self) -> None:
        """Tear every session down (blocking; Session.close is idempotent)."""
        for session in self.sessions:
            try:
                session.close()
            except Exception as exc:  # one failed teardown must not keep the others alive
                self.log.error(f"closing a session failed: {exc!r}")
        if self.sessions:
            try:
                drop_spares()
            except Exception as exc:
                self.log.error(f"dropping the launcher's spare failed: {exc!r}")

    def run(self, *args, **kwargs):
        try:
            return super().run(*args, **kwargs)
        finally:
            self.close_all()  # whatever way the app ended, nothing is left behind


def build_app(options=None, replay: str | None = None, theme: str = "dark") -> WorkbenchApp:
    """The app the CLI runs: the launch screen, a session for `options`, or a replay."""
    if theme not in THEMES:
        raise UsageError(f"unknown theme {theme!r}", f"use one of {', '.join(THEMES)}")
    recording = None
    if replay is not None:
        from workbench.record import open_recording

        recording = open_recording(replay)  # a truncated or foreign file: RecordingError, one line
    return WorkbenchApp(options=options, replay=recording, theme=theme)
