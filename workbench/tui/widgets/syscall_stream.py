"""The syscall stream: follow or pause, filter, search, and open one event in detail.

Only the visible lines are ever rendered (a virtual list over at most `STREAM_KEEP` rows), and
following appends just the syscalls that arrived since the last refresh, so a flood costs the UI
a slice of a deque per tick, not a repaint of everything.
"""

from __future__ import annotations

from itertools import islice

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input

from workbench.core import events as ev
from workbench.tui.messages import ShowSyscall
from workbench.tui.widgets.status_line import StatusLine
from workbench.tui.state import STREAM_KEEP, SessionState, StreamFilter, format_ns

_PLAIN = Style()
_FAILED = Style(color="red")
_DENIED = Style(color="white", bgcolor="red", bold=True)
_MATCH = Style(color="black", bgcolor="yellow")


def format_args(sc: ev.Syscall, width: int = 60) -> str:
    if sc.decoded:
        text = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in sc.decoded.items())
    else:
        text = ", ".join(hex(a) for a in sc.args[:3])
    return text if len(text) <= width else text[: width - 1] + "…"


def format_syscall(sc: ev.Syscall, t0_ns: int) -> str:
    """One line of the stream: time, pid, comm, call(args) = result, errno, duration."""
    result = "DENIED " + (sc.errno or "") if sc.denied else (str(sc.ret) if sc.errno is None else f"-1 {sc.errno}")
    dur = format_ns(sc.duration_ns) if sc.duration_ns else ""
    return (f"{(sc.ts_ns - t0_ns) / 1e9:10.6f} {sc.pid:>7} {sc.comm[:12]:<12} "
            f"{sc.name}({format_args(sc)}) = {result} {dur}").rstrip()


class StreamView(ScrollView, can_focus=True):
    """A virtual list of syscalls with a cursor."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-20)", show=False),
        Binding("pagedown", "cursor(20)", show=False),
        Binding("home", "first", show=False),
        Binding("end", "follow", "Follow", show=False),
        Binding("enter", "detail", "Detail"),
        Binding("space", "toggle_follow", "Follow/pause"),
    ]

    class FollowChanged(Message):
        def __init__(self, following: bool) -> None:
            super().__init__()
            self.following = following

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows: list[ev.Syscall] = []
        self.cursor = -1
        self.following = True
        self.filter = StreamFilter()
        self.search = ""
        self.t0_ns = 0
        self.behind = 0
        """Syscalls that arrived while paused (not in `rows` until following again)."""
        self._seen = 0

    # --- values in -----------------------------------------------------------------------------

    def sync(self, state: SessionState) -> None:
        self.t0_ns = state.t0_ns or 0
        arrived = state.syscalls_seen - self._seen
        self._seen = state.syscalls_seen
        if arrived <= 0:
            return
        if not self.following:
            self.behind += arrived
            return
        take = min(arrived, len(state.stream))
        new = list(islice(reversed(state.stream), take))
        new.reverse()
        if not self.filter.empty:
            new = list(filter(self.filter.predicate(), new))
        self.rows.extend(new)
        if len(self.rows) > STREAM_KEEP:
            del self.rows[: len(self.rows) - STREAM_KEEP]
        self._rows_changed()

    def rebuild(self, state: SessionState) -> None:
        """Refilter everything still kept (after a filter change or on resuming)."""
        self.t0_ns = state.t0_ns or 0
        self._seen = state.syscalls_seen
        self.behind = 0
        f = self.filter
        self.rows = list(state.stream) if f.empty else list(filter(f.predicate(), state.stream))
        self._rows_changed()

    def _rows_changed(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows))
        if self.following:
            self.cursor = len(self.rows) - 1
            self.scroll_end(animate=False, immediate=True)
        else:
            self.cursor = min(self.cursor, len(self.rows) - 1)
        self.refresh()

    # --- rendering -----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.size.width
        if not 0 <= index < len(self.rows):
            return Strip.blank(width)
        sc = self.rows[index]
        text = format_syscall(sc, self.t0_ns)[:width].ljust(width)
        style = _DENIED if sc.denied else _FAILED if sc.errno else _PLAIN
        if index == self.cursor and self.has_focus:
            style = style + Style(reverse=True)
        elif self.search and self.search in text:
            style = _MATCH
        return Strip([Segment(text, style)], width)

    # --- actions -------------------------------------------------------------------------------

    def _set_following(self, following: bool) -> None:
        if following != self.following:
            self.following = following
            self.post_message(self.FollowChanged(following))

    def _show_cursor(self) -> None:
        self.scroll_to_region(Region(0, self.cursor, 1, 1), animate=False, immediate=True)
        self.refresh()

    def on_click(self, event) -> None:
        """A click selects the row under the pointer (and pauses, as moving the cursor does)."""
        index = self.scroll_offset.y + event.y
        if 0 <= index < len(self.rows):
            self._set_following(False)
            self.cursor = index
            self.refresh()
            if event.chain == 2:  # a double click opens it
                self.action_detail()

    def action_cursor(self, delta: int) -> None:
        if not self.rows:
            return
        self._set_following(False)
        self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))
        self._show_cursor()

    def action_first(self) -> None:
        self.action_cursor(-len(self.rows))

    def action_follow(self) -> None:
        self._set_following(True)

    def action_toggle_follow(self) -> None:
        self._set_following(not self.following)

    def action_detail(self) -> None:
        if 0 <= self.cursor < len(self.rows):
            self.post_message(ShowSyscall(self.rows[self.cursor]))

    def find_next(self) -> bool:
        """Move the cursor to the next row containing the search text (wrapping)."""
        if not self.search or not self.rows:
            return False
        n = len(self.rows)
        start = self.cursor + 1
        for step in range(n):
            i = (start + step) % n
            if self.search in format_syscall(self.rows[i], self.t0_ns):
                self._set_following(False)
                self.cursor = i
                self._show_cursor()
                return True
        return False


class SyscallStream(Vertical):
    """The stream pane: a status line, an input for filter or search, and the list."""

    ALLOW_MAXIMIZE = True  # `z` zooms a pane to the whole screen

    BINDINGS = [
        Binding("f", "edit('filter')", "Filter"),
        Binding("slash", "edit('search')", "Search"),
        Binding("n", "next_match", "Next match"),
        Binding("escape", "close_input", show=False),
    ]

    class FilterChanged(Message):
        """The user changed the filter: the screen answers with `rebuild(state)`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "Syscalls"
        self._editing = "filter"
        self._dropped = 0
        self._lost = 0

    def compose(self):
        yield StatusLine(id="stream-status")
        yield Input(placeholder="filter: openat errno:ENOENT pid:7 failed denied", id="stream-input")
        yield StreamView(id="stream-view")

    def on_mount(self) -> None:
        self.query_one("#stream-input").display = False
        self._show_status()

    @property
    def view(self) -> StreamView:
        return self.query_one(StreamView)

    def sync(self, state: SessionState) -> None:
        self._dropped, self._lost = state.stream_dropped, state.kernel_lost
        self.view.sync(state)
        self._show_status()

    def rebuild(self, state: SessionState) -> None:
        self.view.rebuild(state)
        self._show_status()

    def _show_status(self) -> None:
        view = self.view
        mode = "following" if view.following else f"paused (+{view.behind} new)"
        parts = [mode, f"filter: {view.filter.describe()}", f"{len(view.rows)} shown"]
        if view.search:
            parts.append(f"search: {view.search!r}")
        if self._dropped or self._lost:
            parts.append(f"dropped {self._dropped} in UI, lost {self._lost} in kernel")
        self.query_one("#stream-status", StatusLine).show(" · ".join(parts))

    def on_stream_view_follow_changed(self, message: StreamView.FollowChanged) -> None:
        if message.following:
            self.post_message(self.FilterChanged())  # catch up on what arrived while paused
        self._show_status()

    def action_edit(self, what: str) -> None:
        self._editing = what
        field = self.query_one("#stream-input", Input)
        field.placeholder = ("search: text to find" if what == "search" else
                             "filter: openat errno:ENOENT pid:7 failed denied")
        field.value = self.view.search if what == "search" else (
            "" if self.view.filter.empty else self.view.filter.describe())
        field.display = True
        field.focus()

    def action_close_input(self) -> None:
        self.query_one("#stream-input").display = False
        self.view.focus()

    def action_next_match(self) -> None:
        self.view.find_next()
        self._show_status()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        if self._editing == "search":
            self.view.search = message.value
            self.view.find_next()
        else:
            self.view.filter = StreamFilter.parse(message.value)
            self.post_message(self.FilterChanged())
        self.action_close_input()
        self._show_status()

    def apply_filter(self, text: str) -> None:
        """Set the filter as if typed (used by the screen's shortcuts and tests)."""
        self.view.filter = StreamFilter.parse(text)
        self.post_message(self.FilterChanged())
