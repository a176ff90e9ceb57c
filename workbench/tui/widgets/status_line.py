"""A one-line status that repaints without a layout pass.

`Static.update()` asks for a new layout of the whole screen; a status that changes on every drain
of a flood would make every frame a full reflow. This one only repaints its own line.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class StatusLine(Widget):
    DEFAULT_CSS = "StatusLine { height: 1; width: 1fr; }"

    def __init__(self, text: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._text = text

    def show(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.refresh()

    @property
    def text(self) -> str:
        return self._text

    def render(self) -> Text:
        return Text(self._text, no_wrap=True, overflow="ellipsis")
