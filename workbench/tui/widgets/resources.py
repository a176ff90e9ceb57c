"""Resource charts: memory, cpu and pids over time, with the cgroup limit drawn across."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.widget import Widget

from workbench.core import events as ev
from workbench.tui.state import format_bytes

_BLOCKS = " ▁▂▃▄▅▆▇█"


def chart_scale(values: list[float], limit: float | None) -> tuple[float, bool]:
    """The value of the top row, and whether the limit is drawn. A limit far above what is used
    would flatten every bar to nothing: then it is named in the caption instead of drawn."""
    peak = max(values, default=0.0)
    if limit and limit <= 4 * peak:
        return max(limit, peak), True
    return max(peak * 1.25, 1e-9), False


def chart_lines(values: list[float], limit: float | None, width: int, height: int) -> list[Text]:
    """Bars of the last `width` values; a dashed red row marks the limit when it is in range."""
    values = values[-width:]
    top, drawn = chart_scale(values, limit)
    limit_row = min(height - 1, int((1 - limit / top) * height)) if drawn else None
    cell = top / height
    lines = []
    for row in range(height):
        floor = (height - row - 1) * cell
        text = Text()
        for v in values:
            fill = (v - floor) / cell
            ch = _BLOCKS[max(0, min(8, int(fill * 8)))] if fill > 0 else " "
            if ch == " " and row == limit_row:
                text.append("╌", style="bold red")
            else:
                text.append(ch, style="cyan")
        if row == limit_row:
            text.append("╌" * (width - len(values)), style="bold red")
        lines.append(text)
    return lines


class LimitChart(Widget):
    """One series with its limit: `show(values, limit, caption)`."""

    DEFAULT_CSS = "LimitChart { height: 1fr; min-height: 2; text-wrap: nowrap; text-overflow: ellipsis; }"

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = title
        self.values: list[float] = []
        self.limit: float | None = None
        self.caption = ""

    def show(self, values: list[float], limit: float | None, caption: str) -> None:
        self.values, self.limit, self.caption = values, limit, caption
        self.refresh()

    def render(self) -> Text:
        width, height = max(self.size.width, 1), max(self.size.height - 1, 1)
        out = Text(f"{self.label}: {self.caption}", style="bold", no_wrap=True)
        if self.limit and not chart_scale(self.values, self.limit)[1]:
            out.append("  (limit far above)", style="dim")
        for line in chart_lines(self.values, self.limit, width, height):
            out.append("\n")
            out.append_text(line)
        return out


class Resources(Vertical, can_focus=True):
    """Memory, cpu and pids charts for the sandbox's cgroup."""

    ALLOW_MAXIMIZE = True  # `z` zooms a pane to the whole screen

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "Resources"

    def compose(self):
        yield LimitChart("memory", id="chart-memory")
        yield LimitChart("cpu", id="chart-cpu")
        yield LimitChart("pids", id="chart-pids")

    def show(self, samples: list[ev.ResourceSample], cpus_limit: float | None, hz: float = 4.0) -> None:
        if not samples:
            return
        last = samples[-1]
        # A spike between two samples only shows in the peak: plot the interval's peak when it rose.
        mem, prev_peak = [], 0
        for s in samples:
            mem.append(s.memory_peak_bytes if s.memory_peak_bytes > prev_peak else s.memory_bytes)
            prev_peak = max(prev_peak, s.memory_peak_bytes)
        self.query_one("#chart-memory", LimitChart).show(
            mem, last.memory_limit_bytes,
            f"{format_bytes(last.memory_bytes)} peak {format_bytes(last.memory_peak_bytes)}"
            f" / limit {format_bytes(last.memory_limit_bytes)}"
            + (f"  OOM kills {last.oom_kills}" if last.oom_kills else ""))
        # cpu: cores in use between samples, from the cumulative cpu seconds
        cores = [0.0] + [max(b.cpu_seconds - a.cpu_seconds, 0.0) / max((b.ts_ns - a.ts_ns) / 1e9, 1e-3)
                         for a, b in zip(samples, samples[1:])]
        self.query_one("#chart-cpu", LimitChart).show(
            cores, cpus_limit, f"{cores[-1]:.2f} cores, {last.cpu_seconds:.2f} s"
            + (f" / limit {cpus_limit:g}" if cpus_limit else ""))
        self.query_one("#chart-pids", LimitChart).show(
            [float(s.pids) for s in samples], last.pids_limit,
            f"{last.pids} / limit {last.pids_limit if last.pids_limit else 'none'}")
