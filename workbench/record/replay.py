"""Feed a recording's events to a Bus on a timeline: play at any speed, pause, step, jump.

Subscribers see the same typed events, in the same order, as during the live session, so the TUI
needs no replay-specific code except a reset: jumping backwards calls `on_reset()` (drop what you
show), then publishes every event up to the new position at once. The player runs in one thread
we own; all methods are thread-safe and return at once.

    r = Replayer(open_recording("run.sqlite"), bus, on_reset=view.clear)
    r.play(speed=4.0)      # 4x; math.inf = as fast as possible
    r.pause(); r.step()    # one event
    r.seek(2_000_000_000)  # 2 s after the first event
    r.close()
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Iterator

from workbench.core.bus import Bus
from workbench.core.events import Event
from workbench.record.reader import Recording


class Replayer:
    """A timeline over a `Recording`, publishing its events on `bus`."""

    def __init__(self, recording: Recording, bus: Bus, on_reset: Callable[[], None] | None = None,
                 on_finished: Callable[[], None] | None = None):
        self.recording = recording
        self.bus = bus
        self.on_reset = on_reset
        self.on_finished = on_finished
        self.duration_ns = recording.duration_ns
        """Length of the timeline: first to last event."""
        self._cond = threading.Condition()
        self._iter: Iterator[Event] = recording.events()
        self._next: Event | None = None
        self._position = 0  # ns after the first event, of the last event published
        self._speed = 1.0
        self._playing = False
        self._finished = False
        self._closed = False
        self._anchor: tuple[float, int] | None = None  # (wall time, position) when play last began
        self._thread = threading.Thread(target=self._run, name="workbench-replayer", daemon=True)
        self._thread.start()

    # --- state ---------------------------------------------------------------------------------

    @property
    def position_ns(self) -> int:
        """Time of the last published event, ns after the recording's first event."""
        return self._position

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def finished(self) -> bool:
        """Every event has been published."""
        return self._finished

    # --- controls ------------------------------------------------------------------------------

    def play(self, speed: float | None = None) -> None:
        """Start or resume at `speed` times real time (keeps the current speed when None)."""
        with self._cond:
            if speed is not None:
                self._set_speed(speed)
            self._playing = True
            self._anchor = None
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._playing = False
            self._cond.notify_all()

    def set_speed(self, speed: float) -> None:
        with self._cond:
            self._set_speed(speed)
            self._anchor = None
            self._cond.notify_all()

    def _set_speed(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._speed = speed

    def step(self, count: int = 1) -> list[Event]:
        """Pause and publish the next `count` events; returns them (empty at the end)."""
        with self._cond:
            self._playing = False
            published = []
            for _ in range(count):
                event = self._take()
                if event is None:
                    break
                self._publish(event)
                published.append(event)
            self._cond.notify_all()
            return published

    def seek(self, position_ns: int) -> None:
        """Jump to `position_ns` after the first event. Events up to it are published at once;
        jumping backwards first calls `on_reset()` and starts again from the beginning."""
        position_ns = max(0, min(position_ns, self.duration_ns))
        with self._cond:
            if position_ns < self._position or (self._finished and position_ns < self.duration_ns):
                self._rewind()
            limit = self.recording.start_ns + position_ns
            while True:
                event = self._peek()
                if event is None or event.ts_ns > limit:
                    break
                self._publish(self._take())
            self._position = position_ns
            self._anchor = None
            self._cond.notify_all()

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Block until every event has been published (or `timeout` seconds); True if finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._finished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        """Stop the player thread. Idempotent; the recording stays open (its owner closes it)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    # --- the player ----------------------------------------------------------------------------

    def _peek(self) -> Event | None:
        if self._next is None:
            self._next = next(self._iter, None)
        return self._next

    def _take(self) -> Event | None:
        event = self._peek()
        self._next = None
        if event is None:
            self._mark_finished()
        return event

    def _mark_finished(self) -> None:
        if not self._finished:
            self._finished = True
            self._playing = False
            self._cond.notify_all()
            if self.on_finished is not None:
                self.on_finished()

    def _rewind(self) -> None:
        self._iter = self.recording.events()
        self._next = None
        self._position = 0
        self._finished = False
        if self.on_reset is not None:
            self.on_reset()

    def _publish(self, event: Event) -> None:
        self._position = max(self._position, event.ts_ns - self.recording.start_ns)
        self.bus.publish(event)
        # Events past the last one do not exist: finish as soon as the iterator is dry.
        if self._peek() is None:
            self._mark_finished()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._playing:
                    self._cond.wait()
                    continue
                event = self._peek()
                if event is None:
                    self._mark_finished()
                    continue
                if self._anchor is None:
                    self._anchor = (time.monotonic(), self._position)
                wall, base = self._anchor
                due = wall + (event.ts_ns - self.recording.start_ns - base) / 1e9 / self._speed \
                    if not math.isinf(self._speed) else 0.0
                left = due - time.monotonic()
                if left > 0:
                    self._cond.wait(left)  # woken early by pause/seek/speed changes
                    continue
                self._publish(self._take())
