"""Helpers for TUI tests: wait for a state with a deadline (never a fixed sleep), feed a bus."""

from __future__ import annotations


import pytest

from workbench.core.bus import Bus
from workbench.tui.app import build_app
from workbench.tui.screens.session import SessionScreen


from tests.conftest import wait_for_app as wait_for  # noqa: E402,F401 - the TUI tests' name for it


class Recorder:
    """A message_hook that keeps the messages of the types we follow, once each (the hook sees a
    bubbling message at every node it passes)."""

    def __init__(self, *types: type) -> None:
        self.types = types
        self.messages: list = []
        self._seen: set[int] = set()

    def __call__(self, message) -> None:
        if isinstance(message, self.types) and id(message) not in self._seen:
            self._seen.add(id(message))
            self.messages.append(message)


async def open_bus_session(app, pilot) -> tuple[SessionScreen, Bus]:
    """A session screen fed by a bare bus (no sandbox), on top of the launch screen."""
    bus = Bus()
    screen = SessionScreen(bus=bus)
    # Pushed from the app's own task, as the app does it, so that the message hook sees its timers.
    app.call_later(app.push_screen, screen)
    await wait_for(pilot, lambda: screen.is_mounted and screen.bridge._timer is not None, "the bridge")
    return screen, bus


@pytest.fixture
def app():
    return build_app()


@pytest.fixture
def live(no_leaks):
    """For tests that launch real sandboxes: compiled probes are cached per process on purpose (a
    compile costs most of a second); free them before `no_leaks` counts BPF descriptors."""
    yield
    from workbench.tracing import loader

    loader.release_cached()
