"""Read a recording back as typed events, streaming (a million events never sit in memory).

`open_recording(path)` checks the file before anything else and turns every way it can be wrong
(missing, empty, not SQLite, SQLite but not ours, truncated, from a newer workbench) into one
`RecordingError` line naming the cause and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from typing import Any, Iterator

from workbench.core.errors import RecordingError
from workbench.core.events import Event, Syscall, SyscallBatch
from workbench.record.codec import from_data, untyped
from workbench.record.schema import FORMAT_NAME, FORMAT_VERSION

_SQLITE_MAGIC = b"SQLite format 3\x00"

# One pass over events in time order; a batch's syscalls follow their batch row (LEFT JOIN), so
# reading is a single streaming query whatever the size.
_EVENTS_SQL = """
SELECT e.seq, e.ts_ns, e.kind, e.payload,
       s.ts_ns, s.pid, s.tid, s.comm, s.nr, s.name, s.ret, s.errno, s.duration_ns, s.denied,
       s.args, s.decoded, {source}, {extra}
FROM events e LEFT JOIN syscalls s ON s.batch = e.seq
WHERE e.ts_ns >= ? AND e.ts_ns <= ? {kinds}
ORDER BY e.ts_ns, e.seq, s.seq
"""


def _with_extra(sc: Syscall, extra: str) -> Syscall:
    """A Syscall with the fields of the `extra` column (written by a newer workbench) that this
    one knows; the others are dropped like any unknown field."""
    known = {f.name for f in dataclasses.fields(Syscall)}
    values = {k: v for k, v in untyped(json.loads(extra)).items() if k in known}
    return dataclasses.replace(sc, **values) if values else sc


def _damaged(path: str, detail: str) -> RecordingError:
    return RecordingError(f"{path}: recording is damaged or truncated ({detail})",
                          "record the session again; `sqlite3 FILE .recover` may save part of it")


def _check_file(path: str) -> None:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            header = f.read(100)
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such recording", "check the path (recordings are made with --record FILE)") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a directory, not a recording", "give the recording file") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror})", "check its permissions") from None
    if size == 0:
        raise RecordingError(f"{path}: empty file, not a recording",
                             "the session that made it ended before writing; record it again")
    if not header.startswith(_SQLITE_MAGIC):
        raise RecordingError(f"{path}: not a workbench recording (not an SQLite file)",
                             "give a file made with --record")
    if len(header) < 100:
        raise _damaged(path, f"{size} bytes, shorter than an SQLite header")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The in-header page count is valid when the change counter matches "version-valid-for". With
    # a WAL beside the file (a crash, a full disk mid-checkpoint) the main file may legitimately be
    # shorter: SQLite reads the missing pages from the WAL, and damage shows up while reading.
    try:
        wal = os.path.getsize(path + "-wal")
    except OSError:
        wal = 0
    if not wal and header[24:28] == header[92:96] and pages and size < pages * page_size:
        raise _damaged(path, f"{size} bytes where the header announces {pages * page_size}")


# What a damaged file raises from sqlite3: its errors, and UnicodeDecodeError when SQLite's own
# error message quotes damaged bytes (a flipped byte in the schema).
_DAMAGE = (sqlite3.DatabaseError, UnicodeDecodeError)


def _utf8(raw: bytes) -> str:
    """Text columns of a damaged file may hold any bytes: that is damage like any other (every
    reader path handles sqlite3.DatabaseError), not a UnicodeDecodeError for the user."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise sqlite3.DataError(f"text that is not UTF-8 ({exc.reason} at byte {exc.start})") from None


class Recording:
    """An open recording: `.meta` (dict) and `.events()` (typed events in time order)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        _check_file(self.path)
        try:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._db.text_factory = _utf8
            rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        except _DAMAGE as exc:
            if "no such table" in str(exc):
                raise RecordingError(f"{self.path}: an SQLite file but not a workbench recording (no meta table)",
                                     "give a file made with --record") from None
            raise _damaged(self.path, str(exc)) from None
        try:
            self.meta: dict[str, Any] = {str(k): json.loads(v) for k, v in rows}
        except (ValueError, TypeError) as exc:
            raise _damaged(self.path, f"meta table: {exc}") from None
        if self.meta.get("format") != FORMAT_NAME:
            raise RecordingError(f"{self.path}: an SQLite file but not a workbench recording",
                                 "give a file made with --record")
        version = self.meta.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise RecordingError(f"{self.path}: made by a newer workbench (format {version}, this one reads "
                                 f"up to {FORMAT_VERSION})", "upgrade workbench to read it")
        try:
            first, last, count = self._db.execute("SELECT min(ts_ns), max(ts_ns), count(*) FROM events").fetchone()
        except _DAMAGE as exc:
            raise _damaged(self.path, str(exc)) from None
        self.start_ns: int = first or 0
        """Time of the first event (CLOCK_MONOTONIC ns of the recorded session)."""
        self.end_ns: int = last or 0
        self.event_count: int = count
        """Rows in `events` (a batch counts once)."""
        # Files from before the source/extra columns (same format version: the columns only add).
        try:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(syscalls)")}
        except _DAMAGE as exc:
            raise _damaged(self.path, str(exc)) from None
        self._source = "source" if "source" in columns else "'host'"
        self._extra = "extra" if "extra" in columns else "NULL"
        self.skipped = 0
        """Events of a type this workbench does not know, skipped while reading."""

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def complete(self) -> bool:
        """False when the recording session crashed or is still running."""
        return bool(self.meta.get("complete"))

    def events(self, start_ns: int | None = None, end_ns: int | None = None,
               kinds: tuple[type, ...] | None = None) -> Iterator[Event]:
        """Typed events with `start_ns <= ts_ns <= end_ns`, in time order (ties: arrival order)."""
        kinds_sql = ""
        params: list[Any] = [start_ns if start_ns is not None else -(1 << 62),
                             end_ns if end_ns is not None else (1 << 62)]
        if kinds:
            names = {k.__name__ for k in kinds}
            if Syscall in kinds or SyscallBatch in kinds:
                names |= {"Syscall", "SyscallBatch"}
            kinds_sql = f"AND e.kind IN ({','.join('?' * len(names))})"
            params += sorted(names)
        try:
            sql = _EVENTS_SQL.format(kinds=kinds_sql, source=self._source.replace("source", "s.source"),
                                     extra=self._extra.replace("extra", "s.extra"))
            cursor = self._db.execute(sql, params)
            yield from self._decode(cursor)
        except _DAMAGE as exc:
            raise _damaged(self.path, str(exc)) from None
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            # A damaged row (bad JSON, a field missing or of the wrong type): the file is not
            # what the recorder wrote.
            raise _damaged(self.path, f"an event does not decode: {type(exc).__name__}: {exc}") from None

    def _decode(self, cursor: sqlite3.Cursor) -> Iterator[Event]:
        loads = json.loads
        current_seq = None
        batch_ts = 0
        batch: list[Syscall] = []
        expected = 0
        for row in cursor:
            seq, ts_ns, kind, payload = row[0], row[1], row[2], row[3]
            if kind == "SyscallBatch" or kind == "Syscall":
                if seq != current_seq:
                    current_seq, batch_ts, batch = seq, ts_ns, []
                    expected = loads(payload).get("count", 0)
                if row[4] is not None:
                    decoded = untyped(loads(row[15])) if row[15] != "{}" else {}
                    sc = Syscall(row[4], row[5], row[6], row[7], row[8], row[9], tuple(loads(row[14])),
                                 row[10], row[11], row[12], decoded, bool(row[13]), row[16])
                    batch.append(sc if row[17] is None else _with_extra(sc, row[17]))
                if len(batch) >= expected:
                    if kind == "Syscall":
                        if batch:
                            yield batch[0]
                    else:
                        yield SyscallBatch(ts_ns=batch_ts, syscalls=tuple(batch))
                    current_seq, batch = None, []
                continue
            event = from_data(loads(payload))
            if event is None:
                self.skipped += 1
                continue
            yield event

    def syscall_counts(self, include_denied: bool = True, source: str | None = None) -> dict[str, int]:
        """Calls per syscall name over the whole recording (of one `source` if given), in SQL."""
        where = [] if include_denied else ["denied = 0"]
        params: list[Any] = []
        if source is not None:
            where.append(f"{self._source} = ?")
            params.append(source)
        sql = ("SELECT name, count(*) FROM syscalls" + (" WHERE " + " AND ".join(where) if where else "")
               + " GROUP BY name")
        try:
            return dict(self._db.execute(sql, params).fetchall())
        except _DAMAGE as exc:
            raise _damaged(self.path, str(exc)) from None

    def sources(self) -> set[str]:
        """Where the recorded syscalls come from: {"host"}, or {"gvisor", "host"} under gVisor."""
        try:
            return {row[0] for row in self._db.execute(f"SELECT DISTINCT {self._source} FROM syscalls")}
        except _DAMAGE as exc:
            raise _damaged(self.path, str(exc)) from None

    def syscalls(self, names: tuple[str, ...] | list[str]) -> Iterator[Syscall]:
        """Every recorded call of the syscalls `names`, in time order (an index scan, not a replay)."""
        sql = (f"SELECT ts_ns, pid, tid, comm, nr, name, ret, errno, duration_ns, denied, args, decoded, "
               f"{self._source}, {self._extra} FROM syscalls WHERE name IN ({','.join('?' * len(names))}) ORDER BY ts_ns, seq")
        try:
            for r in self._db.execute(sql, list(names)):
                decoded = untyped(json.loads(r[11])) if r[11] != "{}" else {}
                sc = Syscall(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[10])), r[6], r[7], r[8],
                             decoded, bool(r[9]), r[12])
                yield sc if r[13] is None else _with_extra(sc, r[13])
        except _DAMAGE as exc:
            raise _damaged(self.path, str(exc)) from None
        except (ValueError, TypeError) as exc:
            raise _damaged(self.path, f"a syscall does not decode: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_recording(path: str | os.PathLike) -> Recording:
    """Open a recording for reading; RecordingError (one line: cause and fix) when it cannot be."""
    return Recording(path)
