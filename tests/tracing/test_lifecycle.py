"""The tracer's life: reuse without recompiling, exact loss accounting, teardown, no eBPF."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workbench.core.events import EventsLost, ProbeStatus
from workbench.tracing import loader

pytestmark = pytest.mark.privileged


def count_of(stats, name):
    return next((s.count for s in stats.stats if s.name == name), 0)


def session(t, sandboxes, cmd, start=True):
    held = sandboxes.launch(cmd)
    t.attach(held.cgroup_id, held.pid, held.pid)
    if start:
        t.start()
    held.release()
    assert held.wait() == 0
    t.stop()
    return held


def test_second_tracer_reuses_the_loaded_probes_with_fresh_counts(make_tracer, sandboxes, recorder, workload):
    first = make_tracer()
    first.compile()
    compiles = loader.compiles
    session(first, sandboxes, [workload, "getppid", "23"])
    second = make_tracer()
    second.compile()
    assert loader.compiles == compiles  # taken from the cache, not compiled again
    held = session(second, sandboxes, [workload, "getppid", "29"])
    assert count_of(first.stats(), "getppid") == 23
    assert count_of(second.stats(), "getppid") == 29  # the maps were reset between sandboxes
    assert len([s for s in recorder.syscalls() if s.name == "getppid" and s.pid == held.pid]) == 29


def test_stopped_tracer_leaves_no_syscall_hook_and_counts_nothing(make_tracer, sandboxes, workload):
    t = make_tracer()
    t.compile()
    loaded = t._loaded
    held = session(t, sandboxes, [workload, "getppid", "3"])
    assert loaded.bpf.raw_tracepoint_fds == {}  # the per-syscall hooks are off the host
    config = loaded.bpf[b"wb_config"][0]
    assert (config.mode, config.cgroup_id) == (0, 0)  # the cached rest is filtered to nothing
    t.stop()  # idempotent
    assert loader.release_cached() == 1  # and the leak check of tests/conftest.py sees no bpf fd
    assert held.proc.returncode == 0


def test_lost_records_are_counted_exactly(make_tracer, sandboxes, recorder, workload):
    # One 4 KiB page of stream (about 40 records; the copier empties it every few milliseconds)
    # and no decoding until the workload is done: most records are lost in the kernel, and what
    # was delivered plus what was lost is exactly what the kernel aggregates counted.
    t = make_tracer(options=loader.Options(stream=True, stream_pages=1))
    t.compile()
    session(t, sandboxes, [workload, "getppid", "2001"], start=False)
    delivered = len(recorder.syscalls())
    total = sum(s.count for s in t.stats().stats)
    assert count_of(t.stats(), "getppid") == 2001
    assert t.lost() > 0
    assert delivered + t.lost() == total
    assert sum(e.count for e in recorder.of(EventsLost)) == t.lost()


def test_records_beyond_the_copiers_queue_are_counted_exactly(make_tracer, sandboxes, recorder, workload):
    # A decoder stuck in a slow subscriber: the copier keeps 64 KiB of records for it (of ~2 MB
    # made), counts the rest lost as "queue" losses, and nothing is counted twice or missed.
    import threading

    from workbench.core.events import SyscallBatch

    done = threading.Event()
    recorder.bus.subscribe(lambda _batch: done.wait(30), SyscallBatch)
    t = make_tracer(stream_queue=64 << 10)
    t.compile()
    held = sandboxes.launch([workload, "getppid", "20001"])
    t.attach(held.cgroup_id, held.pid, held.pid)
    t.start()
    held.release()
    assert held.wait() == 0
    done.set()
    t.stop()
    total = sum(s.count for s in t.stats().stats)
    assert count_of(t.stats(), "getppid") == 20001
    queue_lost = sum(e.count for e in recorder.of(EventsLost) if e.source == "queue")
    assert queue_lost > 10000
    assert len(recorder.syscalls()) + t.lost() == total
    assert sum(e.count for e in recorder.of(EventsLost)) == t.lost()


def test_a_dead_copier_is_told_and_what_it_held_is_counted_lost(make_tracer, sandboxes, recorder, workload):
    # SIGKILL the stream's copier process while the workload runs: a notice says so, and the
    # records it held or never took are counted lost, so delivered + lost is still exact.
    import signal

    from workbench.core.events import Notice

    t = make_tracer()
    t.compile()
    held = sandboxes.launch([workload, "getppid", "300001"])
    t.attach(held.cgroup_id, held.pid, held.pid)
    t.start()
    copier = t._copier.proc
    held.release()
    copier.send_signal(signal.SIGKILL)
    assert held.wait() == 0
    t.stop()
    total = sum(s.count for s in t.stats().stats)
    assert count_of(t.stats(), "getppid") == 300001
    assert any(isinstance(n, Notice) and "copier process died" in n.text for n in recorder.of(Notice))
    assert t.lost() > 0
    assert len(recorder.syscalls()) + t.lost() == total
    assert sum(e.count for e in recorder.of(EventsLost)) == t.lost()


def test_syscall_stream_without_start_is_drained_by_stop(make_tracer, sandboxes, recorder, workload):
    t = make_tracer()
    t.compile()
    session(t, sandboxes, [workload, "getppid", "23"], start=False)
    assert len([s for s in recorder.syscalls() if s.name == "getppid"]) == 23


def test_connect_address_is_decoded(make_tracer, sandboxes, recorder, workload):
    import socket

    with socket.socket() as s:  # a port nobody listens on: bind, then close before the connect
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = make_tracer()
    t.compile()
    session(t, sandboxes, [workload, "connect", str(port)])
    calls = [s for s in recorder.syscalls() if s.name == "connect"]
    assert [(c.decoded, c.errno) for c in calls] == [
        ({"addr": f"127.0.0.1:{port}", "family": "AF_INET"}, "ECONNREFUSED")]
    sockets = [s for s in recorder.syscalls() if s.name == "socket"]
    assert [c.decoded["domain"] for c in sockets] == ["AF_INET"]


def test_without_root_compile_says_why_and_turns_every_probe_off():
    code = ("from workbench.core.bus import Bus\n"
            "from workbench.core.errors import TracingUnavailable\n"
            "from workbench.core.events import ProbeStatus\n"
            "from workbench.tracing.tracer import Tracer\n"
            "bus = Bus(); seen = []\n"
            "bus.subscribe(seen.append, ProbeStatus)\n"
            "try:\n"
            "    Tracer(bus).compile()\n"
            "except TracingUnavailable as exc:\n"
            "    print(exc)\n"
            "print(sorted({(e.probe, e.state) for e in seen if e.state == 'off'}))\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": root}, user=65534, group=65534, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "eBPF tracing needs root: run as root (sudo), or pass --no-trace"
    assert lines[1] == str(sorted({(p, "off") for p in loader.PROBES}))
    assert out.stderr == ""


def test_stop_from_a_subscriber_on_the_tracer_thread(make_tracer, sandboxes, recorder, workload, wait_for):
    from workbench.core.events import ProcessExited

    t = make_tracer()
    t.compile()
    held = sandboxes.launch([workload, "getppid", "23"])

    def on_exit(ev):
        if ev.pid == held.pid:
            t.stats()  # subscribers may ask while the tracer works
            t.stop()

    recorder.bus.subscribe(on_exit, ProcessExited)
    t.attach(held.cgroup_id, held.pid, held.pid)
    t.start()
    held.release()
    assert held.wait() == 0
    wait_for(lambda: [e for e in recorder.of(ProbeStatus) if e.state == "detached"], what="detached")
    assert next(s.count for s in t.stats().stats if s.name == "getppid") == 23


def test_dump_bpf_shows_what_was_loaded(make_tracer):
    t = make_tracer(dump_bpf=True)
    t.compile()
    text = t.dump_text
    assert text.startswith("# cflags: ") and "-DWB_STREAM=1" in text.splitlines()[0]
    assert "int wb_sys_enter(struct bpf_raw_tracepoint_args *ctx)" in text  # the source as compiled
    for fn in ("wb_sys_enter", "wb_sys_exit", "wb_sched_switch", "wb_signal_generate",
               "tracepoint__sched__sched_process_exit"):
        section = text.split(f"# {fn}\n", 1)[1]
        assert "\n   0: " in section.split("\n# ", 1)[0]  # its instructions, disassembled by bcc


def test_a_second_stop_returns_only_when_the_first_is_done(make_tracer, sandboxes, recorder, workload, wait_for):
    import sys
    import threading

    t = make_tracer()
    t.compile()
    held = sandboxes.launch([workload, "getppid", "23"])
    t.attach(held.cgroup_id, held.pid, held.pid)
    t.start()
    held.release()
    assert held.wait() == 0
    order = []
    second = threading.Thread(target=lambda: (t.stop(), order.append("second returned")))

    def waiting_in_stop(th):
        frame = sys._current_frames().get(th.ident)
        names = []
        while frame is not None:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        return "stop" in names and "wait" in names

    def on_status(ev):
        # Inside the first stop's final publish: start a second caller and see it wait.
        if ev.state == "detached" and not second.is_alive() and not order:
            second.start()
            wait_for(lambda: waiting_in_stop(second), what="the second stop() to wait")
            order.append("first published")

    recorder.bus.subscribe(on_status, ProbeStatus)
    t.stop()
    second.join(10)
    assert order == ["first published", "second returned"]
