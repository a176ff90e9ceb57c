"""Concurrency: 20 sandboxes at once, each traced by its own probes. Each one's report counts its
own syscalls exactly (no cross-talk between the cgroup filters), and everything is cleaned up
(the leak check of tests/conftest.py runs after each test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from workbench.sandbox import profile as prof
from workbench.session import Session, SessionOptions

from . import hostkernel as hk
from .conftest import HERE, REPO, open_to_sandbox

pytestmark = pytest.mark.privileged

SANDBOXES = 20


def wait_until(predicate, timeout: float, what: str):
    from tests.conftest import wait_until as wait

    return wait(predicate, timeout=timeout, what=what)


def test_twenty_traced_sandboxes_live_at_once_and_each_counts_its_own(tmp_path):
    """Twenty sandboxes, each with its probes attached, all alive at the same time; then their
    commands run one by one, each counted by its own probes while the nineteen others listen.

    Ended one after another (freeing probes together is the next test's subject)."""
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    open_to_sandbox(ctl)
    go = ctl / "go"
    os.mkfifo(go, 0o666)
    go.chmod(0o666)
    # Held open by us for reading and writing: a sandbox's open() never blocks, its read() waits
    # for a line; each line lets exactly one sandbox go.
    hold = os.open(go, os.O_RDWR)
    base = prof.apply_overrides(prof.load("default"), binds=[f"{ctl}:/tmp/ctl"])
    sessions: list[Session] = []
    try:
        for i in range(SANDBOXES):
            # 23, 25, 27...: a different odd number of one-byte writes in each sandbox.
            command = ["sh", "-c", "read line < /tmp/ctl/go; "
                                   f"exec dd if=/dev/zero of=/dev/null bs=1 count={23 + 2 * i} status=none"]
            s = Session(SessionOptions(profile=base, command=command, stdin="null"))
            sessions.append(s)
            s.start()
        assert len(hk.cgroup_dirs(os.getpid())) == SANDBOXES * 5
        assert len(hk.bpf_prog_ids(os.getpid())) >= SANDBOXES * 3
        for ended in range(1, SANDBOXES + 1):
            os.write(hold, b"go\n")
            wait_until(lambda: sum(s.exited is not None for s in sessions) == ended, 60,
                       f"sandbox number {ended} to end")
        exits = [s.wait(timeout=60) for s in sessions]
    finally:
        for s in sessions:
            s.close()
        os.close(hold)
    for i, (s, exited) in enumerate(zip(sessions, exits)):
        report = s.report()
        assert exited is not None and exited.exit_code == 0, (i, report["notices"])
        assert {name: p["state"] for name, p in report["probes"].items()} == {
            "syscalls": "detached", "seccomp": "detached", "processes": "detached", "oom": "detached"}, i
        assert report["syscalls"]["write"] == {"count": 23 + 2 * i, "errors": {}}, i
        assert report["seccomp_denials"] == [], i


def test_twenty_traced_sandboxes_started_at_the_same_moment():
    done = subprocess.run([sys.executable, str(HERE / "many_sandboxes.py"), str(SANDBOXES)], capture_output=True,
                          text=True, timeout=90, cwd=str(REPO))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = sorted((json.loads(line) for line in done.stdout.splitlines()), key=lambda r: r["i"])
    assert rows == [{"i": i, "status": 0, "writes": {"count": 23 + 2 * i, "errors": {}}, "probes": ["detached"]}
                    for i in range(SANDBOXES)]


def test_probes_of_sandboxes_that_end_together_are_freed_together():
    done = subprocess.run([sys.executable, str(HERE / "free_together.py"), "7"], capture_output=True, text=True,
                          timeout=90, cwd=str(REPO))
    assert (done.returncode, done.stdout) == (0, "freed 7\n"), done.stderr[-1000:]
