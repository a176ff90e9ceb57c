"""The session screen: every pane of one run at once, fed by the bridge, driving the Session API.

Blocking Session calls (start, wait, close, write_stdin) run in labelled thread workers that only
post messages; the panes get values from here and post messages back.
"""

from __future__ import annotations

import signal

from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from workbench.core import events as ev
from workbench.core.bus import Bus
from workbench.core.errors import WorkbenchError
from workbench.tui.bridge import EventBridge
from workbench.tui.messages import (LaunchRequested, Lifecycle, SessionFailed, ShellRequested, ShowSyscall,
                                    StateChanged, StateReset, StdinClosed, StdinLine)
from workbench.tui.state import RunSummary, SessionState
from workbench.tui.widgets.denials import Denials
from workbench.tui.widgets.layers import Layers
from workbench.tui.widgets.output import OutputPane
from workbench.tui.widgets.process_tree import ProcessTree
from workbench.tui.widgets.resources import Resources
from workbench.tui.widgets.syscall_stream import SyscallStream
from workbench.tui.widgets.status_line import StatusLine
from workbench.tui.widgets.syscall_top import SyscallTop


class SessionScreen(Screen):
    """One run. `session` is a workbench.session.Session (or None when only `bus` feeds us: replay,
    tests, benchmarks)."""

    BINDINGS = [
        Binding("r", "rerun", "Rerun"),
        Binding("e", "edit_profile", "Edit & relaunch"),
        Binding("a", "apply_fix", "Apply fix"),
        Binding("c", "compare", "Compare"),
        Binding("b", "backends", "Backends"),
        Binding("x", "kill", "Kill"),
        Binding("z", "zoom", "Zoom pane"),
        Binding("exclamation_mark", "shell", "Shell"),
        Binding("d", "denied_only", "Denied only", show=False),
        Binding("tab", "app.focus_next", show=False),
    ]

    def __init__(self, session=None, options=None, bus: Bus | None = None,
                 previous: RunSummary | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.session = session
        self.options = options
        """The SessionOptions this run was launched with (None when fed from a bus only)."""
        self.not_relaunchable = "it was not launched from here"
        """Why, when options is None: said when a relaunch is asked for."""
        self.bus = session.bus if session is not None else (bus or Bus())
        self.previous = previous
        self.state = SessionState()
        self.bridge = EventBridge(self.bus, self.state, self)
        self.failure: str | None = None

    def compose(self):
        yield StatusLine("waiting for the session", id="status")
        with Horizontal(id="session-main"):
            with Vertical(id="left"):
                yield ProcessTree(id="processes", classes="pane")
                yield Layers(id="layers", classes="pane")
            with Vertical(id="right"):
                yield SyscallStream(id="stream", classes="pane")
                with Horizontal(id="middle"):
                    yield Denials(id="denials", classes="pane")
                    yield SyscallTop(id="top", classes="pane")
                with Horizontal(id="bottom"):
                    yield OutputPane(id="output", classes="pane")
                    yield Resources(id="resources", classes="pane")
        yield Footer()

    def on_mount(self) -> None:
        self.bridge.start()
        if self.session is not None:
            self.run_session()
        self.query_one("#stream-view").focus()

    def on_unmount(self) -> None:
        self.bridge.stop()

    # --- workers (blocking Session calls) ------------------------------------------------------

    @work(thread=True, exclusive=True, group="session", description="start, wait for and tear down the sandbox")
    def run_session(self) -> None:
        try:
            self.session.start()
            self.session.wait()
        except WorkbenchError as exc:
            self.post_message(SessionFailed(str(exc)))
        finally:
            self.session.close()

    @work(thread=True, group="stdin", description="write to the sandbox's stdin")
    def send_stdin(self, data: bytes | None) -> None:
        try:
            if data is None:
                self.session.close_stdin()
            else:
                self.session.write_stdin(data)
        except (OSError, WorkbenchError) as exc:
            self.post_message(SessionFailed(f"stdin: {exc}"))

    @work(thread=True, group="kill", description="kill the sandbox")
    def kill_session(self) -> None:
        self.session.kill(signal.SIGKILL)

    def close_session(self) -> None:
        """Tear the sandbox down (blocking, idempotent): the app calls it when quitting."""
        if self.session is not None:
            self.session.close()

    # --- routing -------------------------------------------------------------------------------

    def on_state_changed(self, message: StateChanged) -> None:
        state, parts = self.state, message.parts
        if "stream" in parts:
            self.query_one(SyscallStream).sync(state)
        if "processes" in parts or "lifecycle" in parts:
            ready = state.ready
            self.query_one(ProcessTree).show(state.processes, ready.pid if ready else None,
                                             ready.namespaces if ready else None)
        if "lifecycle" in parts:
            self.query_one(Layers).show(state.profile, state.ready.namespaces if state.ready else None)
        if "denials" in parts:
            self.query_one(Denials).show(list(state.denials.values()), state.denials_total)
        if "findings" in parts:
            self.query_one(Denials).show_findings(state.findings)
        if "top" in parts:
            self.query_one(SyscallTop).show(state.stats)
        if "resources" in parts:
            self.query_one(Resources).show(list(state.samples), state.profile.get("cpus"))
        if "output" in parts or "lifecycle" in parts:
            self.query_one(OutputPane).show(state.output, state.output_total)
        if parts & {"lifecycle", "notices", "denials", "stream"}:
            self._show_status()

    async def on_state_reset(self, message: StateReset) -> None:
        self.state = message.state
        await self.recompose()  # panes start empty; the StateChanged that follows fills them
        self.query_one("#stream-view").focus()

    def on_lifecycle(self, message: Lifecycle) -> None:
        if isinstance(message.event, ev.SandboxExited):
            self.notify(f"sandbox {self.state.exit_text()}", timeout=4)

    def on_session_failed(self, message: SessionFailed) -> None:
        self.failure = message.text
        self.notify(message.text, severity="error", timeout=10)
        self._show_status()

    def _show_status(self) -> None:
        s = self.state
        # Most important first: a long command must not push the denials off a narrow line.
        parts = [s.exit_text()]
        if self.failure:
            parts.append(self.failure)
        if s.denials_total:
            parts.append(f"{s.denials_total} DENIED")
        if s.kernel_lost or s.stream_dropped or s.events_dropped:
            parts.append(f"dropped {s.stream_dropped + s.kernel_lost + s.events_dropped}")
        off = [p for p in s.probes.values() if p.state == "off"]
        if off:
            parts.append("probes off: " + ", ".join(f"{p.probe} ({p.reason})" if p.reason else p.probe
                                                    for p in off))
        if s.started:
            parts.append(" ".join(s.started.command))
            parts.append(f"profile {s.started.profile_name}, {s.started.backend}")
        record = getattr(self.options, "record", None)
        if record:
            parts.append(f"recording to {record}")
        if not self.failure and s.notices and s.notices[-1].level != "info":
            parts.append(s.notices[-1].text)
        status = self.query_one("#status", StatusLine)
        status.show(" │ ".join(p for p in parts if p))
        status.set_class(bool(s.denials_total or self.failure), "-alert")

    @on(SyscallStream.FilterChanged)
    def _refilter(self) -> None:
        self.query_one(SyscallStream).rebuild(self.state)

    def on_show_syscall(self, message: ShowSyscall) -> None:
        from workbench.tui.screens.dialogs import SyscallDetail

        self.app.push_screen(SyscallDetail(message.syscall, self.state.t0_ns or 0))

    def on_stdin_line(self, message: StdinLine) -> None:
        if self.session is not None:
            self.send_stdin(message.data)

    def on_stdin_closed(self, message: StdinClosed) -> None:
        if self.session is not None:
            self.send_stdin(None)

    # --- actions -------------------------------------------------------------------------------

    def action_kill(self) -> None:
        if self.session is not None and self.state.exited is None:
            self.kill_session()

    def action_zoom(self) -> None:
        widget = self.focused
        while widget is not None and not widget.has_class("pane"):
            widget = widget.parent
        if self.maximized is not None:
            self.minimize()
        elif widget is not None:
            self.maximize(widget, container=False)

    def action_denied_only(self) -> None:
        self.query_one(SyscallStream).apply_filter("denied")

    def action_rerun(self) -> None:
        """The same command under the same profile again (a flaky failure, a fix made outside):
        the launcher has the sandbox built already (a spare), so it starts at once."""
        if self.options is None:
            self.notify(f"this run cannot be relaunched ({self.not_relaunchable})", severity="warning")
            return
        self.post_message(LaunchRequested(self.options))

    def action_edit_profile(self) -> None:
        from workbench.tui.screens.dialogs import EditProfile

        if self.options is None:
            self.notify(f"this run cannot be relaunched ({self.not_relaunchable})", severity="warning")
            return

        def relaunch(options) -> None:
            if options is not None:
                self.post_message(LaunchRequested(options))

        self.app.push_screen(EditProfile(self.options), relaunch)

    def action_apply_fix(self) -> None:
        """The editor, filled in with the top diagnosis' fix: look, then relaunch."""
        from workbench.tui.screens.dialogs import EditProfile, fields_from_fix

        finding = next((f for f in self.state.findings if f.fix_options), None)
        if finding is None:
            self.notify("no diagnosis with a fix to apply" + (f": {self.state.findings[0].fix}"
                                                              if self.state.findings else ""))
            return
        if self.options is None:
            self.notify(f"this run cannot be relaunched ({self.not_relaunchable}); the fix: {finding.fix}")
            return
        prefill, left = fields_from_fix(finding.fix_options)
        if left:
            self.notify("apply by hand: " + " ".join(left), severity="warning", timeout=8)

        def relaunch(options) -> None:
            if options is not None:
                self.post_message(LaunchRequested(options))

        self.app.push_screen(EditProfile(self.options, prefill), relaunch)

    def action_compare(self) -> None:
        from workbench.tui.screens.dialogs import Compare

        if self.previous is None:
            self.notify("no previous run to compare with: edit the profile and relaunch (e)")
            return
        self.app.push_screen(Compare(self.previous, self.state.summary()))

    def action_backends(self) -> None:
        """The same command under every backend this host has, side by side."""
        from workbench.tui.screens.backends import BackendsScreen

        if self.options is None:
            self.notify("a replay has no command to run again")
            return
        self.app.push_screen(BackendsScreen(self.options))

    def action_shell(self) -> None:
        """Hand the terminal to a shell in a sandbox made from this profile, then come back."""
        self.post_message(ShellRequested(self.options))

