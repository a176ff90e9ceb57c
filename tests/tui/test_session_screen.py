"""Pilot tests of the session screen fed with real event objects on a bus: what flows, what shows."""

import pytest

from workbench.core import events as ev
from workbench.tui.capture import screen_text
from workbench.tui.messages import Lifecycle, ShowSyscall, StateChanged
from workbench.tui.screens.dialogs import SyscallDetail
from workbench.tui.widgets.syscall_stream import StreamView
from workbench.tui.widgets.syscall_top import SyscallTop

from .conftest import Recorder, open_bus_session, wait_for
from .fixtures import whole_run

pytestmark = pytest.mark.asyncio


async def test_lifecycle_messages_flow_in_order_and_panes_fill(app):
    seen = Recorder(Lifecycle, StateChanged)
    async with app.run_test(size=(120, 40), message_hook=seen) as pilot:
        screen, bus = await open_bus_session(app, pilot)
        for event in whole_run(23):
            bus.publish(event)
        await wait_for(pilot, lambda: screen.state.ended, "SessionEnded to reach the state")
        await wait_for(pilot, lambda: len(screen.query_one(StreamView).rows) == 23, "23 rows in the stream")
        kinds = [type(m.event).__name__ for m in seen.messages if isinstance(m, Lifecycle)]
        assert kinds == ["SessionStarted", "SandboxReady", "SandboxReleased", "SandboxExited", "SessionEnded"]
        parts = set().union(*(m.parts for m in seen.messages if isinstance(m, StateChanged)))
        assert {"stream", "processes", "denials", "top", "resources", "output", "findings"} <= parts
        await pilot.pause()
        text = screen_text(app)
        assert "exit 1 after 0.02 s" in text
        assert "1 DENIED" in text
        assert "Seccomp denials (1)" in text and "pathname=/tmp/a" in text
        assert "mkdir(pathname='/tmp/a') = DENIED EPERM" in text
        assert "4243 exit 1 cat /nope" in text
        assert "hello" in text and "mkdir: cannot create" in text
        assert "fix: --allow mkdir" in text
        assert "limit 512" in text


async def test_stream_filter_pause_search_and_detail(app):
    shown = Recorder(ShowSyscall)
    async with app.run_test(size=(120, 40), message_hook=shown) as pilot:
        screen, bus = await open_bus_session(app, pilot)
        for event in whole_run(23):
            bus.publish(event)
        view = screen.query_one(StreamView)
        await wait_for(pilot, lambda: len(view.rows) == 23, "23 rows")
        view.focus()
        await pilot.press("f", *"failed", "enter")
        await wait_for(pilot, lambda: len(view.rows) == 5, "5 failed rows")
        await pilot.press("d")  # denied only
        await wait_for(pilot, lambda: len(view.rows) == 1, "the one denied row")
        await pilot.press("f", "ctrl+u", "enter")  # empty filter: everything again
        await wait_for(pilot, lambda: len(view.rows) == 23, "all 23 rows again")
        # pause, then new syscalls wait behind; following again catches up
        await pilot.press("space")
        assert not view.following
        bus.publish(ev.SyscallBatch(ts_ns=1, syscalls=tuple(whole_run(7)[6].syscalls)))
        await wait_for(pilot, lambda: view.behind == 7, "7 syscalls behind while paused")
        assert len(view.rows) == 23
        await pilot.press("space")
        await wait_for(pilot, lambda: len(view.rows) == 30, "30 rows after resuming")
        # search jumps to the match; enter opens the detail with decoded arguments
        await pilot.press("slash", *"/nope9", "enter")
        await wait_for(pilot, lambda: "/nope9" in str(view.rows[view.cursor].decoded), "cursor on /nope9")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SyscallDetail), "the detail screen")
        assert [m.syscall.decoded["pathname"] for m in shown.messages] == ["/nope9"]
        text = screen_text(app)
        assert "ENOENT" in text and "'/nope9'" in text and "nr 257" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back on the session screen")
        # a click selects a row and pauses; a double click opens it
        await pilot.press("end")
        await wait_for(pilot, lambda: view.following, "following again")
        await pilot.click(StreamView, offset=(5, 0))
        await wait_for(pilot, lambda: not view.following and view.cursor == view.scroll_offset.y, "row clicked")
        await pilot.double_click(StreamView, offset=(5, 1))
        await wait_for(pilot, lambda: isinstance(app.screen, SyscallDetail), "the clicked row's detail")
        assert shown.messages[-1].syscall is view.rows[view.scroll_offset.y + 1]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back again")
        # z zooms the focused pane to the whole screen, and back
        await pilot.press("z")
        await wait_for(pilot, lambda: screen.maximized is screen.query_one("#stream"), "the stream zoomed")
        await pilot.press("z")
        await wait_for(pilot, lambda: screen.maximized is None, "the stream back in place")


async def test_top_sorts_by_errors_and_name(app):
    async with app.run_test(size=(120, 40)) as pilot:
        screen, bus = await open_bus_session(app, pilot)
        for event in whole_run(23):
            bus.publish(event)
        top = screen.query_one(SyscallTop)
        await wait_for(pilot, lambda: top.row_count == 3, "3 rows in top")
        first = lambda: top.get_row_at(0)[0]  # noqa: E731
        assert first() == "read"          # 31 calls
        top.focus()
        await pilot.press("s")
        assert top.sort_key == "errors" and first() == "openat"  # 4 errors
        await pilot.press("s", "s")
        assert top.sort_key == "name" and first() == "mkdir"
        assert top.get_row_at(1)[3] == "2.05 µs" and top.get_row_at(1)[4] == "8.19 µs"


async def test_output_pane_sends_stdin_lines_as_messages(app):
    from workbench.tui.messages import StdinClosed, StdinLine

    sent = Recorder(StdinLine, StdinClosed)
    async with app.run_test(size=(120, 40), message_hook=sent) as pilot:
        screen, _ = await open_bus_session(app, pilot)
        screen.query_one("#stdin").focus()
        await pilot.press(*"abc", "enter", "ctrl+d")
        await wait_for(pilot, lambda: len(sent.messages) == 2, "a line and an end of file")
        assert sent.messages[0].data == b"abc\n" and isinstance(sent.messages[1], StdinClosed)


async def test_ui_drops_are_counted_not_hidden(app):
    from workbench.tui import bridge as br

    async with app.run_test(size=(120, 40)) as pilot:
        screen, bus = await open_bus_session(app, pilot)
        screen.bridge.stop()  # hold the drain: the inbox must overflow
        screen.bridge._unsubscribe = bus.subscribe(screen.bridge._on_event)
        batch = whole_run(3)[6]
        for _ in range(br.INBOX_BATCHES + 41):
            bus.publish(batch)
        screen.bridge.drain()
        assert screen.state.stream_dropped == 41 * 3
        assert screen.state.syscalls_seen == br.INBOX_BATCHES * 3
        await wait_for(pilot, lambda: "dropped 123 in UI" in screen_text(app), "drops on screen")


async def test_a_burst_larger_than_the_stream_is_counted_whole(app):
    from workbench.tui import state as st

    async with app.run_test(size=(120, 40)) as pilot:
        screen, bus = await open_bus_session(app, pilot)
        screen.bridge.stop()
        screen.bridge._unsubscribe = bus.subscribe(screen.bridge._on_event)
        batch = ev.SyscallBatch(ts_ns=1, syscalls=tuple(whole_run(1001)[6].syscalls))
        rounds = 2 * st.STREAM_KEEP // 1001 + 3  # 103 batches of 1001: more than twice what is kept
        for _ in range(rounds):
            bus.publish(batch)
        screen.bridge.drain()
        assert screen.state.syscalls_seen == rounds * 1001 and screen.state.stream_dropped == 0
        assert len(screen.state.stream) == st.STREAM_KEEP
        view = screen.query_one(StreamView)
        await wait_for(pilot, lambda: len(view.rows) == st.STREAM_KEEP, "the stream full")
