"""End to end, as a person would use it: the real `workbench tui` in tmux, a denied syscall on the
screen, `q`, and nothing left behind (sandbox processes, cgroups)."""

from tests.conftest import wait_until as wait_until_with_deadline
import os
import shlex
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.privileged

WORKBENCH = Path(sys.executable).with_name("workbench")


def tmux(socket: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=check)


def wait_until(predicate, what: str, deadline_s: float = 60.0):
    return wait_until_with_deadline(predicate, deadline_s, what)


def cgroup_dirs_of(pid: int) -> list[str]:
    """The workbench cgroup directories holding `pid`, in every hierarchy (v1 and v2)."""
    dirs = []
    for line in open(f"/proc/{pid}/cgroup").read().splitlines():
        _, controllers, path = line.split(":", 2)
        if "workbench-" not in path:
            continue
        if controllers == "":
            root = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
        else:
            root = f"/sys/fs/cgroup/{controllers.split(',')[0].removeprefix('name=')}"
        dirs.append(root + path)
    return dirs


def test_denied_mkdir_shows_in_the_real_tui_and_q_leaves_nothing(tmp_path: Path):
    socket = f"wb-e2e-{os.getpid()}"
    command = f"exec {WORKBENCH} tui --deny mkdir -- sh -c " + shlex.quote("mkdir /tmp/a; exec sleep 30")
    env = dict(os.environ, TERM="xterm-256color")
    subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "wb", "-x", "120",
                    "-y", "40", "-c", str(tmp_path), command], check=True, env=env)
    try:
        pane_pid = int(tmux(socket, "list-panes", "-t", "wb", "-F", "#{pane_pid}").stdout.split()[0])
        screen = lambda: tmux(socket, "capture-pane", "-p", "-t", "wb", check=False).stdout  # noqa: E731
        text = wait_until(lambda: "Seccomp denials (1)" in screen() and screen(), "the denial on screen")
        assert "1 DENIED" in text
        assert "mkdir" in text and "pathname=/tmp/a" in text
        sleeper = wait_until(lambda: [p.pid for p in psutil.Process(pane_pid).children(recursive=True)
                                      if p.name() == "sleep"], "the sandboxed sleep")
        cgroups = cgroup_dirs_of(int(sleeper[0]))
        assert cgroups and all(os.path.isdir(d) for d in cgroups)
        tmux(socket, "send-keys", "-t", "wb", "q")
        wait_until(lambda: tmux(socket, "has-session", "-t", "wb", check=False).returncode != 0,
                   "workbench to quit and its tmux session to end")
        wait_until(lambda: not os.path.exists(f"/proc/{pane_pid}"), "the workbench process to be gone", 10)
        for pid in sleeper:
            assert not os.path.exists(f"/proc/{pid}"), "the sandboxed process outlived workbench"
        assert [d for d in cgroups if os.path.exists(d)] == []
    finally:
        tmux(socket, "kill-server", check=False)


def test_the_terminal_goes_to_a_sandboxed_shell_and_comes_back(tmp_path: Path):
    socket = f"wb-shell-{os.getpid()}"
    command = f"exec {WORKBENCH} tui -- sh -c " + shlex.quote("echo ready; exec sleep 60")
    subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "wb", "-x", "120",
                    "-y", "40", "-c", str(tmp_path), command], check=True,
                   env=dict(os.environ, TERM="xterm-256color"))
    try:
        screen = lambda: tmux(socket, "capture-pane", "-p", "-t", "wb", check=False).stdout  # noqa: E731
        wait_until(lambda: "running" in screen() and "ready" in screen(), "the session running")
        tmux(socket, "send-keys", "-t", "wb", "!")
        wait_until(lambda: "`exit` brings you back" in screen(), "the shell's banner")
        tmux(socket, "send-keys", "-t", "wb", "echo $((6*7)) $(hostname)", "Enter")
        wait_until(lambda: "42 sandbox" in screen(), "the shell's answer from inside the sandbox")
        tmux(socket, "send-keys", "-t", "wb", "exit", "Enter")
        wait_until(lambda: "╭─ Processes" in screen() and "running" in screen(), "the TUI back")
        tmux(socket, "send-keys", "-t", "wb", "q")
        wait_until(lambda: tmux(socket, "has-session", "-t", "wb", check=False).returncode != 0, "quit")
    finally:
        tmux(socket, "kill-server", check=False)
