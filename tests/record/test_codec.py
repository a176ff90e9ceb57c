"""Pure unit tests: every event type survives the JSON codec unchanged."""

import json

from .record_samples import every_event

from workbench.record.codec import from_data, to_data


def test_every_event_type_round_trips_through_json():
    for event in every_event():
        data = json.loads(json.dumps(to_data(event)))
        assert data["type"] == type(event).__name__
        back = from_data(data)
        assert back == event, type(event).__name__
        assert type(back) is type(event)


def test_tuples_and_bytes_come_back_typed():
    events = {type(e).__name__: e for e in reversed(every_event())}  # the first of each type
    batch = from_data(json.loads(json.dumps(to_data(events["SyscallBatch"]))))
    assert isinstance(batch.syscalls, tuple) and len(batch.syscalls) == 23
    assert isinstance(batch.syscalls[7].args, tuple)
    out = from_data(json.loads(json.dumps(to_data(events["Output"]))))
    assert out.data == b"\x00\xffmkdir: cannot create\n"


def test_unknown_type_and_unknown_fields_from_a_newer_workbench():
    assert from_data({"type": "EventFromTheFuture", "ts_ns": 1}) is None
    data = to_data(every_event()[2])
    data["field_from_the_future"] = 5
    assert from_data(data) == every_event()[2]
