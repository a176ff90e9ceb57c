"""The TUI under a syscall flood: a million syscalls as fast as `dd` makes them, live on the
session screen. The UI keeps answering, and every syscall is either shown, or counted as skipped
by the UI, dropped by its inbox, or lost in the kernel: the three add up to the exact total."""

from __future__ import annotations


import pytest

from workbench.sandbox import profile as prof
from workbench.session import SessionOptions
from workbench.tui.app import build_app
from workbench.tui.capture import screen_text
from workbench.tui.screens.session import SessionScreen

pytestmark = [pytest.mark.asyncio, pytest.mark.privileged]


from tests.conftest import wait_for_app as wait_for  # noqa: E402


async def test_a_million_syscalls_on_screen_lose_nothing_uncounted():
    options = SessionOptions(profile=prof.load("default"), stdin="null",
                             command=["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=500001", "status=none"])
    app = build_app(options=options)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen.state.ended,
                           "the flood's session to end")
            state = app.screen.state
            stats_sum = lambda: sum(s.count for s in state.stats)  # noqa: E731
            # The drain runs on a timer: wait until everything the kernel counted is accounted for.
            await wait_for(pilot, lambda: state.syscalls_seen + state.stream_dropped + state.kernel_lost
                           >= stats_sum() > 0, "the last drain after the end")
            assert state.exited.exit_code == 0
            stats = {s.name: s.count for s in state.stats}
            assert stats["write"] == 500001
            # Shown or skipped by the UI + dropped by the bridge's inbox + lost in the kernel.
            assert state.syscalls_seen + state.stream_dropped + state.kernel_lost == sum(stats.values())
            assert "write" in screen_text(app)
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, "the app to answer q and exit", 30)
    finally:
        from workbench.tracing import loader

        loader.release_cached()
