"""Write a session's events to one SQLite file, incrementally and crash-safe.

The bus callback only enqueues (a syscall stream publishes hundreds of thousands of events per
second and a subscriber must be quick); a writer thread we own drains the queue and commits a few
times a second in WAL mode, so a crash loses at most the last fraction of a second and never leaves
a file SQLite cannot open. The queue is bounded: when the disk cannot keep up, events are dropped,
counted, and the count is written to the file (an `EventsLost` row with source `recording` and the
`dropped_events` meta key) so nobody mistakes a thinned recording for a complete one.

An I/O error (disk full, file removed, permissions) ends the recording, not the session: the
writer stops, the file keeps what was committed, and a `Notice` says what happened on the bus.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import sqlite3
import threading
import time
from typing import Any

from workbench.core.bus import Bus
from workbench.core.errors import RecordingError
from workbench.core.events import (Event, EventsLost, Notice, SandboxExited, SessionStarted,
                                   Syscall, SyscallBatch, now_ns)
from workbench.record.codec import to_data
from workbench.record.schema import FORMAT_NAME, FORMAT_VERSION, SCHEMA

COMMIT_INTERVAL_S = 0.25
"""How often the writer commits: the most a crash can lose."""
QUEUE_LIMIT = 500_000
"""Queued events, each syscall of a batch counted, before the recorder drops them (bounds memory:
about 1 KiB each)."""

_STOP = object()
# Syscall fields with a column of their own; any field added to Syscall later goes, when it is
# not its default, to the `extra` JSON column, so recordings never lose what events carry.
_SYSCALL_COLUMNS = {"ts_ns", "pid", "tid", "comm", "nr", "name", "ret", "errno", "duration_ns", "denied",
                    "args", "decoded", "source"}
_SYSCALL_EXTRA = tuple((f.name, f.default) for f in dataclasses.fields(Syscall) if f.name not in _SYSCALL_COLUMNS)


def _extra(sc: Syscall) -> str | None:
    if not _SYSCALL_EXTRA:
        return None
    extra = {name: getattr(sc, name) for name, default in _SYSCALL_EXTRA if getattr(sc, name) != default}
    return _json(extra) if extra else None


def _json(value: Any) -> str:
    return json.dumps(to_data(value), separators=(",", ":"), ensure_ascii=False, default=str)


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _json_plain(value: dict) -> str:
    """Decoded arguments are nearly always plain JSON: skip the generic walk unless they are not."""
    try:
        return _encode(value)
    except TypeError:
        return _json(value)


def _args_json(args: tuple[int, ...]) -> str:
    # The hottest line of the writer: six registers, formatted without the json module.
    return "[%d,%d,%d,%d,%d,%d]" % args if len(args) == 6 else _encode(list(args))


class Recorder:
    """Records every event published on `bus` to the SQLite file at `path`.

    `meta` (JSON-able values: the command, the profile, the backend...) goes to the `meta` table
    at once; `SessionStarted` and `SandboxExited` update it (`command`, `profile`, `exit`) when they
    arrive. Call `close()` to flush; it is idempotent.
    """

    def __init__(self, bus: Bus, path: str | os.PathLike, meta: dict[str, Any] | None = None,
                 queue_limit: int = QUEUE_LIMIT):
        self.path = os.fspath(path)
        self.bus = bus
        self.dropped = 0
        """Events (syscalls counted one by one) dropped because the writer could not keep up."""
        self.written = 0
        """Events written (a batch counts once)."""
        self.error: str | None = None
        """Why recording stopped early, or None."""
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._queue_limit = queue_limit
        self._queued = 0  # events waiting, syscalls counted one by one
        self._count_lock = threading.Lock()
        self._seq = 0
        self._syscall_seq = 0
        self._dropped_written = 0
        self._closed = False
        try:
            self._db = self._create(meta or {})
        except (sqlite3.Error, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise RecordingError(f"cannot write the recording {self.path}: {reason}",
                                 "give --record a writable file path") from None
        self._unsubscribe = bus.subscribe(self._enqueue)
        self._thread = threading.Thread(target=self._run, name="workbench-recorder", daemon=True)
        self._thread.start()

    # --- the bus side: never blocks, never raises ----------------------------------------------

    def _enqueue(self, event: Event) -> None:
        size = len(event.syscalls) or 1 if isinstance(event, SyscallBatch) else 1
        with self._count_lock:
            if self._queued + size > self._queue_limit:
                self.dropped += size
                return
            self._queued += size
        self._queue.put(event)

    # --- the writer thread ---------------------------------------------------------------------

    def _create(self, meta: dict[str, Any]) -> sqlite3.Connection:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # WAL + NORMAL: a commit is atomic and survives a process crash; only an OS crash can
        # lose the last commits, and the file stays consistent either way.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        rows = {**meta,
                "format": FORMAT_NAME, "version": FORMAT_VERSION, "created_unix": time.time(),
                "complete": False, "dropped_events": 0}
        db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, _json(v)) for k, v in rows.items()])
        db.execute("COMMIT")
        return db

    def _run(self) -> None:
        pending: list[Event] = []
        deadline = time.monotonic() + COMMIT_INTERVAL_S
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                if item is _STOP:
                    stopping = True
                else:
                    with self._count_lock:
                        self._queued -= len(item.syscalls) or 1 if isinstance(item, SyscallBatch) else 1
                    pending.append(item)
                    if len(pending) < 50_000:
                        continue
            except queue.Empty:
                pass
            if self.error is None and (pending or self.dropped != self._dropped_written):
                try:
                    self._write(pending)
                except (sqlite3.Error, OSError) as exc:
                    self._fail(exc)
            pending = []
            deadline = time.monotonic() + COMMIT_INTERVAL_S

    def _write(self, batch: list[Event]) -> None:
        events_rows: list[tuple] = []
        syscall_rows: list[tuple] = []
        meta_rows: list[tuple[str, str]] = []
        for event in batch:
            self._seq += 1
            seq = self._seq
            kind = type(event).__name__
            if isinstance(event, SyscallBatch):
                payload = json.dumps({"type": kind, "ts_ns": event.ts_ns, "count": len(event.syscalls)})
                for sc in event.syscalls:
                    syscall_rows.append(self._syscall_row(seq, sc))
            elif isinstance(event, Syscall):
                payload = json.dumps({"type": kind, "ts_ns": event.ts_ns, "count": 1})
                syscall_rows.append(self._syscall_row(seq, event))
            else:
                payload = _json(event)
                if isinstance(event, SessionStarted):
                    meta_rows += [("command", _json(event.command)), ("backend", _json(event.backend)),
                                  ("profile_name", _json(event.profile_name)),
                                  ("profile", _json(event.profile))]
                elif isinstance(event, SandboxExited):
                    meta_rows.append(("exit", _json({"exit_code": event.exit_code, "signal": event.signal,
                                                     "duration_s": event.duration_s,
                                                     "exec_error": event.exec_error})))
            events_rows.append((seq, event.ts_ns, kind, payload))
        dropped = self.dropped
        if dropped != self._dropped_written:
            self._seq += 1
            lost = EventsLost(ts_ns=now_ns(), count=dropped - self._dropped_written, source="recording")
            events_rows.append((self._seq, lost.ts_ns, "EventsLost", _json(lost)))
            meta_rows.append(("dropped_events", json.dumps(dropped)))
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", events_rows)
            db.executemany("INSERT INTO syscalls VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", syscall_rows)
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta_rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._dropped_written = dropped
        self.written += len(batch)

    def _syscall_row(self, batch_seq: int, sc: Syscall) -> tuple:
        self._syscall_seq += 1
        return (self._syscall_seq, batch_seq, sc.ts_ns, sc.pid, sc.tid, sc.comm, sc.nr, sc.name, sc.ret,
                sc.errno, sc.duration_ns, int(sc.denied), _args_json(sc.args),
                _json_plain(sc.decoded) if sc.decoded else "{}", sc.source, _extra(sc))

    def _fail(self, exc: BaseException) -> None:
        reason = getattr(exc, "strerror", None) or str(exc)
        self.error = reason
        self._unsubscribe()
        self.bus.publish(Notice(level="error", source="recorder",
                                text=f"recording stopped: {reason} writing {self.path}; "
                                     f"the file keeps what was written before: free space or record elsewhere"))

    # --- ending --------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush what is queued, mark the file complete and close it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        self._queue.put(_STOP)
        self._thread.join()
        try:
            if self.error is None:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('complete', 'true')")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
        finally:
            self._db.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
