"""Sandboxes built ahead (spares): a rerun of the same profile starts from one, gets a sandbox as
fresh as a cold one, an edited profile replaces it, and dropping it leaves nothing (privileged)."""

from __future__ import annotations

import os

import pytest

from workbench.core import events as ev
from workbench.sandbox import profile as prof
from workbench.sandbox.native import launcher
from workbench.session import Session, SessionOptions, drop_spares

pytestmark = pytest.mark.privileged


def run(command: str, profile: prof.Profile) -> tuple[int, str, Session]:
    session = Session(SessionOptions(profile=profile, command=["sh", "-c", command], trace=False,
                                     stdin="null", keep_spare=True))
    out: list[bytes] = []
    session.bus.subscribe(lambda e: out.append(e.data), ev.Output)
    try:
        session.start()
        exited = session.wait(timeout=60)
    finally:
        session.close()
    assert exited is not None
    return exited.exit_code, b"".join(out).decode(), session


def sandbox_cgroups() -> set[str]:
    """Our sandboxes' v2 cgroups (the launcher names them workbench-<our pid>-...)."""
    prefix = f"workbench-{os.getpid()}-"
    return {d for d in os.listdir("/sys/fs/cgroup/unified") if d.startswith(prefix)}


def test_a_rerun_starts_from_the_spare_and_finds_nothing_of_the_last_run():
    default = prof.load("default")
    try:
        code, out, first = run("echo secret > /tmp/left; echo $$", default)
        assert code == 0 and not first.sandbox.from_spare
        cold_pid = out.split()[0]
        launcher().ping()  # the spare is built once nothing runs
        assert len(sandbox_cgroups()) == 1
        code, out, second = run("cat /tmp/left 2>/dev/null || echo clean; echo $$", default)
        assert second.sandbox.from_spare and set(second.sandbox.phases_ms) == {"assign"}
        assert code == 0 and out.split() == ["clean", cold_pid]  # its own /tmp, its own pid namespace
    finally:
        drop_spares()
    assert sandbox_cgroups() == set()


def test_an_edited_profile_replaces_the_spare():
    default = prof.load("default")
    edited = prof.apply_overrides(default, deny=["mkdir"])
    try:
        run("true", default)
        launcher().ping()
        kept = sandbox_cgroups()
        assert len(kept) == 1
        code, _, session = run("mkdir /tmp/x", edited)
        assert code != 0 and not session.sandbox.from_spare  # built for the edited profile, not taken
        launcher().ping()
        now = sandbox_cgroups()
        assert len(now) == 1 and now != kept  # one profile kept warm: the latest
        code, _, session = run("mkdir /tmp/x", edited)
        assert code != 0 and session.sandbox.from_spare  # the spare had the edited filter
    finally:
        drop_spares()
    assert sandbox_cgroups() == set()
