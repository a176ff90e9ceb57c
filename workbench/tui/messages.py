"""Textual messages of the workbench: small documented classes, all in one place.

The bridge posts `StateChanged` (merged while queued: a flood of them costs one repaint) and
`Lifecycle` (one per lifecycle event, never merged: tests and the screen follow the run with them).
Widgets post the others upwards; screens turn them into Session API calls.
"""

from __future__ import annotations

from textual.message import Message

from workbench.core import events as ev


class StateChanged(Message, bubble=False):
    """Parts of the session state changed: `stream`, `top`, `processes`, ... ."""

    def __init__(self, parts: set[str]) -> None:
        super().__init__()
        self.parts = set(parts)

    def can_replace(self, message: Message) -> bool:
        # Called on the queued message with the next one: fold ours into it and let it go alone.
        if isinstance(message, StateChanged):
            message.parts |= self.parts
            return True
        return False


class StateReset(Message, bubble=False):
    """The bridge started over with an empty state (a replay jumped backwards)."""

    def __init__(self, state) -> None:
        super().__init__()
        self.state = state


class Lifecycle(Message, bubble=False):
    """A session lifecycle event arrived (SessionStarted, SandboxReady, ..., SessionEnded)."""

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event


class SessionFailed(Message):
    """The session could not start or run: one line for people (cause and fix)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class StdinLine(Message):
    """The user typed a line for the sandboxed program's stdin."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data


class StdinClosed(Message):
    """The user closed the sandboxed program's stdin (end of file)."""


class ShowSyscall(Message):
    """The user asked for the detail of one syscall."""

    def __init__(self, syscall: ev.Syscall) -> None:
        super().__init__()
        self.syscall = syscall


class LaunchRequested(Message):
    """The launch screen (or the profile editor) asks for a run with these options."""

    def __init__(self, options: object) -> None:
        super().__init__()
        self.options = options


class ShellRequested(Message):
    """Hand the terminal to an interactive shell in a sandbox made like this run's (`options`)."""

    def __init__(self, options: object) -> None:
        super().__init__()
        self.options = options
