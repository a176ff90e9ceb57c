"""The one bridge from the event bus to Textual.

The bus calls us in producer threads (probe poller, output pump, samplers) at up to hundreds of
thousands of syscalls per second, so the callback only appends to bounded deques (atomic in
CPython: no lock). A UI-thread timer drains them into `SessionState` a few times a second and posts
one merged `StateChanged`, plus one `Lifecycle` per lifecycle event. When the UI falls behind, the
deques drop their oldest entries and the drop is counted and shown, never hidden.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from textual.message_pump import MessagePump
from textual.timer import Timer

from workbench.core import events as ev
from workbench.core.bus import Bus
from workbench.tui.messages import Lifecycle, StateChanged, StateReset
from workbench.tui.state import SessionState

DRAIN_HZ = 15
INBOX_BATCHES = 2_048
"""Syscall batches waiting for the UI; beyond this the oldest are dropped (and counted)."""
INBOX_EVENTS = 20_000
"""Other events waiting for the UI (output floods are the usual reason to reach it)."""

_LIFECYCLE = (ev.SessionStarted, ev.SandboxReady, ev.SandboxReleased, ev.SandboxExited,
              ev.SessionEnded)


class EventBridge:
    """Subscribes to `bus`; drains into `state` and posts messages to `target` at `hz`."""

    def __init__(self, bus: Bus, state: SessionState, target: MessagePump, hz: float = DRAIN_HZ):
        self.bus = bus
        self.state = state
        self.target = target
        self.hz = hz
        self._batches: deque[tuple[ev.Syscall, ...]] = deque(maxlen=INBOX_BATCHES)
        self._events: deque[ev.Event] = deque(maxlen=INBOX_EVENTS)
        # Counters written by producer threads only, read by the UI: a stale read is harmless.
        self._syscalls_in = 0
        self._events_in = 0
        self._syscalls_out = 0
        self._events_out = 0
        self.events_dropped = 0
        self._epoch = 0
        self._drained_epoch = 0
        self._reset_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._timer: Timer | None = None

    def start(self) -> None:
        self._unsubscribe = self.bus.subscribe(self._on_event)
        self._timer = self.target.set_interval(1 / self.hz, self.drain, name="event-bridge")

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _on_event(self, event: ev.Event) -> None:
        # Runs in the producer's thread: append and return, nothing else.
        if type(event) is ev.SyscallBatch:
            self._batches.append(event.syscalls)
            self._syscalls_in += len(event.syscalls)
        else:
            self._events.append(event)
            self._events_in += 1

    def reset(self) -> None:
        """Forget everything (a replay jumped backwards). Any thread; the producer is quiet meanwhile."""
        with self._reset_lock:
            self._batches.clear()
            self._events.clear()
            self._syscalls_in = self._syscalls_out = self._events_in = self._events_out = 0
            self._epoch += 1

    def drain(self) -> None:
        """Move what arrived into the state and tell the screen what changed (UI thread)."""
        with self._reset_lock:
            if self._epoch != self._drained_epoch:
                self._drained_epoch = self._epoch
                self.state = SessionState()
                self.target.post_message(StateReset(self.state))
            self._drain()

    def _drain(self) -> None:
        parts: set[str] = set()
        new: list[ev.Syscall] = []
        skipped = 0
        keep = self.state.stream.maxlen or 0
        batches, events = self._batches, self._events
        # At most one inbox's worth per tick: a producer faster than us must not keep us here.
        for _ in range(INBOX_BATCHES):
            try:
                batch = batches.popleft()
            except IndexError:
                break
            new.extend(batch)
            self._syscalls_out += len(batch)
            # Only the last `keep` can ever be shown: count the older ones, don't copy them around.
            if len(new) > 2 * keep:
                skipped += len(new) - keep
                del new[: len(new) - keep]
        if new:
            self.state.add_syscalls(new, skipped)
            parts.add("stream")
        # Drops are whatever went in but never came out (nor is still waiting).
        waiting = sum(len(b) for b in batches)
        dropped = self._syscalls_in - self._syscalls_out - waiting
        if dropped != self.state.stream_dropped:
            self.state.stream_dropped = max(dropped, 0)
            parts.add("stream")
        lifecycle: list[ev.Event] = []
        for _ in range(INBOX_EVENTS):
            try:
                event = events.popleft()
            except IndexError:
                break
            self._events_out += 1
            part = self.state.apply(event)
            if part:
                parts.add(part)
            if isinstance(event, _LIFECYCLE):
                lifecycle.append(event)
        self.events_dropped = max(self._events_in - self._events_out - len(events), 0)
        if self.events_dropped != self.state.events_dropped:
            self.state.events_dropped = self.events_dropped
            parts.add("notices")
        for event in lifecycle:
            self.target.post_message(Lifecycle(event))
        if parts:
            self.target.post_message(StateChanged(parts))
