"""Export a recording: JSON lines (one event per line, for jq) or Chrome's trace event format
(opens in Perfetto / chrome://tracing). Both stream: a million events never sit in memory."""

from __future__ import annotations

import json
from typing import IO

from workbench.core import events as ev
from workbench.record.codec import to_data
from workbench.record.reader import Recording

FORMATS = ("jsonl", "chrome-trace")


def export_jsonl(rec: Recording, out: IO[str]) -> int:
    """One JSON object per line, `{"type": ..., "ts_ns": ..., fields}`; a SyscallBatch becomes one
    `Syscall` line per call. Returns the number of lines."""
    n = 0
    for event in rec.events():
        items = event.syscalls if isinstance(event, ev.SyscallBatch) else (event,)
        for item in items:
            out.write(json.dumps(to_data(item), ensure_ascii=False, separators=(",", ":")))
            out.write("\n")
            n += 1
    return n


def _us(rec: Recording, ts_ns: int) -> float:
    return (ts_ns - rec.start_ns) / 1000.0


def _trace_events(rec: Recording, event: ev.Event, names: dict[int, str]):
    """Trace-format dicts for one event (a generator: batches give many)."""
    t = _us(rec, event.ts_ns)
    if isinstance(event, (ev.SyscallBatch, ev.Syscall)):
        for sc in event.syscalls if isinstance(event, ev.SyscallBatch) else (event,):
            names.setdefault(sc.pid, sc.comm)
            args = {"ret": sc.ret, **({"errno": sc.errno} if sc.errno else {}),
                    **{k: v for k, v in sc.decoded.items() if isinstance(v, (str, int, float, bool))}}
            if sc.denied:
                yield {"name": f"{sc.name} (seccomp)", "cat": "seccomp", "ph": "i", "s": "t",
                       "ts": _us(rec, sc.ts_ns), "pid": sc.pid, "tid": sc.tid, "args": args}
            else:
                yield {"name": sc.name, "cat": "syscall", "ph": "X", "ts": _us(rec, sc.ts_ns),
                       "dur": sc.duration_ns / 1000.0, "pid": sc.pid, "tid": sc.tid, "args": args}
    elif isinstance(event, ev.ProcessExec):
        names[event.pid] = event.comm or event.filename.rsplit("/", 1)[-1]
        yield {"name": f"exec {event.filename}", "cat": "process", "ph": "i", "s": "p", "ts": t,
               "pid": event.pid, "tid": event.pid, "args": {"argv": list(event.argv)}}
    elif isinstance(event, (ev.ProcessForked, ev.ProcessExited, ev.FatalSignal, ev.OomKill)):
        kind = type(event).__name__
        yield {"name": kind, "cat": "process", "ph": "i", "s": "p", "ts": t, "pid": event.pid,
               "tid": event.pid, "args": {k: v for k, v in to_data(event).items() if k not in ("type", "ts_ns")}}
    elif isinstance(event, ev.SeccompDenial):
        yield {"name": f"denied {event.syscall}", "cat": "seccomp", "ph": "i", "s": "t", "ts": t,
               "pid": event.pid, "tid": event.tid, "args": {"action": event.action, "errno": event.errno,
                                                            "rule": event.rule, **event.args}}
    elif isinstance(event, ev.ResourceSample):
        yield {"name": "memory", "cat": "cgroup", "ph": "C", "ts": t, "pid": 0,
               "args": {"bytes": event.memory_bytes}}
        yield {"name": "pids", "cat": "cgroup", "ph": "C", "ts": t, "pid": 0, "args": {"tasks": event.pids}}
    elif isinstance(event, ev.Output):
        yield {"name": event.stream, "cat": "output", "ph": "i", "s": "g", "ts": t,
               "args": {"text": event.data[:200].decode(errors="replace")}}
    elif isinstance(event, (ev.Finding, ev.Notice, ev.SandboxReleased, ev.SandboxExited, ev.SessionStarted,
                            ev.SandboxReady, ev.SessionEnded, ev.EventsLost)):
        label = event.layer + ": " + event.summary if isinstance(event, ev.Finding) else type(event).__name__
        yield {"name": label, "cat": "session", "ph": "i", "s": "g", "ts": t,
               "args": {k: v for k, v in to_data(event).items()
                        if k not in ("type", "ts_ns", "profile") and not isinstance(v, dict)}}


def export_chrome_trace(rec: Recording, out: IO[str]) -> int:
    """Chrome's JSON trace format: syscalls as slices per thread, process and seccomp events as
    instants, memory and pids as counters. Returns the number of trace events written."""
    names: dict[int, str] = {0: "sandbox cgroup"}
    out.write('{"displayTimeUnit": "ms", "traceEvents": [\n')
    n = 0
    for event in rec.events():
        for item in _trace_events(rec, event, names):
            out.write((",\n" if n else "") + json.dumps(item, ensure_ascii=False, separators=(",", ":")))
            n += 1
    for pid, name in names.items():
        out.write((",\n" if n else "") + json.dumps({"name": "process_name", "ph": "M", "pid": pid,
                                                      "args": {"name": f"{name} ({pid})" if pid else name}}))
        n += 1
    out.write("\n]}\n")
    return n
