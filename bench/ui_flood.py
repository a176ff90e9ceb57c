"""UI under a syscall flood: keypress-to-repaint latency and memory while 500k events/s hit the bus.

Runs the real app (build_app) headless at 120x40 with a session screen fed by a bus. A producer
thread publishes `SyscallBatch`es at the target rate until 10M syscalls have gone by; meanwhile the
main task presses `space` (follow/pause in the stream) and times until the screen shows the new
mode and the app has no message left to process (the repaint is done). The same presses are timed
with no flood, alternating idle and flood rounds, so `ratio` = flood p50 / idle p50.

    .venv/bin/python bench/ui_flood.py [--events 10000000] [--rate 500000]

Goal (issue 4): p99 latency < 100 ms and RSS < 200 MB after 10M events. The last line is one JSON
object: {"bench": "ui_flood", "ratio": ..., ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from textual import events  # noqa: E402

from workbench.core import events as ev  # noqa: E402
from workbench.core.bus import Bus  # noqa: E402
from workbench.tui.app import build_app  # noqa: E402
from workbench.tui.screens.session import SessionScreen  # noqa: E402
from workbench.tui.widgets.syscall_stream import StreamView  # noqa: E402

BATCH = 500
POOL = 64  # distinct batches, reused: the producer's own cost must not be what we measure


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_pool() -> list[ev.SyscallBatch]:
    names = ("read", "openat", "write", "close", "mmap", "newfstatat", "futex")
    pool = []
    for b in range(POOL):
        calls = []
        for i in range(BATCH):
            n = b * BATCH + i
            failed = n % 7 == 3
            calls.append(ev.Syscall(ts_ns=n * 2000, pid=100 + n % 5, tid=100 + n % 5, comm="flood",
                                    nr=n % 300, name=names[n % len(names)], args=(n, 0, 0, 0, 0, 0),
                                    ret=-2 if failed else 0, errno="ENOENT" if failed else None,
                                    duration_ns=500 + n % 900,
                                    decoded={"pathname": f"/usr/lib/file{n % 97}"} if n % 3 == 0 else {}))
        pool.append(ev.SyscallBatch(ts_ns=b, syscalls=tuple(calls)))
    return pool


class Producer(threading.Thread):
    def __init__(self, bus: Bus, total: int, rate: float) -> None:
        super().__init__(name="flood-producer", daemon=True)
        self.bus, self.total, self.rate = bus, total, rate
        self.sent = 0
        self.elapsed = 0.0
        self.pool = make_pool()

    def run(self) -> None:
        start = time.perf_counter()
        due = start
        interval = BATCH / self.rate
        i = 0
        while self.sent < self.total:
            self.bus.publish(self.pool[i % POOL])
            i += 1
            self.sent += BATCH
            due += interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        self.elapsed = time.perf_counter() - start


class RepaintProbe:
    """Times a key press until the frame showing its effect goes out.

    Headless, `App._display` receives every frame (the compositor has done its work) and writes
    nothing; we also render each frame to a string, the bytes a terminal would be sent, so the
    measured path is: key event -> bindings -> widgets -> layout -> compositor -> ANSI text.
    """

    def __init__(self, app, view: StreamView) -> None:
        self.app, self.view = app, view
        self.status = view.parent.query_one("#stream-status")
        self.want: bool | None = None
        self.t0 = 0.0
        self.done = asyncio.Event()
        self.frames = 0
        self._sink = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor",
                             width=app.size.width, legacy_windows=False)
        self._display = app._display
        app._display = self._on_frame

    def _on_frame(self, screen, renderable) -> None:
        self._display(screen, renderable)
        if renderable is None:
            return
        self.frames += 1
        self._sink.file.seek(0)
        self._sink.file.truncate()
        self._sink.print(renderable, end="")
        shown = "following" in self.status.text
        if self.want is not None and self.view.following == self.want and shown == self.want:
            self.latency = time.perf_counter() - self.t0
            self.want = None
            self.done.set()

    async def press_space(self) -> float:
        self.want = not self.view.following
        self.done.clear()
        self.t0 = time.perf_counter()
        self.app.post_message(events.Key("space", " "))
        await asyncio.wait_for(self.done.wait(), timeout=10)
        return self.latency


async def run(events: int, rate: float, size: tuple[int, int], filter_text: str = "") -> dict:
    app = build_app()
    result: dict = {}
    async with app.run_test(size=size) as pilot:
        bus = Bus()
        screen = SessionScreen(bus=bus)
        app.call_later(app.push_screen, screen)
        while not (screen.is_mounted and screen.bridge._timer is not None):
            await pilot.pause()
        view = screen.query_one(StreamView)
        if filter_text:  # a filter costs a test per arriving syscall: measure that case too
            screen.query_one("#stream").apply_filter(filter_text)
        view.focus()
        await pilot.pause()
        probe = RepaintProbe(app, view)
        rss_start = rss_mb()
        idle, flood = [], []
        producer = Producer(bus, events, rate)
        # idle and flood rounds alternate: 5 presses idle, then the flood with presses throughout
        for _ in range(5):
            idle.append(await probe.press_space())
            await asyncio.sleep(0.05)
        producer.start()
        rss_peak = rss_start
        while producer.is_alive():
            flood.append(await probe.press_space())
            rss_peak = max(rss_peak, rss_mb())
            await asyncio.sleep(0.2)
        producer.join()
        while screen.state.syscalls_seen + screen.state.stream_dropped < producer.sent:
            await pilot.pause()
        for _ in range(5):
            idle.append(await probe.press_space())
            await asyncio.sleep(0.05)
        rss_end = rss_mb()
        q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000  # noqa: E731
        result = {
            "bench": "ui_flood",
            "ratio": round(statistics.median(flood) / statistics.median(idle), 2),
            "events": producer.sent,
            "rate_target": rate,
            "rate_achieved": round(producer.sent / producer.elapsed),
            "presses_flood": len(flood),
            "latency_ms_flood_p50": round(q(flood, 0.5), 1),
            "latency_ms_flood_p99": round(q(flood, 0.99), 1),
            "latency_ms_flood_max": round(max(flood) * 1000, 1),
            "latency_ms_idle_p50": round(q(idle, 0.5), 1),
            "rss_mb_start": round(rss_start, 1),
            "rss_mb_peak": round(rss_peak, 1),
            "rss_mb_end": round(rss_end, 1),
            "ui_seen": screen.state.syscalls_seen,
            "ui_dropped": screen.state.stream_dropped,
            "stream_rows_kept": len(view.rows),
            "goal_latency_ms": 100,
            "goal_rss_mb": 200,
            "frames": probe.frames,
            "filter": filter_text,
            "size": list(size),
        }
        await pilot.press("q")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rate", type=float, default=500_000)
    parser.add_argument("--filter", default="", help="a stream filter to apply, e.g. 'failed'")
    args = parser.parse_args()
    result = asyncio.run(run(args.events, args.rate, (120, 40), args.filter))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
