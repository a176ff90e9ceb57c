"""Backends side by side: the session's command under every backend this host has, one row each
as it lands — where the syscalls go (the app's own, and what the host kernel ran for them), how
long each took to start, what each isolates. The teaching point of `workbench compare`."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from workbench.compare import available_backends, compare_rows

COLUMNS = ("backend", "exit", "launch ms", "to app ms", "run s", "app syscalls", "host syscalls", "denials",
           "peak memory", "namespaces")
EXPLAIN = ("[b]app syscalls[/b]: what the command asked for (gVisor: answered by its Sentry, in user space). "
           "[b]host syscalls[/b]: what the host kernel ran for it — under gVisor, the Sentry's own work. "
           "[b]to app[/b]: release to the command's first syscall.")


class BackendRow(Message):
    """One backend's run finished (posted by the worker)."""

    def __init__(self, row: dict) -> None:
        super().__init__()
        self.row = row


class BackendNote(Message):
    """A backend could not run the command: one line."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


def _cells(r: dict) -> tuple[str, ...]:
    dash = lambda v: "-" if v is None else str(v)  # noqa: E731
    start = "-" if r["start_ms"] is None else f"{r['start_ms']:.1f}"
    return (r["backend"], str(r["exit"]), f"{r['launch_ms']:.1f}", start, f"{r['run_s']:.3f}",
            dash(r["app_syscalls"]), dash(r["host_syscalls"]), str(r["denials"]),
            f"{r['memory_peak_bytes'] / 2**20:.1f} MiB", ",".join(r["namespaces"]) or "-")


class BackendsScreen(Screen):
    """Values in (session options), rows out of a labelled worker; escape goes back."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    DEFAULT_CSS = """
    BackendsScreen #backends-table { height: auto; max-height: 12; }
    BackendsScreen #backends-status { height: auto; padding: 0 1; }
    """

    def __init__(self, options, backends: list[str] | None = None) -> None:
        super().__init__()
        self.options = options
        self.backends = backends or available_backends()
        self.rows: list[dict] = []
        self.notes: list[str] = []

    def compose(self) -> ComposeResult:
        command = " ".join(self.options.command)
        yield Static(f"[b]Backends side by side[/b] — {command}", id="backends-title")
        yield DataTable(id="backends-table", zebra_stripes=True)
        yield Static(f"running under {', '.join(self.backends)}…", id="backends-status")
        yield Static(EXPLAIN, id="backends-explain")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#backends-table", DataTable)
        table.add_columns(*COLUMNS)
        self.run_all()

    @work(thread=True, exclusive=True, group="compare-backends", description="the command under each backend")
    def run_all(self) -> None:
        compare_rows(self.options, self.backends, on_error=lambda text: self.post_message(BackendNote(text)),
                     on_row=lambda row: self.post_message(BackendRow(row)))

    def on_backend_row(self, message: BackendRow) -> None:
        self.rows.append(message.row)
        self.query_one("#backends-table", DataTable).add_row(*_cells(message.row), key=message.row["backend"])
        left = [b for b in self.backends if b not in {r["backend"] for r in self.rows}]
        status = f"running under {', '.join(left)}…" if left else "done"
        self.query_one("#backends-status", Static).update("\n".join([status, *self.notes]))

    def on_backend_note(self, message: BackendNote) -> None:
        self.notes.append(message.text)
        self.query_one("#backends-status", Static).update("\n".join(self.notes))
