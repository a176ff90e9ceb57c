"""The event bus: producers publish typed events, subscribers receive them in the producer's thread.

Subscribers must be quick (append to a buffer, post a message): a syscall stream publishes batches
at hundreds of thousands of events per second. A subscriber that raises is unsubscribed and the
error is published as a `Notice`, so one broken consumer never stops the others or the producer.
"""

from __future__ import annotations

import threading
from typing import Callable

from workbench.core.events import Event, Notice

Subscriber = Callable[[Event], None]


class Bus:
    """Thread-safe publish/subscribe for `Event`s, optionally filtered by event type."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[tuple[Subscriber, tuple[type, ...] | None], ...] = ()
        self.closed = False

    def subscribe(self, callback: Subscriber, *types: type) -> Callable[[], None]:
        """Call `callback(event)` for each published event (of `types`, if given).

        Returns a function that unsubscribes.
        """
        entry = (callback, tuple(types) or None)
        with self._lock:
            self._subscribers = self._subscribers + (entry,)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not entry)

        return unsubscribe

    def publish(self, event: Event) -> None:
        # Copy-on-write tuple: publishing never takes the lock.
        for entry in self._subscribers:
            callback, types = entry
            if types is not None and not isinstance(event, types):
                continue
            try:
                callback(event)
            except Exception as exc:  # a broken consumer must not stop the producer
                with self._lock:
                    self._subscribers = tuple(s for s in self._subscribers if s is not entry)
                if not isinstance(event, Notice):
                    self.publish(Notice(level="error", text=f"subscriber {callback!r} failed: {exc!r}"))

    def close(self) -> None:
        self.closed = True
