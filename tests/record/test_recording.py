"""Recordings against real SQLite files, a real tmpfs and a real crashed writer process."""

from __future__ import annotations

from tests.conftest import wait_until
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest
from .record_samples import every_event, syscall

from workbench.core.bus import Bus
from workbench.core.errors import RecordingError
from workbench.core.events import EventsLost, Notice, Output, SyscallBatch
from workbench.record import Recorder, open_recording
from workbench.record.schema import FORMAT_VERSION


def record(path, events, meta=None, **kw):
    bus = Bus()
    rec = Recorder(bus, path, meta or {}, **kw)
    for e in events:
        bus.publish(e)
    rec.close()
    return rec


def wait_for(condition, timeout=20.0):
    return wait_until(condition, timeout, "the condition")


def test_every_event_type_is_written_and_read_back_equal(tmp_path):
    path = tmp_path / "run.sqlite"
    record(path, every_event(), {"workbench_version": "0.1.0"})
    with open_recording(path) as rec:
        assert list(rec.events()) == every_event()
        assert rec.meta["command"] == ["sh", "-c", "mkdir /x && echo é"]
        assert rec.meta["exit"]["signal"] == 31
        assert rec.meta["profile"]["seccomp"]["syscalls"] == ["mkdir"]
        assert rec.meta["workbench_version"] == "0.1.0"
        assert rec.complete


def test_events_come_back_in_time_order_and_the_schema_answers_sqlite_queries(tmp_path):
    path = tmp_path / "run.sqlite"
    late = SyscallBatch(ts_ns=900, syscalls=tuple(syscall(i, ts=900, name="mkdir", ret=-1, errno="EPERM",
                                                          denied=True) for i in range(3)))
    early = Output(ts_ns=100, stream="stdout", data=b"hi")
    record(path, [late, early])
    with open_recording(path) as rec:
        assert [type(e).__name__ for e in rec.events()] == ["Output", "SyscallBatch"]
        assert rec.syscall_counts() == {"mkdir": 3}
        assert list(rec.events(start_ns=500)) == [late]
    db = sqlite3.connect(path)
    assert db.execute("SELECT name, errno, count(*) FROM syscalls WHERE denied = 1").fetchall() == [("mkdir", "EPERM", 3)]
    assert db.execute("SELECT count(*) FROM denials").fetchone() == (3,)
    assert json.loads(db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0]) == FORMAT_VERSION


@pytest.mark.parametrize("content,words", [
    (b"", "empty file"),
    (b"just some text, not a database\n" * 9, "not an SQLite file"),
])
def test_empty_and_foreign_files_are_one_line_errors(tmp_path, content, words):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(content)
    with pytest.raises(RecordingError) as err:
        open_recording(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_sqlite_that_is_not_ours(tmp_path):
    with pytest.raises(RecordingError, match="no such recording"):
        open_recording(tmp_path / "nope.sqlite")
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(RecordingError, match="not a workbench recording"):
        open_recording(other)


def test_a_newer_format_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "future.sqlite"
    record(path, every_event()[:3])
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(FORMAT_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(RecordingError, match="newer workbench.*upgrade"):
        open_recording(path)


@pytest.mark.parametrize("table", ["meta", "events"])
def test_text_that_is_not_utf8_is_damage_not_a_traceback(tmp_path, table):
    # Found by the hostile suite's bit flips: one flipped byte in a text column raised
    # UnicodeDecodeError out of the reader.
    path = tmp_path / "flipped.sqlite"
    record(path, every_event()[:3])
    db = sqlite3.connect(path)
    column = "value" if table == "meta" else "payload"
    db.execute(f"UPDATE {table} SET {column} = CAST(X'22CEFF22' AS TEXT) WHERE rowid = 1")
    db.commit()
    db.close()
    with pytest.raises(RecordingError) as err:
        with open_recording(path) as rec:
            list(rec.events())
    assert "not UTF-8" in str(err.value) and "\n" not in str(err.value)


def test_a_flipped_bit_in_the_schema_is_damage_not_a_traceback(tmp_path):
    # Found by the hostile suite's bit flips in CI: SQLite's error message quotes the damaged
    # schema text, and Python failed decoding the message itself.
    path = tmp_path / "schema.sqlite"
    record(path, every_event()[:3])
    data = bytearray(path.read_bytes())
    data[data.find(b"viewdenialsdenials") + 4] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError) as err:
        with open_recording(path) as rec:
            list(rec.events())
    assert "damaged" in str(err.value) and "\n" not in str(err.value)


def test_a_truncated_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "cut.sqlite"
    batches = [SyscallBatch(ts_ns=1000 + b, syscalls=tuple(syscall(i, ts=1000 + b) for i in range(101)))
               for b in range(37)]
    record(path, batches)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(RecordingError) as err:
        with open_recording(path) as rec:
            list(rec.events())
    assert "truncated" in str(err.value) and "\n" not in str(err.value)


def test_a_crashed_writer_leaves_a_readable_recording(tmp_path):
    path = tmp_path / "crash.sqlite"
    script = f"""
import sys, time
sys.path.insert(0, {os.path.dirname(__file__)!r})
from record_samples import syscall
from workbench.core.bus import Bus
from workbench.core.events import SyscallBatch
from workbench.record import Recorder
bus = Bus()
rec = Recorder(bus, {str(path)!r}, {{"command": ["crash"]}})
for b in range(23):
    bus.publish(SyscallBatch(ts_ns=b, syscalls=tuple(syscall(i, ts=b) for i in range(7))))
while rec.written < 23:
    time.sleep(0.01)
print("written", flush=True)
time.sleep(600)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open_recording(path) as rec:
        assert not rec.complete
        assert rec.meta["command"] == ["crash"]
        assert sum(len(e.syscalls) for e in rec.events()) == 23 * 7


def test_overflow_is_counted_and_recorded(tmp_path):
    path = tmp_path / "flood.sqlite"
    bus = Bus()
    rec = Recorder(bus, path, {}, queue_limit=3)
    published = 0
    while rec.dropped == 0:
        bus.publish(Output(ts_ns=published, stream="stdout", data=b"x"))
        published += 1
    rec.close()
    assert rec.dropped + rec.written == published
    with open_recording(path) as reader:
        events = list(reader.events())
        lost = [e for e in events if isinstance(e, EventsLost)]
        assert sum(e.count for e in lost) == rec.dropped
        assert {e.source for e in lost} == {"recording"}
        assert reader.meta["dropped_events"] == rec.dropped
        assert sum(isinstance(e, Output) for e in events) == rec.written


def test_a_full_disk_ends_recording_with_a_notice_not_a_crash(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(small)], check=True)
    try:
        bus = Bus()
        notices = []
        bus.subscribe(notices.append, Notice)
        rec = Recorder(bus, small / "run.sqlite", {})
        for b in range(31):
            bus.publish(SyscallBatch(ts_ns=b, syscalls=tuple(syscall(i, ts=b) for i in range(97))))
        wait_for(lambda: rec.error is not None)
        bus.publish(Output(ts_ns=99, stream="stdout", data=b"after"))  # no longer recorded, no raise
        rec.close()
        assert len(notices) == 1 and notices[0].source == "recorder"
        assert "recording stopped" in notices[0].text and "full" in notices[0].text
    finally:
        subprocess.run(["umount", "-l", str(small)], check=True)


def test_many_threads_publishing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "threads.sqlite"
    bus = Bus()
    rec = Recorder(bus, path, {})

    def produce(k):
        for i in range(501):
            bus.publish(Output(ts_ns=k * 10_000 + i, stream="stdout", data=b"%d" % i))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    with open_recording(path) as reader:
        assert sum(1 for _ in reader.events()) == 3 * 501


def test_an_unwritable_path_is_a_one_line_error_before_the_session(tmp_path):
    from workbench.core.errors import RecordingError

    for path in (tmp_path / "no-such-dir" / "run.sqlite", tmp_path):
        with pytest.raises(RecordingError) as err:
            Recorder(Bus(), path, {})
        assert "cannot write the recording" in str(err.value) and err.value.exit_status == 2
