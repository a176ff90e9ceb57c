"""The app's stdout and stderr, and a line to type to its stdin."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, RichLog

from workbench.tui.messages import StdinClosed, StdinLine
from workbench.tui.state import OUTPUT_KEEP


class OutputPane(Vertical):
    """Output lines (stderr in red) and an input whose lines go to the program's stdin."""

    ALLOW_MAXIMIZE = True  # `z` zooms a pane to the whole screen

    BINDINGS = [Binding("ctrl+d", "close_stdin", "EOF to stdin", priority=True)]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "Output"
        self._shown = 0

    def compose(self):
        yield RichLog(id="output-log", max_lines=OUTPUT_KEEP, wrap=False, markup=False)
        yield Input(placeholder="type a line for the program's stdin, Enter sends", id="stdin")

    def show(self, lines, total_appended: int) -> None:
        """`lines` is the bounded deque of (stream, text); show what was appended since last time."""
        new = total_appended - self._shown
        self._shown = total_appended
        if new <= 0:
            return
        log = self.query_one(RichLog)
        for stream, text in list(lines)[-min(new, len(lines)):]:
            log.write(Text(text, style="red" if stream == "stderr" else ""))

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        self.post_message(StdinLine((message.value + "\n").encode()))
        message.input.value = ""

    def action_close_stdin(self) -> None:
        self.post_message(StdinClosed())
