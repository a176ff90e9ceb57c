"""Exports of a recording holding every event type."""

from __future__ import annotations

import io
import json

from .record_samples import every_event

from workbench.core import events as ev
from workbench.core.bus import Bus
from workbench.record import Recorder, open_recording
from workbench.record.codec import from_data
from workbench.record.export import export_chrome_trace, export_jsonl


def recording(tmp_path):
    path = tmp_path / "all.sqlite"
    bus = Bus()
    rec = Recorder(bus, path, {})
    for e in every_event():
        bus.publish(e)
    rec.close()
    return open_recording(path)


def flat(events):
    for e in events:
        yield from (e.syscalls if isinstance(e, ev.SyscallBatch) else (e,))


def test_jsonl_is_one_event_per_line_and_decodes_back(tmp_path):
    out = io.StringIO()
    with recording(tmp_path) as rec:
        n = export_jsonl(rec, out)
    lines = out.getvalue().splitlines()
    assert n == len(lines) == len(list(flat(every_event())))
    assert [from_data(json.loads(line)) for line in lines] == list(flat(every_event()))


def test_chrome_trace_has_a_slice_per_syscall_and_an_instant_per_denied_one(tmp_path):
    out = io.StringIO()
    with recording(tmp_path) as rec:
        export_chrome_trace(rec, out)
    trace = json.loads(out.getvalue())["traceEvents"]
    calls = [c for c in flat(every_event()) if isinstance(c, ev.Syscall)]
    slices = [e for e in trace if e.get("cat") == "syscall"]
    denied = [e for e in trace if e.get("cat") == "seccomp" and e["name"].endswith("(seccomp)")]
    assert len(slices) == sum(not c.denied for c in calls) and len(denied) == sum(c.denied for c in calls)
    assert all(e["ts"] >= 0 for e in trace if "ts" in e)
    counters = [e for e in trace if e["ph"] == "C"]
    assert {e["name"] for e in counters} == {"memory", "pids"}
