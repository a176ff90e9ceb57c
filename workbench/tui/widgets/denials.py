"""Seccomp denials, prominently: each with its syscall, arguments, process and the matching rule.
Below them, the diagnosis findings (which layer made the command fail, and the fix)."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from workbench.core import events as ev
from workbench.tui.state import DenialRow


def _args_text(d: ev.SeccompDenial) -> Text:
    if d.args:
        return Text(", ".join(f"{k}={v}" for k, v in d.args.items()))
    return Text(", ".join(hex(a) for a in d.raw_args[:3]))


class Denials(Vertical):
    """The denials table and the findings under it."""

    ALLOW_MAXIMIZE = True  # `z` zooms a pane to the whole screen

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "Seccomp denials"

    def compose(self):
        # The diagnosis first: it is the answer; the table is the evidence.
        yield Static("", id="findings")
        yield DataTable(id="denials-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        # Fixed widths: columns that resize as rows arrive would jump around during a run.
        table = self.query_one(DataTable)
        for label, width in (("×", 3), ("syscall", 10), ("arguments", 28), ("pid", 7), ("comm", 10),
                             ("action", 12), ("rule", 48)):
            table.add_column(label, width=width)

    def show(self, rows: list[DenialRow], total: int) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in rows:
            d = row.first
            action = d.action + (f" {d.errno}" if d.errno else "")
            # What the sandbox controls (its comm, its paths) is text, never markup.
            table.add_row(str(row.count), Text(d.syscall, style="bold red"), _args_text(d),
                          str(d.pid), Text(d.comm), Text(action), Text(d.rule or "-"))
        self.border_title = f"Seccomp denials ({total})" if total else "Seccomp denials"
        self.set_class(total > 0, "-alert")

    def show_findings(self, findings: list[ev.Finding]) -> None:
        if findings:
            self.border_subtitle = f"diagnosis: {', '.join(dict.fromkeys(f.layer for f in findings))}"
        text = Text()
        for f in findings:
            text.append(f"[{f.layer}] ", style="bold")
            text.append(f.summary + "\n")
            if f.fix:
                text.append(f"  fix: {f.fix}\n", style="bold green")
            for line in f.evidence[:2]:
                text.append(f"  {line}\n", style="dim")
        self.query_one("#findings", Static).update(text)
