"""The launch screen: pick a profile (with a preview of every layer it sets), type a command or
pick a demo, and launch."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from workbench.core.errors import WorkbenchError
from workbench.sandbox.profile import Profile, apply_overrides, bundled_names, load
from workbench.tui.messages import LaunchRequested
from workbench.tui.runner import BACKENDS, make_options
from workbench.tui.widgets.layers import layers_table

USER_PROFILES = Path.home() / ".config" / "workbench" / "profiles"


@dataclass(frozen=True)
class Demo:
    """A ready-made failing (or working) command to learn from."""

    name: str
    description: str
    command: tuple[str, ...]
    profile: str = "default"
    options: tuple[tuple[str, object], ...] = ()
    """CLI-style overrides for `apply_overrides` (deny, memory, binds, ...)."""

    def profile_for(self, base: Profile) -> Profile:
        return apply_overrides(base, **dict(self.options)) if self.options else base


BUILTIN_DEMOS = (
    Demo("denied-mkdir", "mkdir is denied by seccomp: the denial shows, the diagnosis names it",
         ("sh", "-c", "mkdir /tmp/x && echo made /tmp/x; mkdir /tmp/y; echo done"),
         options=(("deny", ["mkdir"]),)),
    Demo("read-only-root", "writing outside /tmp fails on the read-only root",
         ("sh", "-c", "echo hi > /etc/wb-test; echo status $?")),
    Demo("busy-loop", "a few thousand syscalls a second, to watch the stream and top",
         ("sh", "-c", "i=0; while [ $i -lt 3001 ]; do ls / >/dev/null; i=$((i+1)); done")),
    Demo("whoami", "who am I inside: ids, namespaces, capabilities",
         ("sh", "-c", "id; hostname; grep -E 'Cap|Seccomp|NoNewPrivs' /proc/self/status")),
)


def load_demos() -> list[Demo]:
    """The bundled demos (workbench/demos), then a few built-in commands."""
    demos = []
    try:
        from workbench import demos as bundled

        for name in bundled.names():
            try:
                d = bundled.load(name)
            except (WorkbenchError, OSError, KeyError, ValueError):
                continue  # a broken demo file must not hide the others
            demos.append(Demo(d.name, d.description, tuple(d.command), d.profile,
                              tuple(sorted(d.options.items()))))
    except ImportError:
        pass
    return demos + list(BUILTIN_DEMOS)


def profile_choices() -> list[str]:
    names = bundled_names()
    if USER_PROFILES.is_dir():
        names += [str(p) for p in sorted(USER_PROFILES.glob("*.toml"))]
    return names


class LaunchScreen(Screen):
    """Choose what to run and how."""

    BINDINGS = [Binding("ctrl+l", "launch", "Launch"), Binding("tab", "app.focus_next", show=False)]

    def __init__(self) -> None:
        super().__init__()
        self.profile: Profile | None = None
        self.demos = load_demos()
        self.demo: Demo | None = None

    def compose(self):
        yield Static("[b]workbench[/b] — launch a sandbox, watch it, see why it failed", id="launch-title")
        with Horizontal(id="launch-main"):
            with Vertical(id="launch-left"):
                yield Label("Profile")
                yield OptionList(*[Option(n, id=n) for n in profile_choices()], id="profiles")
                yield Label("Demos")
                yield OptionList(*[Option(Text.assemble((d.name, "bold"), "\n  ", (d.description, "dim")),
                                          id=d.name) for d in self.demos], id="demos")
            with VerticalScroll(id="launch-preview", classes="pane"):
                yield Static("", id="preview")
        with Vertical(id="launch-bottom"):
            with Horizontal(classes="field"):
                yield Label("Command", classes="field-label")
                yield Input(placeholder="sh -c 'mkdir /tmp/x && mkdir /denied'", id="command")
            with Horizontal(classes="field"):
                yield Label("Record to", classes="field-label")
                yield Input(placeholder="(optional) FILE.sqlite: record every event", id="record")
                yield Label("Backend", classes="field-label short")
                yield Select([(b, b) for b in BACKENDS], value="native", allow_blank=False, id="backend")
            with Horizontal(classes="buttons"):
                yield Button("Launch", id="launch", variant="primary")
                yield Static("", id="launch-error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#profiles", OptionList).highlighted = 0
        self._select_profile(profile_choices()[0] if profile_choices() else "default")
        self.query_one("#command", Input).focus()

    def _select_profile(self, name: str) -> None:
        try:
            self.profile = load(name)
        except WorkbenchError as exc:
            self.profile = None
            self.query_one("#preview", Static).update(Text(str(exc), style="bold red"))
            return
        self._preview()

    def _preview(self) -> None:
        p = self.profile
        if p is None:
            return
        shown = self.demo.profile_for(p) if self.demo is not None else p
        self.border_title = p.name
        self.query_one("#launch-preview").border_title = f"Profile {p.name}"
        self.query_one("#preview", Static).update(Group(Text(p.description + "\n", style="italic"),
                                                        layers_table(shown.to_dict())))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "profiles":
            self._select_profile(event.option.id)
        elif event.option_list.id == "demos" and event.option_list.has_focus:
            # (not on mount: a list highlights its first entry by itself, nobody chose it)
            self.demo = next(d for d in self.demos if d.name == event.option.id)
            self.query_one("#command", Input).value = shlex.join(self.demo.command)
            index = profile_choices().index(self.demo.profile) if self.demo.profile in profile_choices() else None
            if index is not None:
                self.query_one("#profiles", OptionList).highlighted = index
            self._select_profile(self.demo.profile)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "demos":
            self.action_launch()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_launch()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "command" and self.demo and event.value != shlex.join(self.demo.command):
            self.demo = None  # typed by hand: the demo's overrides no longer apply
            self._preview()

    def build_options(self):
        """SessionOptions for what is on screen, or raises WorkbenchError (one line)."""
        if self.profile is None:
            raise WorkbenchError("no valid profile selected", "pick one from the list")
        text = self.query_one("#command", Input).value.strip()
        try:
            command = shlex.split(text)
        except ValueError as exc:
            raise WorkbenchError(f"command: {exc}", "close the quote") from None
        if not command:
            raise WorkbenchError("no command", "type one, or pick a demo")
        profile = self.demo.profile_for(self.profile) if self.demo is not None else self.profile
        record = self.query_one("#record", Input).value.strip() or None
        name = self.profile.name + (f" (demo {self.demo.name})" if self.demo is not None else "")
        backend = str(self.query_one("#backend", Select).value)
        return make_options(profile, command, record=record, profile_name=name, backend=backend)

    def action_launch(self) -> None:
        try:
            options = self.build_options()
        except WorkbenchError as exc:
            self.query_one("#launch-error", Static).update(Text(str(exc), style="bold red"))
            return
        self.query_one("#launch-error", Static).update("")
        self.post_message(LaunchRequested(options))
