"""Modal screens: one syscall in detail, the profile editor of the debugging loop, the comparison of
two runs, and the help screen."""

from __future__ import annotations

import dataclasses
import shlex

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from workbench.core import events as ev
from workbench.core.errors import WorkbenchError
from workbench.sandbox.profile import apply_overrides
from workbench.tui.state import RunSummary, format_bytes, format_ns


class _Dialog(ModalScreen):
    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class SyscallDetail(_Dialog):
    """Every field of one syscall, with its decoded arguments."""

    def __init__(self, syscall: ev.Syscall, t0_ns: int) -> None:
        super().__init__()
        self.syscall = syscall
        self.t0_ns = t0_ns

    def compose(self):
        sc = self.syscall
        table = Table(box=None, show_header=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("syscall", f"{sc.name} (nr {sc.nr})")
        table.add_row("time", f"{(sc.ts_ns - self.t0_ns) / 1e9:.6f} s after the command started")
        table.add_row("process", Text(f"pid {sc.pid}, tid {sc.tid}, comm {sc.comm}"))  # the sandbox names its comm
        table.add_row("result", str(sc.ret) + (f"  ({sc.errno})" if sc.errno else ""))
        table.add_row("duration", format_ns(sc.duration_ns) if sc.duration_ns else "not seen (no sys_enter)")
        if sc.denied:
            table.add_row("seccomp", Text("DENIED: the filter answered, the kernel never ran it", style="bold red"))
        for key, value in sc.decoded.items():
            table.add_row(Text(f"  {key}"), Text(repr(value) if isinstance(value, str) else str(value)))
        table.add_row("raw args", " ".join(hex(a) for a in sc.args))
        with Vertical(classes="dialog"):
            yield Label(f"Syscall {sc.name}", classes="dialog-title")
            yield Static(table, id="detail-body")
            yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


_FIX_FIELDS = {"--allow": "allow", "--deny": "deny", "--bind": "bind", "--memory": "memory",
               "--pids": "pids", "--cpus": "cpus"}


def fields_from_fix(fix_options: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """A diagnosis fix as `workbench run` options -> the editor's fields, and what it cannot hold."""
    fields: dict[str, list[str]] = {}
    left: list[str] = []
    args = list(fix_options)
    while args:
        opt = args.pop(0)
        value = args.pop(0) if args and not args[0].startswith("--") else ""
        if "=" in opt:
            opt, value = opt.split("=", 1)
        if opt in _FIX_FIELDS and value:
            fields.setdefault(_FIX_FIELDS[opt], []).append(value)
        else:
            left.append(f"{opt} {value}".strip())
    return {k: ",".join(v) for k, v in fields.items()}, left


class EditProfile(_Dialog):
    """The debugging loop: allow a syscall, add a bind, raise a limit, change the command; relaunch.

    `prefill` sets fields (a diagnosis fix). Dismisses with new options (validated like the CLI's)
    or None."""

    def __init__(self, options, prefill: dict[str, str] | None = None) -> None:
        super().__init__()
        self.options = options
        self.prefill = prefill or {}

    def compose(self):
        p = self.options.profile
        fields = [
            ("allow", "allow syscalls (comma separated)", ""),
            ("deny", "deny syscalls (comma separated)", ""),
            ("bind", "bind SRC[:DST[:ro|rw]] (comma separated)", ""),
            ("memory", "memory limit (512M, 2G)", format_bytes(p.memory) if p.memory else ""),
            ("pids", "pids limit", str(p.pids or "")),
            ("cpus", "cpus limit", f"{p.cpus:g}" if p.cpus else ""),
            ("command", "command", shlex.join(self.options.command)),
        ]
        with Vertical(classes="dialog"):
            yield Label(f"Edit profile {p.name} and relaunch", classes="dialog-title")
            for key, label, value in fields:
                with Horizontal(classes="field"):
                    yield Label(label, classes="field-label")
                    yield Input(value=self.prefill.get(key, value), id=f"edit-{key}")
            yield Static("", id="edit-error")
            with Horizontal(classes="buttons"):
                yield Button("Relaunch", id="relaunch", variant="primary")
                yield Button("Cancel", id="cancel")

    def _value(self, key: str) -> str:
        return self.query_one(f"#edit-{key}", Input).value.strip()

    def _names(self, key: str) -> list[str]:
        return [n.strip() for n in self._value(key).split(",") if n.strip()]

    def build(self):
        """The new options, or raises WorkbenchError naming the field."""
        p = self.options.profile
        profile = apply_overrides(
            p, allow=self._names("allow"), deny=self._names("deny"), binds=self._names("bind"),
            memory=self._value("memory") or None, pids=self._value("pids") or None,
            cpus=self._value("cpus") or None)
        try:
            command = shlex.split(self._value("command"))
        except ValueError as exc:
            raise WorkbenchError(f"command: {exc}", "close the quote") from None
        if not command:
            raise WorkbenchError("command: empty", "type the command to run")
        return dataclasses.replace(self.options, profile=profile, command=command)

    def _submit(self) -> None:
        try:
            options = self.build()
        except WorkbenchError as exc:
            self.query_one("#edit-error", Static).update(Text(str(exc), style="bold red"))
            return
        self.dismiss(options)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "relaunch":
            self._submit()
        else:
            self.dismiss(None)


def compare_table(before: RunSummary, after: RunSummary) -> Table:
    table = Table(expand=True)
    table.add_column("", style="bold")
    table.add_column("previous run")
    table.add_column("this run")

    def exit_text(s: RunSummary) -> str:
        if s.signal is not None:
            return f"signal {s.signal}"
        return "running" if s.exit_code is None else f"exit {s.exit_code}"

    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k}×{v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "none"

    rows = [
        ("command", " ".join(before.command), " ".join(after.command)),
        ("profile", before.profile_name, after.profile_name),
        ("result", exit_text(before), exit_text(after)),
        ("duration", f"{before.duration_s:.2f} s" if before.duration_s is not None else "-",
         f"{after.duration_s:.2f} s" if after.duration_s is not None else "-"),
        ("seccomp denials", counts(before.denials), counts(after.denials)),
        ("syscalls", str(before.syscalls), str(after.syscalls)),
        ("errors", counts(before.errors_by_errno), counts(after.errors_by_errno)),
        ("memory peak", format_bytes(before.memory_peak_bytes), format_bytes(after.memory_peak_bytes)),
        ("events lost", str(before.lost), str(after.lost)),
        ("diagnosis", "\n".join(before.findings) or "none", "\n".join(after.findings) or "none"),
    ]
    for label, a, b in rows:
        table.add_row(label, Text(a), Text(b, style="bold") if a != b else Text(b))
    return table


class Compare(_Dialog):
    """The previous run next to this one; what changed is in bold."""

    def __init__(self, before: RunSummary, after: RunSummary) -> None:
        super().__init__()
        self.before, self.after = before, after

    def compose(self):
        with Vertical(classes="dialog wide"):
            yield Label("Compare with the previous run", classes="dialog-title")
            yield Static(compare_table(self.before, self.after), id="compare-body")
            yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


HELP = """\
[b]Workbench[/b]: launch a sandbox, watch it live, see why it failed, fix the profile, relaunch.

[b]Everywhere[/b]
  ctrl+p   command palette (themes, screenshot, keys)      ?  this help
  q        quit: ends the sandbox and removes everything it made

[b]Session screen[/b]
  tab      next pane              z   zoom the focused pane (again: back)
  r        rerun: the same command and profile again (the sandbox is built already)
  e        edit the profile (allow a syscall, add a bind, raise a limit) and relaunch
  a        the same, filled in with the diagnosis' fix
  c        compare with the previous run      x  kill the sandbox
  !        hand the terminal to a shell in a sandbox made like this one (exit it to come back)

[b]Syscall stream[/b]
  space    follow / pause         ↑ ↓ pgup pgdn home end   move (end: follow again)
  f        filter: words like  openat  errno:ENOENT  pid:7  failed  denied
  /        search, n  next match  enter  the syscall in detail, with decoded arguments
  d        denied only

[b]Top[/b]  s  sort by count, errors, p99 latency, name (exact in-kernel counts)
[b]Output[/b]  type a line and Enter to send it to the program's stdin; ctrl+d sends end of file

[b]Replay[/b] (workbench replay FILE)
  p  play / pause    .  one event    < >  one second back / forward
  g G  start / end   + -  faster / slower (up to as fast as possible)
"""


class Help(_Dialog):
    BINDINGS = [Binding("question_mark", "dismiss_none", "Close")]

    def compose(self):
        with VerticalScroll(classes="dialog wide"):
            yield Static(HELP, id="help-body")
            yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)
