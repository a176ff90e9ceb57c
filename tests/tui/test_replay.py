"""Replay: a recording opens in the same panes, with a timeline to play, step and jump."""

from pathlib import Path

import pytest

from workbench.core.bus import Bus
from workbench.core.errors import RecordingError
from workbench.record import Recorder
from workbench.tui.app import build_app
from workbench.tui.capture import screen_text
from workbench.tui.messages import Lifecycle, StateReset
from workbench.tui.screens.replay import ReplayScreen
from workbench.tui.widgets.syscall_stream import StreamView

from .conftest import Recorder as Messages, wait_for
from .fixtures import whole_run


def record(path: Path, n: int = 23) -> Path:
    bus = Bus()
    with Recorder(bus, path):
        for event in whole_run(n):
            bus.publish(event)
    return path


def test_foreign_and_truncated_files_are_one_line_errors(tmp_path: Path):
    foreign = tmp_path / "notes.txt"
    foreign.write_text("hello\n")
    with pytest.raises(RecordingError, match="not a workbench recording"):
        build_app(replay=str(foreign))
    good = record(tmp_path / "run.sqlite")
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(RecordingError) as err:
        build_app(replay=str(cut))
    assert "\n" not in str(err.value)


@pytest.mark.asyncio
async def test_replay_plays_steps_and_jumps_back(tmp_path: Path):
    app = build_app(replay=str(record(tmp_path / "run.sqlite")))
    seen = Messages(Lifecycle, StateReset)
    async with app.run_test(size=(120, 40), message_hook=seen) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen), "the replay screen")
        screen = app.screen
        await pilot.press("G")  # to the end at once
        await wait_for(pilot, lambda: screen.state.ended, "the whole recording")
        view = screen.query_one(StreamView)
        await wait_for(pilot, lambda: len(view.rows) == 23, "23 syscalls")
        await wait_for(pilot, lambda: "■ end" in screen_text(app), "the timeline at its end")
        text = screen_text(app)
        assert "Seccomp denials (1)" in text and "exit 1 after 0.02 s" in text
        kinds = [type(m.event).__name__ for m in seen.messages if isinstance(m, Lifecycle)]
        assert kinds[-1] == "SessionEnded" and kinds.count("SessionStarted") == 1
        # back to the start: the panes empty, then step through one event at a time
        await pilot.press("g")
        await wait_for(pilot, lambda: any(isinstance(m, StateReset) for m in seen.messages), "a reset")
        screen = app.screen
        await wait_for(pilot, lambda: screen.state.started is not None and screen.state.exited is None,
                       "the state of the first event only")
        assert screen.state.syscalls_seen == 0
        for _ in range(6):  # ProbeStatus, Ready, Released, Exec, Membership, then the batch
            await pilot.press("full_stop")
        await wait_for(pilot, lambda: screen.state.syscalls_seen == 23, "the batch after six steps")
        assert screen.state.phase == "running"
        assert screen.replayer.playing is False


def test_what_a_replay_can_relaunch_and_why_not():
    from workbench.sandbox.profile import load
    from workbench.tui.screens.replay import relaunch_options

    good = {"command": ["true"], "backend": "native", "profile": load("default").to_dict(), "profile_name": "default"}
    options, why = relaunch_options(good)
    assert why == "" and options.command == ["true"] and options.profile == load("default")
    assert relaunch_options({"command": ["true"]}) == (None, "the recording has no command or profile")
    assert relaunch_options({**good, "backend": "docker"})[1] == "it ran on an unknown backend 'docker'"
    bad = dict(good, profile={**good["profile"], "seccomp": {**good["profile"]["seccomp"], "syscalls": ["mkdri"]}})
    options, why = relaunch_options(bad)
    assert options is None and why.startswith("its profile does not load here") and "mkdri" in why
