"""A syscall flood recorded end to end: every syscall the kernel counted is either a row in the
recording or accounted for as lost (by the ring buffer or by the recorder) — nothing vanishes
silently."""

from __future__ import annotations

import sqlite3

import pytest
from .scenario_helpers import run

from workbench.core import events as ev
from workbench.record import open_recording
from workbench.sandbox.profile import load

pytestmark = pytest.mark.privileged


def test_every_counted_syscall_is_recorded_or_counted_as_lost(tmp_path):
    rec = str(tmp_path / "flood.sqlite")
    outcome = run(load("default"), ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=100001"], record=rec)
    assert outcome.ok
    with open_recording(rec) as recording:
        assert recording.complete
        lost = sum(e.count for e in recording.events(kinds=(ev.EventsLost,)) if e.source != "recording")
        stats = list(recording.events(kinds=(ev.SyscallStats,)))[-1]  # the final, exact aggregates
        dropped = recording.meta["dropped_events"]
    db = sqlite3.connect(rec)
    rows = db.execute("SELECT count(*) FROM syscalls").fetchone()[0]
    reads = db.execute("SELECT count(*) FROM syscalls WHERE name = 'read'").fetchone()[0]
    db.close()
    exact = {s.name: s.count for s in stats.stats}
    assert exact["read"] >= 100001 and exact["write"] >= 100001
    assert rows + dropped + lost == sum(exact.values())
    assert reads <= exact["read"]
