"""Capture the screens shown in docs/guide.md from real runs (root, the real kernel).

    .venv/bin/python docs/screens/capture.py

Runs the `cache` demo (seccomp refuses mkdir), captures the launch screen, the session screen,
each pane zoomed, a syscall in detail, the profile editor, the comparison after relaunching with
mkdir allowed, a replay of the recorded run and the help screen; each as an SVG screenshot and as
plain text (`*.txt`, what the tests read). Times and pids differ from run to run.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from workbench import demos  # noqa: E402
from workbench.tui.app import build_app  # noqa: E402
from workbench.tui.capture import screen_text  # noqa: E402
from workbench.tui.screens.dialogs import Compare, EditProfile  # noqa: E402
from workbench.tui.screens.replay import ReplayScreen  # noqa: E402
from workbench.tui.screens.session import SessionScreen  # noqa: E402

OUT = Path(__file__).resolve().parent
SIZE = (120, 40)


async def until(pilot, predicate, what: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            raise SystemExit(f"capture: timed out waiting for {what}")
        await pilot.pause()


def save(app, name: str) -> None:
    app.save_screenshot(filename=f"{name}.svg", path=str(OUT))
    (OUT / f"{name}.txt").write_text(screen_text(app))
    print("captured", name)


async def capture_launch() -> None:
    app = build_app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#demos"), "the launch screen")
        demos_list = app.screen.query_one("#demos")
        demos_list.focus()
        demos_list.highlighted = demos_list.get_option_index("cache")
        await pilot.pause()
        save(app, "launch")


async def capture_session(recording: Path) -> None:
    options = demos.session_options("cache", record=str(recording))
    app = build_app(options)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen.state.ended, "the run")
        await pilot.pause()
        screen = app.screen
        save(app, "session")
        for pane in ("processes", "stream", "top", "denials", "resources", "output", "layers"):
            screen.maximize(screen.query_one(f"#{pane}"), container=False)
            await pilot.pause()
            save(app, f"pane-{pane}")
            screen.minimize()
        view = screen.query_one("#stream-view")
        view.focus()
        await pilot.press("d")
        await until(pilot, lambda: view.rows, "a denied syscall in the stream")
        await pilot.press("up", "enter")
        await pilot.pause()
        save(app, "detail")
        await pilot.press("escape", "e")
        await until(pilot, lambda: isinstance(app.screen, EditProfile), "the editor")
        app.screen.query_one("#edit-allow").value = "mkdir,mkdirat"
        await pilot.pause()
        save(app, "edit")
        app.screen.query_one("#edit-allow").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen is not screen
                    and app.screen.state.ended, "the relaunched run")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, Compare), "the comparison")
        save(app, "compare")
        await pilot.press("escape", "question_mark")
        await pilot.pause()
        save(app, "help")
        await pilot.press("escape", "q")
        await until(pilot, lambda: not app.is_running, "quit")


async def capture_replay(recording: Path) -> None:
    app = build_app(replay=str(recording))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ReplayScreen), "the replay")
        await pilot.press("G")
        await until(pilot, lambda: app.screen.state.ended, "the whole recording")
        await pilot.pause()
        save(app, "replay")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "cache.sqlite"
        await capture_launch()
        await capture_session(recording)
        await capture_replay(recording)
    from workbench.tracing import loader

    loader.release_cached()


if __name__ == "__main__":
    asyncio.run(main())
