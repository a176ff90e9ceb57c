"""Syscall top: counts, errors by errno and latency percentiles from the exact in-kernel aggregates.

The numbers come from `SyscallStats` (in-kernel maps), so they stay exact when the stream drops
events; p50/p99 are read off the log2 latency histogram, so they are upper bounds of a power of two.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable

from workbench.core import events as ev
from workbench.tui.state import format_ns, percentile_ns

SORT_KEYS = ("count", "errors", "p99", "name")


def _row_key(stat: ev.SyscallStat, key: str):
    if key == "name":
        return stat.name
    if key == "errors":
        return -sum(stat.errors.values())
    if key == "p99":
        return -(percentile_ns(stat.latency_log2_ns, 0.99) or 0)
    return -stat.count


class SyscallTop(DataTable):
    """A sortable table of per-syscall aggregates (press `s` to change the order)."""

    ALLOW_MAXIMIZE = True  # `z` zooms a pane to the whole screen

    BINDINGS = [Binding("s", "next_sort", "Sort")]

    def __init__(self, **kwargs) -> None:
        super().__init__(zebra_stripes=True, cursor_type="row", **kwargs)
        self.sort_key = "count"
        self._stats: tuple[ev.SyscallStat, ...] = ()
        self.border_title = "Top (by count)"

    def on_mount(self) -> None:
        # Fixed widths: columns that resize as numbers grow would jump around during a run.
        for label, width in (("syscall", 16), ("count", 9), ("errors", 7), ("p50", 9), ("p99", 9),
                             ("by errno", 30)):
            self.add_column(label, width=width)

    def show(self, stats: tuple[ev.SyscallStat, ...]) -> None:
        self._stats = stats
        ordered = sorted(stats, key=lambda s: (_row_key(s, self.sort_key), s.name))
        row = self.cursor_row
        self.clear()
        for s in ordered:
            errors = sum(s.errors.values())
            by_errno = " ".join(f"{k}:{v}" for k, v in sorted(s.errors.items(), key=lambda kv: -kv[1]))
            self.add_row(s.name, str(s.count), str(errors or ""),
                         format_ns(percentile_ns(s.latency_log2_ns, 0.5)),
                         format_ns(percentile_ns(s.latency_log2_ns, 0.99)), by_errno, key=s.name)
        if ordered:
            self.move_cursor(row=min(row, len(ordered) - 1))

    def action_next_sort(self) -> None:
        self.sort_key = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
        self.border_title = f"Top (by {self.sort_key})"
        self.show(self._stats)
