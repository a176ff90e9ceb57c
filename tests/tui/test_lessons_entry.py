"""The lessons are one key away from the launch screen."""

from __future__ import annotations

import pytest
from textual.widgets import OptionList

from workbench.lessons import names
from workbench.tui.app import build_app
from workbench.tui.screens.lessons import LessonListScreen

pytestmark = pytest.mark.asyncio


from tests.conftest import wait_for_app  # noqa: E402


async def test_f2_opens_the_lessons_from_the_launch_screen_and_escape_returns():
    app = build_app()
    async with app.run_test(size=(120, 40)) as pilot:
        launch = app.screen
        await pilot.press("f2")
        await wait_for_app(pilot, lambda: isinstance(app.screen, LessonListScreen), "the lesson list")
        listed = app.screen.query_one("#lesson-list", OptionList)
        assert sorted(listed.get_option_at_index(i).id for i in range(listed.option_count)) == sorted(names())
        await pilot.press("escape")
        await wait_for_app(pilot, lambda: app.screen is launch, "the launch screen again")
