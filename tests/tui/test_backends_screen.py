"""The backends screen runs the session's command under every backend, for real, one row each."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.widgets import DataTable

from workbench.sandbox import profile as prof
from workbench.session import SessionOptions
from workbench.tui.screens.backends import BackendRow, BackendsScreen

pytestmark = [pytest.mark.asyncio, pytest.mark.privileged]


class _Host(App):
    def __init__(self, screen):
        super().__init__()
        self._first = screen

    def on_mount(self) -> None:
        self.push_screen(self._first)


async def test_rows_for_native_and_bwrap_land_with_their_syscalls():
    from workbench.tracing import loader

    getppid23 = "import os\nfor _ in range(23): os.getppid()"
    options = SessionOptions(profile=prof.load("default"), command=["python3", "-c", getppid23], stdin="null")
    screen = BackendsScreen(options, backends=["native", "bwrap"])
    seen: list[str] = []
    app = _Host(screen)
    async with app.run_test(size=(140, 30),
                            message_hook=lambda m: seen.append(m.row["backend"]) if isinstance(m, BackendRow) else None) as pilot:
        await app.workers.wait_for_complete()  # the labelled worker runs both backends
        await pilot.pause()
        table = screen.query_one("#backends-table", DataTable)
        assert list(dict.fromkeys(seen)) == [r["backend"] for r in screen.rows] == ["native", "bwrap"]
        assert table.row_count == 2
        for row in screen.rows:
            assert row["exit"] == 0
            assert row["app_syscalls"] == row["host_syscalls"] > 23  # both run the app on the host kernel
            assert set(row["namespaces"]) >= {"pid", "mnt", "net", "user"}
    loader.release_cached()
