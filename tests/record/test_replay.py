"""The replay timeline over a real recording file."""

from __future__ import annotations

from tests.conftest import wait_until
import math

from workbench.core.bus import Bus
from workbench.core.events import Output
from workbench.record import Recorder, open_recording
from workbench.record.replay import Replayer

MS = 1_000_000


def make(tmp_path, n=23):
    path = tmp_path / "r.sqlite"
    bus = Bus()
    rec = Recorder(bus, path, {})
    for i in range(n):
        bus.publish(Output(ts_ns=5_000 * MS + i * 10 * MS, stream="stdout", data=b"%d" % i))
    rec.close()
    return open_recording(path)


def test_play_as_fast_as_possible_publishes_everything_in_order(tmp_path):
    with make(tmp_path) as rec:
        bus, seen = Bus(), []
        bus.subscribe(seen.append)
        r = Replayer(rec, bus)
        r.play(speed=math.inf)
        assert r.wait_finished(timeout=30)
        r.close()
        assert [e.data for e in seen] == [b"%d" % i for i in range(23)]
        assert r.position_ns == 22 * 10 * MS == rec.duration_ns


def test_step_seek_forward_and_back(tmp_path):
    with make(tmp_path) as rec:
        bus, seen, resets = Bus(), [], []
        bus.subscribe(seen.append)
        r = Replayer(rec, bus, on_reset=lambda: (resets.append(len(seen)), seen.clear()))
        assert [e.data for e in r.step(3)] == [b"0", b"1", b"2"]
        assert r.position_ns == 20 * MS and not r.playing
        r.seek(105 * MS)  # forward: events 3..10 at once
        assert [e.data for e in seen] == [b"%d" % i for i in range(11)]
        r.seek(35 * MS)  # backward: reset, then 0..3
        assert resets == [11]
        assert [e.data for e in seen] == [b"0", b"1", b"2", b"3"]
        assert r.step()[0].data == b"4"
        r.seek(10_000 * MS)  # past the end: clamps, finishes
        assert r.finished and len(seen) == 23
        assert r.step() == []
        r.close()


def test_pause_stops_playback_and_play_resumes(tmp_path):
    with make(tmp_path) as rec:
        bus, seen = Bus(), []
        r = Replayer(rec, bus)
        bus.subscribe(lambda e: (seen.append(e), len(seen) == 7 and r.pause()))
        r.play(speed=1000.0)
        wait_until(lambda: not r.playing, 30, "the subscriber to pause at the 7th event")
        assert not r.playing and not r.finished
        assert len(seen) == 7
        r.play(speed=math.inf)
        assert r.wait_finished(timeout=30)
        assert len(seen) == 23
        r.close()
