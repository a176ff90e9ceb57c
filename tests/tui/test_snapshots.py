"""SVG snapshots of the main screens, fed from a recorded-looking run with fixed clocks.

Regenerate after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`
and look at the report before committing.
"""

import dataclasses
from pathlib import Path

import pytest

from workbench.core.bus import Bus
from workbench.tui.app import build_app
from workbench.tui.screens.dialogs import Compare, Help, SyscallDetail
from workbench.tui.screens.replay import ReplayScreen
from workbench.tui.screens.session import SessionScreen
from workbench.tui.widgets.syscall_stream import StreamView

from .conftest import wait_for
from .fixtures import T0, flood, whole_run


async def show_run(pilot, theme: str = "dark") -> SessionScreen:
    app = pilot.app
    app.apply_theme(theme)
    bus = Bus()
    screen = SessionScreen(bus=bus)
    await app.push_screen(screen)
    await wait_for(pilot, lambda: screen.bridge._timer is not None, "the bridge")
    for event in whole_run(23):
        bus.publish(event)
    await wait_for(pilot, lambda: screen.state.ended and len(screen.query_one(StreamView).rows) == 23, "the run")
    await pilot.pause()
    screen.bridge.stop()  # nothing more will arrive: no further refreshes behind a dialog
    await settle(pilot)
    return screen


async def settle(pilot) -> None:
    """Let every pending refresh and animation finish, so that the frame is the same every time."""
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("theme", ["dark", "light", "high-contrast"])
def test_session_screen(snap_compare, theme):
    assert snap_compare(build_app(), terminal_size=(120, 40), run_before=lambda p: show_run(p, theme))


def test_session_screen_at_the_smallest_supported_size(snap_compare):
    assert snap_compare(build_app(), terminal_size=(100, 30), run_before=show_run)


def test_syscall_detail(snap_compare):
    async def before(pilot):
        await show_run(pilot)
        denied = flood(23)[0].syscalls[7]
        await pilot.app.push_screen(SyscallDetail(denied, T0))
        await settle(pilot)

    assert snap_compare(build_app(), terminal_size=(120, 40), run_before=before)


def test_compare_and_help(snap_compare):
    async def before(pilot):
        screen = await show_run(pilot)
        after = screen.state.summary()
        fixed = dataclasses.replace(after, exit_code=0, denials={}, errors=4,
                                    errors_by_errno={"ENOENT": 4}, findings=())
        await pilot.app.push_screen(Compare(after, fixed))
        await settle(pilot)

    assert snap_compare(build_app(), terminal_size=(120, 40), run_before=before)


def test_help(snap_compare):
    async def before(pilot):
        await show_run(pilot)
        await pilot.app.push_screen(Help())
        await settle(pilot)

    assert snap_compare(build_app(), terminal_size=(120, 40), run_before=before)


RECORDED = Path(__file__).with_name("data") / "cache-demo.sqlite"
"""A real run of the `cache` demo (seccomp refuses mkdir), recorded with --record."""


def test_replay_of_a_recorded_session(snap_compare, tmp_path: Path):
    async def before(pilot):
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ReplayScreen), "the replay screen")
        screen = pilot.app.screen
        await pilot.press("G")
        await wait_for(pilot, lambda: screen.state.ended and screen.replayer.finished, "the whole recording")
        await wait_for(pilot, lambda: len(screen.query_one(StreamView).rows) == screen.state.syscalls_seen,
                       "every syscall in the stream")
        screen.bridge.stop()
        screen._show_timeline()
        await settle(pilot)

    # Replay a copy: SQLite opens its write-ahead log beside the file it reads, even read-only.
    copy = tmp_path / RECORDED.name
    copy.write_bytes(RECORDED.read_bytes())
    assert snap_compare(build_app(replay=str(copy)), terminal_size=(120, 40), run_before=before)
