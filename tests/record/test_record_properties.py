"""Property test: any Syscall (u64 registers, unicode, bytes and nesting in decoded arguments)
survives a real recording file unchanged."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.core import events as ev
from workbench.core.bus import Bus
from workbench.record import Recorder, open_recording

_files = itertools.count()
JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=12)
                       | st.binary(max_size=8),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                   max_size=3),
                       max_leaves=6)
SYSCALL = st.builds(
    ev.Syscall, ts_ns=st.integers(0, 2**62), pid=st.integers(0, 2**31), tid=st.integers(0, 2**31),
    comm=st.text(max_size=15), nr=st.integers(-1, 600), name=st.text(min_size=1, max_size=20),
    args=st.tuples(*[st.integers(0, 2**64 - 1)] * 6), ret=st.integers(-4095, 2**62),
    errno=st.none() | st.sampled_from(["ENOENT", "EPERM"]), duration_ns=st.integers(0, 2**40),
    decoded=st.dictionaries(st.text(max_size=8), JSONISH, max_size=4), denied=st.booleans(),
    source=st.sampled_from(["host", "gvisor"]))


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(calls=st.lists(SYSCALL, min_size=1, max_size=5))
def test_any_syscall_round_trips_through_a_recording(tmp_path, calls):
    path = tmp_path / f"p{next(_files)}.sqlite"
    bus = Bus()
    rec = Recorder(bus, path, {})
    batch = ev.SyscallBatch(ts_ns=7, syscalls=tuple(calls))
    bus.publish(batch)
    rec.close()
    with open_recording(path) as reader:
        (back,) = list(reader.events())
    assert back == batch  # (decoded values are JSON: lists stay lists, bytes come back as bytes)
