"""The recording file: one SQLite database, documented for people in docs/recordings.md.

Bump FORMAT_VERSION when a change would make an older reader misread a file (a new table or column
that older readers ignore does not need a bump). Readers refuse files of a higher version.
"""

from __future__ import annotations

FORMAT_NAME = "workbench-recording"
FORMAT_VERSION = 1

SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL            -- JSON
);
CREATE TABLE events (
    seq     INTEGER PRIMARY KEY,   -- arrival order
    ts_ns   INTEGER NOT NULL,      -- CLOCK_MONOTONIC ns, the event's own time
    kind    TEXT NOT NULL,         -- the event's class name: Output, SeccompDenial, ...
    payload TEXT NOT NULL          -- the event as JSON (SyscallBatch: without its syscalls)
);
CREATE INDEX events_by_time ON events (ts_ns, seq);
CREATE TABLE syscalls (
    seq         INTEGER PRIMARY KEY,
    batch       INTEGER NOT NULL,  -- events.seq of the SyscallBatch (or Syscall) row carrying it
    ts_ns       INTEGER NOT NULL,
    pid         INTEGER NOT NULL,
    tid         INTEGER NOT NULL,
    comm        TEXT NOT NULL,
    nr          INTEGER NOT NULL,
    name        TEXT NOT NULL,
    ret         INTEGER NOT NULL,
    errno       TEXT,              -- ENOENT, ... or NULL on success
    duration_ns INTEGER NOT NULL,
    denied      INTEGER NOT NULL,  -- 1 when seccomp answered it
    args        TEXT NOT NULL,     -- JSON list of the six raw argument registers
    decoded     TEXT NOT NULL,     -- JSON object of decoded arguments
    source      TEXT NOT NULL,     -- host (our probes) or gvisor (the Sentry's strace log)
    extra       TEXT               -- JSON object of Syscall fields newer than these columns, or NULL
);
CREATE INDEX syscalls_by_batch ON syscalls (batch, seq);
CREATE VIEW denials AS
    SELECT ts_ns, pid, tid, comm, name, ret, errno, decoded FROM syscalls WHERE denied = 1;
"""
