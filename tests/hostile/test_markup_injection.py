"""Strings the sandboxed program controls — its output, the paths it passes to syscalls, its argv
and comm — reach the TUI. They must be shown as text, never read as Textual/Rich markup: an
unbalanced tag would crash the UI, and `[@click=...]` would make a button of the attacker's."""

from __future__ import annotations


import pytest

from workbench.sandbox import profile as prof
from workbench.session import SessionOptions
from workbench.tui.app import build_app
from workbench.tui.capture import screen_text
from workbench.tui.screens.session import SessionScreen

pytestmark = [pytest.mark.asyncio, pytest.mark.privileged]

MARKUP = "[/bold][@click=app.quit]quit[/][b]23"


from tests.conftest import wait_for_app as wait_for  # noqa: E402


async def test_markup_in_what_the_sandbox_controls_is_shown_as_text():
    script = f"mkdir '/tmp/{MARKUP}'; echo '{MARKUP}'; echo '{MARKUP}' >&2; exec -a '{MARKUP}' sleep 0"
    options = SessionOptions(profile=prof.apply_overrides(prof.load("default"), deny=["mkdir"]), stdin="null",
                             command=["bash", "-c", script])
    app = build_app(options=options)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen.state.ended,
                           "the session to end")
            await wait_for(pilot, lambda: MARKUP in screen_text(app), "the denial drawn on screen")
            assert app.is_running  # no MarkupError took it down
            state = app.screen.state
            assert any(row.first.args.get("pathname") == f"/tmp/{MARKUP}" for row in state.denials.values())
            assert MARKUP in screen_text(app)  # shown literally, brackets and all
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running, "the app to exit", 30)
    finally:
        from workbench.tracing import loader

        loader.release_cached()
