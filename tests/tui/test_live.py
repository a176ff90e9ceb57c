"""Pilot tests that launch real sandboxes through the Session API (root, the real kernel)."""

import os
from pathlib import Path

import pytest

from workbench.core.events import SessionEnded
from workbench.sandbox.profile import apply_overrides, load
from workbench.tui.app import build_app
from workbench.tui.capture import screen_text
from workbench.tui.messages import LaunchRequested, Lifecycle
from workbench.tui.runner import make_options
from workbench.tui.screens.dialogs import Compare, EditProfile
from workbench.tui.screens.launch import LaunchScreen
from workbench.tui.screens.session import SessionScreen

from .conftest import Recorder, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.privileged, pytest.mark.usefixtures("live")]


def workbench_cgroups() -> set[str]:
    """Cgroups of sandboxes made by this process (other test runs may share the machine)."""
    prefix = f"workbench-{os.getpid()}-"
    found = set()
    for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"):
        if os.path.isdir(root):
            found |= {f"{root}/{d}" for d in os.listdir(root) if d.startswith(prefix)}
    return found


async def compare_failed_with_fixed_then_quit(pilot, app) -> None:
    """`c` on the fixed run: the comparison shows the failed run (exit 1) beside it (exit 0)."""
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, Compare), "the comparison")
    text = screen_text(app)
    assert "exit 1" in text and "exit 0" in text
    await pilot.press("escape")
    await pilot.press("q")
    await wait_for(pilot, lambda: not app.is_running, "the app to exit")


def session_ended(app) -> bool:
    return isinstance(app.screen, SessionScreen) and app.screen.state.ended


async def test_launch_screen_previews_profiles_and_launches_a_demo(tmp_path: Path):
    app = build_app()
    seen = Recorder(LaunchRequested, Lifecycle)
    before = workbench_cgroups()
    async with app.run_test(size=(120, 40), message_hook=seen) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen), "the launch screen")
        launch = app.screen
        profiles = launch.query_one("#profiles")
        profiles.highlighted = profiles.get_option_index("strict")
        await wait_for(pilot, lambda: launch.profile and launch.profile.name == "strict", "strict selected")
        text = screen_text(app)
        assert "allows only" in text and "memory 256.0M, pids 64, cpus 0.5" in text
        # an empty command is one line, not a launch
        launch.query_one("#command").value = "  "
        await pilot.click("#launch")
        await wait_for(pilot, lambda: "no command: type one, or pick a demo" in screen_text(app), "the error line")
        launch.query_one("#command").value = "sh -c 'echo unclosed"
        launch.query_one("#command").focus()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: "close the quote" in screen_text(app), "the quote error")
        assert not [m for m in seen.messages if isinstance(m, LaunchRequested)]
        # a demo fills the command and the profile, with the demo's extra denial in the preview
        demos = launch.query_one("#demos")
        demos.focus()
        demos.highlighted = demos.get_option_index("whoami")
        await wait_for(pilot, lambda: launch.query_one("#command").value.startswith("sh -c 'id;"), "demo command")
        assert launch.profile.name == "default"
        launch.query_one("#record").value = str(tmp_path / "whoami.sqlite")
        launch.query_one("#command").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: session_ended(app), "the demo's session to end", 60)
        await wait_for(pilot, lambda: any(isinstance(m, Lifecycle) and isinstance(m.event, SessionEnded)
                                          for m in seen.messages), "the SessionEnded message")
        screen = app.screen
        assert screen.state.exited.exit_code == 0
        out = "\n".join(line for _, line in screen.state.output)
        assert "uid=0(root)" in out and "sandbox" in out and "Seccomp:\t2" in out
        kinds = [type(m.event).__name__ for m in seen.messages if isinstance(m, Lifecycle)]
        assert kinds == ["SessionStarted", "SandboxReady", "SandboxReleased", "SandboxExited", "SessionEnded"]
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit")
    assert app.return_code == 0
    assert workbench_cgroups() == before
    from workbench.record import open_recording

    recording = open_recording(tmp_path / "whoami.sqlite")  # the launch screen's "Record to"
    try:
        assert recording.complete and recording.meta["command"][:2] == ["sh", "-c"]
        kinds = {type(e).__name__ for e in recording.events()}
        assert {"SessionStarted", "SandboxExited", "Output"} <= kinds
    finally:
        recording.close()


async def test_edit_relaunch_and_compare(tmp_path: Path):
    """The debugging loop: a denied mkdir fails the run; allow it from the TUI; the rerun passes."""
    target = tmp_path / "made"
    profile = apply_overrides(load("default"), deny=["mkdir"], binds=[f"{tmp_path}:/work:rw"])
    options = make_options(profile, ["sh", "-c", "mkdir /work/made && echo made it"])
    app = build_app(options)
    before = workbench_cgroups()
    os.chmod(tmp_path, 0o777)  # the sandbox's root maps to an unprivileged host uid
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: session_ended(app), "the first run to end", 60)
        first = app.screen
        assert first.state.exited.exit_code == 1 and not target.exists()
        await wait_for(pilot, lambda: "Seccomp denials (1)" in screen_text(app), "the one denial on screen")
        denial = next(iter(first.state.denials.values())).first
        assert (denial.syscall, denial.errno, denial.args.get("pathname")) == ("mkdir", "EPERM", "/work/made")
        assert any(f.layer == "seccomp" for f in first.state.findings)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditProfile), "the profile editor")
        app.screen.query_one("#edit-allow").value = "mkdri"
        await pilot.click("#relaunch")
        await wait_for(pilot, lambda: "unknown syscall 'mkdri'" in screen_text(app), "the validation error")
        app.screen.query_one("#edit-allow").value = "mkdir"
        app.screen.query_one("#edit-allow").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen is not first,
                       "the relaunched session")
        await wait_for(pilot, lambda: session_ended(app), "the second run to end", 60)
        second = app.screen
        assert second.state.exited.exit_code == 0 and target.is_dir()
        assert "mkdir" not in second.options.profile.seccomp.syscalls
        await compare_failed_with_fixed_then_quit(pilot, app)
    assert workbench_cgroups() == before


async def test_rerun_starts_from_a_sandbox_built_ahead_and_quit_leaves_none():
    options = make_options(load("default"), ["sh", "-c", "echo run"])
    app = build_app(options)
    before = workbench_cgroups()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: session_ended(app), "the first run to end", 60)
        first = app.screen
        assert app.sessions[-1].sandbox.from_spare is False  # nothing was built ahead of the first
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen is not first
                       and session_ended(app), "the rerun to end", 60)
        assert app.screen.state.exited.exit_code == 0 and ("stdout", "run") in app.screen.state.output
        rerun = app.sessions[-1].sandbox
        assert rerun.from_spare is True and set(rerun.phases_ms) == {"assign"}  # only the command was handed over
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit")
    assert workbench_cgroups() == before  # the spare built after the rerun is gone too


async def test_a_replayed_failure_is_fixed_and_relaunched_live(tmp_path: Path):
    """A failure recorded elsewhere (CI): replay it, apply the diagnosis' fix, run it live, compare."""
    from workbench.session import Session, SessionOptions
    from workbench.tui.screens.replay import ReplayScreen

    target, recording = tmp_path / "made", tmp_path / "ci-run.sqlite"
    os.chmod(tmp_path, 0o777)  # the sandbox's root maps to an unprivileged host uid
    profile = apply_overrides(load("default"), deny=["mkdir"], binds=[f"{tmp_path}:/work:rw"])
    recorded = Session(SessionOptions(profile=profile, command=["sh", "-c", "mkdir /work/made && echo made it"],
                                      record=str(recording), stdin="null"))
    try:
        recorded.start()
        assert recorded.wait(timeout=60).exit_code == 1
    finally:
        recorded.close()
    app = build_app(replay=str(recording))
    before = workbench_cgroups()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen), "the replay")
        replay = app.screen
        await pilot.press("G")
        await wait_for(pilot, lambda: replay.state.ended and any(f.fix_options for f in replay.state.findings),
                       "the recorded failure and its diagnosis")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, EditProfile), "the editor, filled in with the fix")
        assert "mkdir" in app.screen.query_one("#edit-allow").value
        app.screen.query_one("#edit-allow").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen)
                       and not isinstance(app.screen, ReplayScreen) and session_ended(app), "the live run", 60)
        assert app.screen.state.exited.exit_code == 0 and target.is_dir()
        await compare_failed_with_fixed_then_quit(pilot, app)
    assert workbench_cgroups() == before


SLEEPER = ["sh", "-c", "echo started; exec sleep 300"]


async def until_started(pilot, app) -> None:
    """The SLEEPER's session is on screen and its command has started."""
    await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen)
                   and ("stdout", "started") in app.screen.state.output, "the command to start", 60)


async def test_quit_while_running_ends_the_sandbox():
    app = build_app(make_options(load("default"), SLEEPER))
    before = workbench_cgroups()
    async with app.run_test(size=(100, 30)) as pilot:
        await until_started(pilot, app)
        pid = app.screen.state.ready.pid
        assert os.path.exists(f"/proc/{pid}")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 60)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert workbench_cgroups() == before


async def test_x_kills_the_sandbox_and_the_screen_says_so():
    app = build_app(make_options(load("default"), SLEEPER))
    before = workbench_cgroups()
    async with app.run_test(size=(100, 30)) as pilot:
        await until_started(pilot, app)
        screen = app.screen
        running = workbench_cgroups() - before
        await pilot.press("x")
        await wait_for(pilot, lambda: screen.state.ended, "the session to end", 60)
        assert screen.state.exited.signal == 9 and screen.state.exited.exit_code is None
        await wait_for(pilot, lambda: screen_text(app).startswith(" killed by signal 9"), "the status line")
        # The session tore itself down while the app still runs (a spare for a rerun may be built
        # meanwhile: other cgroups, dropped at exit).
        assert running and not running & workbench_cgroups()
        assert app.is_running
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 60)
    assert workbench_cgroups() == before


async def test_an_oom_kill_shows_in_the_tree_the_chart_and_the_diagnosis():
    from workbench import demos

    app = build_app(demos.session_options("memory"))  # 512 MiB wanted, 128 MiB allowed
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: session_ended(app), "the demo to be killed", 60)
        screen = app.screen
        assert screen.state.exited.signal == 9
        main = screen.state.processes[screen.state.ready.pid]
        assert main.oom_killed and main.signal == 9
        assert any(f.layer == "cgroup-memory" for f in screen.state.findings)
        await pilot.pause()
        text = screen_text(app)
        assert text.startswith(" killed by signal 9")
        assert f"{main.pid} OOM-killed signal 9 python3" in text
        assert "diagnosis: cgroup-memory" in text
        # (no assertion on the memory chart: the 4 Hz sampler may take no sample during a 0.1 s run)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 60)


async def test_without_probes_the_screen_says_why_and_still_shows_the_run():
    options = make_options(load("default"), ["sh", "-c", "echo no probes here"], trace=False)
    app = build_app(options)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: session_ended(app), "the run", 60)
        screen = app.screen
        assert screen.state.exited.exit_code == 0 and screen.state.syscalls_seen == 0
        assert ("stdout", "no probes here") in screen.state.output
        await wait_for(pilot, lambda: "probes off: syscalls (--no-trace was given)" in screen_text(app),
                       "the reason on the status line")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 60)


async def test_a_command_missing_in_the_sandbox_is_shown_as_such():
    app = build_app(make_options(load("default"), ["/no/such/program", "--flag"]))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: session_ended(app), "the run", 60)
        screen = app.screen
        assert screen.state.exited.exit_code == 127
        await wait_for(pilot, lambda: screen_text(app).startswith(" exit 127"), "the exit on the status line")
        assert "exit 127 (exec failed: ENOENT)" in screen_text(app)
        assert "command not found in the sandbox" in screen_text(app)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 60)


async def test_the_launch_screen_runs_the_chosen_backend():
    app = build_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen), "the launch screen")
        launch = app.screen
        launch.query_one("#backend").value = "bwrap"
        launch.query_one("#command").value = "sh -c 'echo via bubblewrap'"
        launch.query_one("#command").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: session_ended(app), "the bwrap run", 60)
        state = app.screen.state
        assert state.started.backend == "bwrap" and state.exited.exit_code == 0
        assert ("stdout", "via bubblewrap") in state.output
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 60)


async def test_a_real_flood_keeps_exact_counts_in_top_and_the_ui_answering():
    # 200,001 one-byte writes: the stream keeps the last 50,000 and counts what it dropped;
    # Top reads the in-kernel aggregates, exact whatever the stream dropped.
    options = make_options(load("default"),
                           ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=200001", "status=none"])
    app = build_app(options)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen.state.released,
                       "the flood to start", 60)
        screen = app.screen
        view = screen.query_one("#stream-view")
        view.focus()
        await pilot.press("space")  # the UI answers keys during the flood
        await wait_for(pilot, lambda: not view.following, "pause during the flood")
        await wait_for(pilot, lambda: screen.state.ended, "the flood to end", 120)
        stats = {s.name: s for s in screen.state.stats}
        assert stats["write"].count >= 200_001 and stats["read"].count >= 200_001
        top = screen.query_one("#top")
        await wait_for(pilot, lambda: top.row_count == len(stats), "every syscall in top")
        assert int(top.get_row("write")[1]) == stats["write"].count
        s = screen.state
        assert len(s.stream) <= 50_000
        # every call reached the UI, or was counted as dropped (UI) or lost (kernel)
        assert s.syscalls_seen + s.stream_dropped + s.kernel_lost >= 400_002
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 60)


async def test_a_applies_the_diagnosis_fix_and_the_rerun_works():
    from workbench import demos

    app = build_app(demos.session_options("cache"))  # seccomp refuses mkdir and mkdirat
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: session_ended(app), "the failing run", 60)
        first = app.screen
        await wait_for(pilot, lambda: any(f.fix_options for f in first.state.findings), "a fix", 30)
        assert first.state.exited.exit_code == 1
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, EditProfile), "the editor")
        allow = app.screen.query_one("#edit-allow").value
        assert "mkdir" in allow.split(",")
        app.screen.query_one("#edit-allow").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen is not first
                       and app.screen.state.ended, "the rerun", 60)
        second = app.screen.state
        assert second.exited.exit_code == 0 and ("stdout", "cache-app: cache ready") in second.output
        assert second.denials_total == 0
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit", 60)
