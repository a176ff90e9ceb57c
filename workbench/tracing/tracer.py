"""The tracer: loads the probes, filters them to one sandbox, and turns what they see into events.

    t = Tracer(bus)             # cheap
    t.compile()                 # blocking, ~1 s the first time (run it in a worker thread)
    t.attach(cgroup_id, root_pid, gate_pid)   # the sandbox is held at its start gate
    t.start()                   # our thread polls the ring buffers and publishes on the bus
    ...
    t.stop()                    # idempotent: drain, final SyscallStats, detach, give back

Nothing here prints: bcc's and clang's output is captured by the loader, and lost records are
counted and published as `EventsLost`.
"""

from __future__ import annotations

import ctypes as ct
import os
import select
import threading
import time
from typing import Callable

from workbench.core.bus import Bus
from workbench.core.errors import TracingUnavailable
from workbench.core.events import (
    EventsLost, Notice, OomKill, ProbeStatus, SyscallBatch, SyscallStats, now_ns,
)
from workbench.tracing import kernelmaps, loader
from workbench.tracing.copier import DATA, LOST, QUEUE_LIMIT, Copier
from workbench.tracing.records import Decoder
from workbench.tracing.ringbuf import RingReader, spans

_MAX_NR = 512            # WB_MAX_NR
_WB_BATCH = 16           # WB_BATCH: plain stream records per batch ring record
_BATCH = 2048            # syscalls per SyscallBatch: few bus calls, still a fresh view
_IDLE_WAIT_S = 0.01      # the control ring wakes us; the timeout only bounds a missed wakeup
_LOST_EVERY_S = 0.5
_sessions = 0
_sessions_lock = threading.Lock()
# wb_config.mode values (probes/wb_layout.h)
_MODE_OFF, _MODE_CGROUP, _MODE_PIDS = 0, 1, 2
_LEVEL_EXACT = 0xFFFFFFFF


class Tracer:
    """eBPF probes for one sandbox at a time. All methods are safe from any thread."""

    def __init__(self, bus: Bus, stream: bool = True, rule_for: Callable[[str], str] | None = None,
                 dump_bpf: bool = False, options: loader.Options | None = None, denials: bool = True,
                 stream_queue: int = QUEUE_LIMIT):
        self.bus = bus
        self.stream_queue = stream_queue
        """Bytes of stream records the copier keeps for a decoder that is behind; beyond, lost."""
        self.denials = denials
        """False under a backend whose own machinery looks like seccomp to the probes (gVisor)."""
        self.options = options or loader.Options(stream=stream)
        self.rule_for = rule_for
        self.dump_bpf = dump_bpf
        self.dump_text = ""
        """With dump_bpf: the cflags, source and instructions of what was loaded."""
        self.compile_s = 0.0
        self._loaded: loader.Loaded | None = None
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctrl: RingReader | None = None
        self._copier: Copier | None = None
        self._decoder: Decoder | None = None
        self._attached = False
        self._stopped = False
        self._stopping_thread: threading.Thread | None = None
        self._stop_done = threading.Event()
        self._user_lost = 0
        self._lost_reported: dict[str, int] = {}
        self._final_lost = 0
        self._last_stats = SyscallStats(ts_ns=now_ns(), stats=())
        self._root_pid = 0
        self._probes_on: list[str] = []
        # The stream ring is emptied by a copier process (see copier.py: a thread of ours would
        # stall with every garbage collection); the decoder thread reads its frames, decoding
        # (microseconds per event) behind the kernel.
        self._decoder_thread: threading.Thread | None = None
        self._delivered = 0
        self._copier_died = False

    # --- lifecycle ------------------------------------------------------------------------------

    def compile(self) -> float:
        """Compile and load every probe (or take a loaded set from the cache); returns seconds.

        Raises TracingUnavailable (cause + fix) when eBPF cannot run here.
        """
        with self._lock:
            if self._loaded is not None:
                return self.compile_s  # one loaded object per tracer
        t0 = time.monotonic()
        for probe in loader.PROBES:
            self.bus.publish(ProbeStatus(ts_ns=now_ns(), probe=probe, state="compiling"))
        try:
            loader.check_host()
            loaded = loader.acquire(self.options)
        except TracingUnavailable as exc:
            for probe in loader.PROBES:
                self.bus.publish(ProbeStatus(ts_ns=now_ns(), probe=probe, state="off", reason=str(exc)))
            raise
        with self._lock:
            self._loaded = loaded
        self.compile_s = time.monotonic() - t0
        if self.dump_bpf:
            self.dump_text = loader.dump(loaded)
        return self.compile_s

    def attach(self, cgroup_id: int | None, root_pid: int, gate_pid: int) -> None:
        """Filter to the sandbox (its v2 cgroup id, or the process tree under root_pid) and attach.

        Events are dropped until gate_pid's execve enters, so the first one recorded is the app's
        execve. gate_pid 0 records from now.
        """
        with self._lock:
            if self._attached or self._stopped:
                raise RuntimeError("a Tracer attaches once; make a new one for the next sandbox")
            if self._loaded is None:
                self.compile()
            loaded = self._loaded
            assert loaded is not None
            bpf = loaded.bpf
            self._reset_maps()
            try:
                # A ring buffer map's max_entries is its size in bytes.
                ctrl = bpf[b"wb_ctrl"]
                self._ctrl = RingReader(ctrl.map_fd, ctrl.max_entries)
                self._ctrl.skip_all()
                if self.options.stream:
                    stream = bpf[b"wb_stream"]
                    leftover = RingReader(stream.map_fd, stream.max_entries)
                    leftover.skip_all()  # an earlier session's unread records, if any
                    leftover.close()
                    sys_size = ct.sizeof(loaded.layouts["sys"])
                    self._copier = Copier.spawn(stream.map_fd, stream.max_entries, self.stream_queue,
                                                batch=(sys_size * _WB_BATCH, _WB_BATCH))
            except OSError as exc:
                if self._ctrl is not None:
                    self._ctrl.close()
                self._ctrl = None
                raise TracingUnavailable(f"cannot read the probes' ring buffers ({exc.strerror})",
                                         "raise the locked-memory limit (ulimit -l), or pass --no-trace") from None
            self._decoder = Decoder(loaded.layouts, self.options.path_len, self.options.arg_len,
                                    self.rule_for, kernelmaps.proc_comm)
            self._decoder.denials = self.denials
            self._decoder.known_pids.update(p for p in (root_pid, gate_pid) if p)
            self._root_pid = root_pid
            failed = loader.attach_all(loaded)
            self._attached = True
            if cgroup_id is None:
                pids = bpf[b"wb_pids"]
                pids[pids.Key(root_pid)] = pids.Leaf(1)
            level = kernelmaps.cgroup_level(cgroup_id, root_pid) if cgroup_id is not None else None
            self._set_config(mode=_MODE_CGROUP if cgroup_id is not None else _MODE_PIDS,
                             cgroup_id=cgroup_id or 0, gate_tid=gate_pid, gate_open=0 if gate_pid else 1,
                             cgroup_level=_LEVEL_EXACT if level is None else level)
        off = {loader.PROBE_OF_HOOK[hook]: err for hook, err in failed}
        for probe in loader.PROBES:
            if probe in off:
                reason = f"tracepoint missing on this kernel ({off[probe][:120]})"
                self.bus.publish(ProbeStatus(ts_ns=now_ns(), probe=probe, state="off", reason=reason))
            else:
                self._probes_on.append(probe)
                self.bus.publish(ProbeStatus(ts_ns=now_ns(), probe=probe, state="attached",
                                             compile_s=loaded.compile_s))

    def start(self) -> None:
        """Start our polling thread (publishes on the bus from it)."""
        with self._lock:
            if self._thread is not None or not self._attached:
                return
            self._thread = threading.Thread(target=self._run, name="workbench-tracer-poll", daemon=True)
            self._thread.start()
            if self._copier is not None:
                self._decoder_thread = threading.Thread(target=self._decode_run, daemon=True,
                                                        name="workbench-tracer-decode")
                self._decoder_thread.start()

    def stop(self) -> None:
        """Drain, publish a final SyscallStats, detach and give the probes back. Idempotent.

        Safe from any thread, a bus subscriber included: called from one of our own threads it
        hands the work to a new thread (ours cannot join themselves) and returns at once.
        """
        me = threading.current_thread()
        with self._lock:
            if self._stopped:
                wait = me not in (self._thread, self._decoder_thread, self._stopping_thread)
            elif me in (self._thread, self._decoder_thread):
                threading.Thread(target=self.stop, name="workbench-tracer-stop", daemon=True).start()
                return
            else:
                wait = None
                self._stopped = True
                self._stopping_thread = me
                self._stop.set()
                thread, loaded, attached = self._thread, self._loaded, self._attached
        if wait is not None:
            if wait:  # a second caller returns when the first one is done, not before
                self._stop_done.wait()
            return
        try:
            self._stop_now(thread, loaded, attached)
        finally:
            self._stop_done.set()

    def _stop_now(self, thread: threading.Thread | None, loaded: loader.Loaded | None, attached: bool) -> None:
        if thread is not None:
            thread.join()
        if loaded is None:
            return
        # Not under self._lock: subscribers called from here may ask for stats() or lost().
        try:
            if attached:
                self._set_config(mode=_MODE_OFF, cgroup_id=0, gate_tid=0, gate_open=0)
                loader.detach_all(loaded)
                self._poll_once(final=True)
                if self._copier is not None:
                    self._copier.finish()
                    if self._decoder_thread is not None:
                        self._decoder_thread.join()
                    else:
                        self._decode_frames()  # start() was never called
                    self._decode_batches_left(loaded)
                final = SyscallStats(ts_ns=now_ns(), stats=self._read_stats())
                if self._copier_died:
                    # What it had taken out of the kernel and not passed on is lost, uncounted
                    # by anyone: the exact aggregates say how much.
                    missing = sum(s.count for s in final.stats) - self._delivered - self._total_lost()
                    self._user_lost += max(missing, 0)
                self._publish_lost()
                with self._lock:
                    self._last_stats = final
                self.bus.publish(final)
                for probe in self._probes_on:
                    self.bus.publish(ProbeStatus(ts_ns=now_ns(), probe=probe, state="detached",
                                                 compile_s=loaded.compile_s))
        finally:
            with self._lock:
                self._final_lost = self._total_lost()
                self._attached = False
                if self._ctrl is not None:
                    self._ctrl.close()
                if self._copier is not None:
                    self._copier.close()
                self._ctrl = self._copier = None
                self._loaded = None
            loader.release(loaded, keep=True)

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- queries --------------------------------------------------------------------------------

    def stats(self) -> SyscallStats:
        """The exact in-kernel aggregates now (the last ones after stop)."""
        with self._lock:
            if not self._attached:
                return self._last_stats
            return SyscallStats(ts_ns=now_ns(), stats=self._read_stats())

    def lost(self) -> int:
        """Records lost so far: ring buffers full in the kernel, decoder queue full, undecodable."""
        with self._lock:
            return self._total_lost()

    def pids(self) -> set[int]:
        """Host pids known to belong to the sandbox (root, gate, forked, exec'd)."""
        with self._lock:
            return set(self._decoder.known_pids) if self._decoder else set()

    def dump(self) -> str:
        with self._lock:
            if not self.dump_text and self._loaded is not None:
                self.dump_text = loader.dump(self._loaded)
            return self.dump_text

    # --- internals ------------------------------------------------------------------------------

    def _set_config(self, *, mode: int, cgroup_id: int, gate_tid: int, gate_open: int,
                    cgroup_level: int = 0) -> None:
        global _sessions
        assert self._loaded is not None
        table = self._loaded.bpf[b"wb_config"]
        value = table.Leaf()
        value.cgroup_id, value.mode, value.gate_tid, value.gate_open = cgroup_id, mode, gate_tid, gate_open
        value.cgroup_level = cgroup_level
        with _sessions_lock:
            _sessions += 1  # a new number each time: per-task slots of earlier sessions go stale
            value.gen = _sessions & 0xFFFFFFFF
        table[table.Key(0)] = value

    def _reset_maps(self) -> None:
        assert self._loaded is not None
        bpf = self._loaded.bpf
        self._set_config(mode=_MODE_OFF, cgroup_id=0, gate_tid=0, gate_open=0)
        # wb_inflight is task storage: it dies with its tasks and cannot be iterated.
        for name in (b"wb_pids", b"wb_errors", b"wb_exit_info", b"wb_sigsys"):
            bpf[name].clear()
        kernelmaps.zero_percpu_array(bpf[b"wb_sysrows"], range(_MAX_NR))
        kernelmaps.zero_percpu_array(bpf[b"wb_lost"], range(2))
        if self.options.stream:
            kernelmaps.zero_percpu_array(bpf[b"wb_batches"], range(1))
        self._user_lost = 0
        self._lost_reported = {}

    def _kernel_lost(self) -> int:
        if self._loaded is None:
            return 0
        return sum(sums[0] for _i, sums in kernelmaps.percpu_rows(self._loaded.bpf[b"wb_lost"], 2))

    def _total_lost(self) -> int:
        if self._loaded is None:
            return self._final_lost
        return self._kernel_lost() + self._user_lost + (self._decoder.errors if self._decoder else 0)

    def _read_stats(self) -> tuple:
        assert self._loaded is not None
        bpf = self._loaded.bpf
        return kernelmaps.syscall_stats(bpf[b"wb_sysrows"], bpf[b"wb_errors"], _MAX_NR)

    def _publish_lost(self) -> None:
        """EventsLost for what was lost since the last call, by where it was lost."""
        now = {"kernel": self._kernel_lost(),
               "queue": self._user_lost + (self._decoder.errors if self._decoder else 0)}
        for source, total in now.items():
            new = total - self._lost_reported.get(source, 0)
            if new > 0:
                self._lost_reported[source] = total
                self.bus.publish(EventsLost(ts_ns=now_ns(), count=new, source=source))

    def _run(self) -> None:
        # The control ring: processes and denials, few records but each worth having; the
        # decoder (CPU-heavy, behind) is the opposite.
        _renice(-5)
        ep = select.epoll()
        try:
            assert self._ctrl is not None
            ep.register(self._ctrl.fd, select.EPOLLIN)
            next_lost_check = time.monotonic() + _LOST_EVERY_S
            while not self._stop.is_set():
                try:
                    n = self._poll_once()
                except Exception as exc:  # a decoding bug must not kill tracing silently
                    self.bus.publish(Notice(level="error", text=f"tracer poll failed: {exc!r}", source="probes"))
                    n = 0
                if not n:
                    ep.poll(_IDLE_WAIT_S)
                if time.monotonic() >= next_lost_check:
                    # Aggregate snapshots are the session's to ask for (stats()); losses are ours
                    # to announce as they happen.
                    with self._lock:
                        if self._attached:
                            self._publish_lost()
                    next_lost_check = time.monotonic() + _LOST_EVERY_S
        finally:
            ep.close()

    def _poll_once(self, final: bool = False) -> int:
        """Drain the control ring, publishing what it held. Returns records read."""
        with self._poll_lock:
            dec, ctrl = self._decoder, self._ctrl
            if dec is None or ctrl is None:
                return 0
            publish = self.bus.publish
            total = 0
            while True:
                events: list = []

                def on_ctrl(view: memoryview, off: int, size: int) -> None:
                    ev = dec.control(view, off, size)
                    if ev is not None:
                        events.append(ev)

                dec.refresh = lambda: ctrl.drain(on_ctrl)
                n = ctrl.drain(on_ctrl)
                for ev in events:
                    if isinstance(ev, OomKill) and not self._ours(ev.pid):
                        continue
                    publish(ev)
                total += n
                if not final or n == 0:
                    return total

    def _decode_run(self) -> None:
        _renice(5)
        try:
            self._decode_frames()
        except Exception as exc:  # a decoding bug must not kill tracing silently
            self.bus.publish(Notice(level="error", text=f"tracer decode failed: {exc!r}", source="probes"))

    def _decode_frames(self) -> None:
        """Decode the copier's frames into SyscallBatch events, oldest first, until it is done."""
        dec, source = self._decoder, self._copier
        if dec is None or source is None:
            return
        syscalls, publish = dec.syscalls, self.bus.publish
        for kind, count, data in source.frames():
            if kind == LOST:
                with self._lock:
                    self._user_lost += count  # the copier's queue was full: we were too far behind
            if kind != DATA:
                continue
            view, where = memoryview(data), self._unbatch(spans(data))
            for i in range(0, len(where), _BATCH):
                batch = syscalls(view, where[i: i + _BATCH])
                self._delivered += len(batch)
                publish(SyscallBatch(ts_ns=batch[0].ts_ns, syscalls=tuple(batch)))
            view.release()
        if not source.completed:
            self._copier_died = True
            status = source.proc.poll()
            self.bus.publish(Notice(level="error", source="probes",
                                    text=f"the syscall stream's copier process died (status {status}): "
                                         "later syscalls are counted, not shown"))

    def _unbatch(self, where: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """A ring record holding a full batch (WB_BATCH plain records, probes/wb_layout.h) as
        the spans of its records."""
        size = self._decoder.sys_size if self._decoder else 0
        batch = size * _WB_BATCH
        out: list[tuple[int, int]] = []
        for off, s in where:
            if s == batch:
                out.extend((off + i * size, size) for i in range(_WB_BATCH))
            else:
                out.append((off, s))
        return out

    def _decode_batches_left(self, loaded: loader.Loaded) -> None:
        """After detaching: the records still waiting in each CPU's batch (the probes flush on a
        tick, a task switch or a full batch; the last few of a run wait here)."""
        dec = self._decoder
        if dec is None:
            return
        size = dec.sys_size
        for raw in kernelmaps.percpu_values(loaded.bpf[b"wb_batches"]):
            n = min(int.from_bytes(raw[:4], "little"), _WB_BATCH)
            if n:
                view = memoryview(raw)
                batch = dec.syscalls(view, [(8 + i * size, size) for i in range(n)])
                self._delivered += len(batch)
                self.bus.publish(SyscallBatch(ts_ns=batch[0].ts_ns, syscalls=tuple(batch)))
        kernelmaps.zero_percpu_array(loaded.bpf[b"wb_batches"], range(1))

    def _ours(self, pid: int) -> bool:
        dec = self._decoder
        if dec is not None and pid in dec.known_pids:
            return True
        return False


def _renice(delta: int) -> None:
    """Change this thread's nice value (Linux threads have their own); best effort."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + delta)
    except OSError:
        pass
