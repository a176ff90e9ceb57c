"""Themes are Textual CSS files in themes/, chosen at build time or from the command palette."""

import pytest

from textual.color import Color

from workbench.core.errors import UsageError
from workbench.tui.app import THEMES, THEMES_DIR, build_app

from .conftest import open_bus_session, wait_for
from .fixtures import whole_run


def test_every_theme_is_a_css_file():
    assert sorted(p.stem for p in THEMES_DIR.glob("*.tcss")) == sorted(THEMES)


def test_unknown_theme_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown theme 'pink': use one of dark, light, high-contrast"):
        build_app(theme="pink")


@pytest.mark.asyncio
async def test_palette_switches_theme_and_its_css():
    app = build_app(theme="light")
    async with app.run_test(size=(120, 40)) as pilot:
        screen, bus = await open_bus_session(app, pilot)
        for event in whole_run(23):
            bus.publish(event)
        await wait_for(pilot, lambda: screen.state.ended, "the run")
        status = screen.query_one("#status")
        await wait_for(pilot, lambda: status.has_class("-alert"), "the denial alert")
        assert app.has_class("-wb-light") and app.theme == "textual-light"
        assert status.styles.background == Color.parse("#c62828")
        await pilot.press("ctrl+p")
        await pilot.press(*"Theme: high")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.has_class("-wb-high-contrast"), "the high-contrast theme")
        assert not app.has_class("-wb-light") and app.theme == "workbench-high-contrast"
        await wait_for(pilot, lambda: status.styles.background == Color.parse("#ffff00"), "yellow alert bar")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: "Keys and what" in str(app.screen) or app.screen.query("#help-body"),
                       "the help screen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back on the session screen")
