"""Replay: a recording in the same panes as a live run, with a timeline (jump, step, play at any
speed). The recording's Replayer publishes its events on a bus, and the bridge does the rest."""

from __future__ import annotations

import math

from textual.binding import Binding

from workbench.core.bus import Bus
from workbench.tui.screens.session import SessionScreen
from workbench.tui.widgets.status_line import StatusLine

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 16.0, 64.0, math.inf)


def timeline_text(position_ns: int, duration_ns: int, speed: float, playing: bool, finished: bool,
                  width: int = 30) -> str:
    done = 1.0 if duration_ns <= 0 else min(position_ns / duration_ns, 1.0)
    bar = "━" * round(done * width) + "╸" + "─" * (width - round(done * width))
    mode = "■ end" if finished else ("▶" if playing else "❚❚")
    pace = "max" if math.isinf(speed) else f"×{speed:g}"
    return (f"replay {mode} {position_ns / 1e9:7.3f} s / {duration_ns / 1e9:.3f} s {bar} {pace}   "
            "p play/pause  . step  < > ∓1 s  g start  G end  + - speed")


def relaunch_options(meta: dict) -> tuple[object | None, str]:
    """Options to run the recorded command under the recorded profile, live, on this machine (the
    rerun, edit and apply-fix keys work on a replay: a failure recorded in CI, fixed here); or
    None and why not."""
    from workbench.core.errors import WorkbenchError
    from workbench.diagnose.fixes import to_file_shape
    from workbench.sandbox.profile import from_dict
    from workbench.tui.runner import BACKENDS, make_options

    command, profile = meta.get("command"), meta.get("profile")
    if not command or not isinstance(profile, dict):
        return None, "the recording has no command or profile"
    backend = meta.get("backend", "native")
    if backend not in BACKENDS:
        return None, f"it ran on an unknown backend {backend!r}"
    try:
        parsed = from_dict(to_file_shape(profile), source="the recording's profile")
    except (WorkbenchError, KeyError, TypeError, ValueError) as exc:  # a file from elsewhere: any shape
        return None, f"its profile does not load here: {exc}"
    return make_options(parsed, [str(a) for a in command], backend=backend,
                        profile_name=str(meta.get("profile_name") or parsed.name)), ""


class ReplayScreen(SessionScreen):
    """A SessionScreen fed by a Replayer instead of a Session."""

    BINDINGS = [
        Binding("p", "play_pause", "Play/pause"),
        Binding("full_stop", "step", "Step"),
        Binding("less_than_sign", "jump(-1)", "-1 s"),
        Binding("greater_than_sign", "jump(1)", "+1 s"),
        Binding("g", "seek_start", "Start", show=False),
        Binding("G", "seek_end", "End", show=False),
        Binding("plus", "speed(1)", "Faster", show=False),
        Binding("minus", "speed(-1)", "Slower", show=False),
    ]

    def __init__(self, recording, speed: float = 1.0, autoplay: bool = True) -> None:
        options, why_not = relaunch_options(recording.meta)
        super().__init__(options=options, bus=Bus())
        if why_not:
            self.not_relaunchable = why_not
        self.recording = recording
        self.speed = speed
        self.autoplay = autoplay
        self.replayer = None

    def compose(self):
        yield StatusLine("", id="timeline")
        yield from super().compose()

    def on_mount(self) -> None:
        from workbench.record.replay import Replayer

        # (Textual runs SessionScreen.on_mount too: handlers are called along the MRO.)
        self.replayer = Replayer(self.recording, self.bus, on_reset=self.bridge.reset)
        if self.autoplay:
            self.replayer.play(self.speed)
        self.set_interval(0.2, self._show_timeline, name="timeline")
        self._show_timeline()

    def on_unmount(self) -> None:
        if self.replayer is not None:
            self.replayer.close()
        self.recording.close()

    def _show_timeline(self) -> None:
        r = self.replayer
        if r is None:
            return
        for line in self.query("#timeline"):
            line.show(timeline_text(r.position_ns, r.duration_ns, r.speed, r.playing, r.finished))

    # the replayer's controls return at once; seek publishes up to the new position synchronously
    def action_play_pause(self) -> None:
        if self.replayer.playing:
            self.replayer.pause()
        else:
            if self.replayer.finished:
                self.replayer.seek(0)
            self.replayer.play()
        self._show_timeline()

    def action_step(self) -> None:
        self.replayer.step()
        self._show_timeline()

    def action_jump(self, seconds: int) -> None:
        self.replayer.seek(self.replayer.position_ns + seconds * 1_000_000_000)
        self._show_timeline()

    def action_seek_start(self) -> None:
        self.replayer.seek(0)
        self._show_timeline()

    def action_seek_end(self) -> None:
        self.replayer.seek(self.replayer.duration_ns)
        self._show_timeline()

    def action_speed(self, direction: int) -> None:
        current = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - self.replayer.speed)
                      if not math.isinf(SPEEDS[i]) else (0 if math.isinf(self.replayer.speed) else math.inf))
        self.replayer.set_speed(SPEEDS[max(0, min(len(SPEEDS) - 1, current + direction))])
        self._show_timeline()
