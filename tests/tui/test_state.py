"""Unit tests of the TUI's session state (no Textual): filters, merging, bounds, percentiles."""

from workbench.core import events as ev
from workbench.tui import state as st
from workbench.tui.state import SessionState, StreamFilter, percentile_ns

from .fixtures import T0, flood, syscall, whole_run


def fed(events) -> SessionState:
    s = SessionState()
    for e in events:
        if isinstance(e, ev.SyscallBatch):
            s.add_syscalls(list(e.syscalls))
        else:
            s.apply(e)
    return s


def test_filter_words_select_exactly():
    calls = flood(23)[0].syscalls
    def count(text: str) -> int:
        f = StreamFilter.parse(text)
        by_method = sum(f.matches(c) for c in calls)
        assert by_method == sum(map(f.predicate(), calls))  # the flood path agrees with the plain one
        return by_method

    assert count("") == 23
    assert count("failed") == 5          # 4, 9, 14, 19 (ENOENT) and the denied mkdir
    assert count("denied") == 1
    assert count("ENOENT") == 4
    assert count("errno:enoent openat") == 4
    assert count("mkdir") == 1
    assert count("name:openat") == 22
    assert count("pid:4242 failed") == 5
    assert count("pid:7") == 0
    assert StreamFilter.parse("openat errno:ENOENT failed").describe() == "openat errno:ENOENT failed"


def test_whole_run_state():
    s = fed(whole_run(23))
    assert s.phase == "ended"
    assert s.syscalls_seen == 23
    assert s.exit_text() == "exit 1 after 0.02 s"
    assert s.output_total == 2 and [line for _, line in s.output][0] == "hello"
    assert sorted(s.processes) == [4241, 4242, 4243]  # init, the command, its child
    assert s.processes[4243].ppid == 4242 and s.processes[4243].exit_code == 1
    summary = s.summary()
    assert summary.denials == {"mkdir": 1}
    assert summary.syscalls == 51 and summary.errors == 5
    assert summary.memory_peak_bytes == 11 << 20


def test_repeated_denials_merge_into_one_row():
    s = SessionState()
    d = ev.SeccompDenial(ts_ns=T0, pid=7, tid=7, comm="sh", syscall="mkdir", nr=83, action="errno",
                         errno="EPERM", args={"pathname": "/a"})
    for _ in range(37):
        s.apply(d)
    s.apply(ev.SeccompDenial(ts_ns=T0, pid=7, tid=7, comm="sh", syscall="mkdir", nr=83, action="errno",
                             errno="EPERM", args={"pathname": "/b"}))
    assert s.denials_total == 38
    assert sorted(r.count for r in s.denials.values()) == [1, 37]


def test_stream_and_output_stay_bounded():
    s = SessionState()
    n = st.STREAM_KEEP + 1_001
    s.add_syscalls([syscall(i) for i in range(n)])
    assert len(s.stream) == st.STREAM_KEEP and s.syscalls_seen == n
    assert s.stream[0].ts_ns == syscall(1_001).ts_ns
    s.apply(ev.Output(ts_ns=T0, stream="stdout", data=b"x\n" * (st.OUTPUT_KEEP + 7)))
    assert len(s.output) == st.OUTPUT_KEEP and s.output_total == st.OUTPUT_KEEP + 7
    # a line that never ends is cut rather than kept growing
    s.apply(ev.Output(ts_ns=T0, stream="stderr", data=b"y" * 5000))
    assert s.output[-1] == ("stderr", "y" * 5000) and s._partial["stderr"] == ""


def test_output_lines_split_across_chunks():
    s = SessionState()
    for chunk in (b"hel", b"lo\nwor", b"ld\n", b"tail"):
        s.apply(ev.Output(ts_ns=T0, stream="stdout", data=chunk))
    assert list(s.output) == [("stdout", "hello"), ("stdout", "world")]
    s.apply(ev.SessionEnded(ts_ns=T0))
    assert s.output[-1] == ("stdout", "tail")


def test_percentiles_from_log2_histogram():
    hist = (0,) * 10 + (12, 5, 2)  # 19 calls: 12 in [1024, 2048), 5 in [2048, 4096), 2 above
    assert percentile_ns(hist, 0.5) == 2048
    assert percentile_ns(hist, 0.99) == 8192
    assert percentile_ns((), 0.5) is None


def test_charts_draw_the_limit_only_when_it_is_in_range():
    from workbench.tui.widgets.resources import chart_lines, chart_scale

    assert chart_scale([10.0, 30.0], 100.0) == (100.0, True)
    assert chart_scale([10.0, 20.0], 1000.0) == (25.0, False)
    lines = [line.plain for line in chart_lines([50.0, 100.0, 25.0], 100.0, 7, 4)]
    assert lines[0] == "╌█╌╌╌╌╌"  # the limit row: dashed where no bar reaches it, across the width
    assert lines[1:] == [" █ ", "██ ", "███"]


def test_a_restated_finding_is_shown_once():
    s = SessionState()
    for score in (0.5, 0.9):
        s.apply(ev.Finding(ts_ns=T0, layer="seccomp", summary="mkdir refused", fix="--allow mkdir", score=score))
    s.apply(ev.Finding(ts_ns=T0, layer="mount", summary="read-only /etc", score=0.7))
    assert [(f.layer, f.score) for f in s.findings] == [("seccomp", 0.9), ("mount", 0.7)]


def test_init_is_the_root_and_helpers_samples_wait_aside():
    from .fixtures import NS, PROFILE

    s = SessionState()
    s.apply(ev.SessionStarted(ts_ns=T0, command=("sh",), backend="native", profile_name="default",
                              profile=PROFILE.to_dict()))
    s.apply(ev.NamespaceMembership(ts_ns=T0, pid=99, namespaces=NS))  # a launcher helper
    s.apply(ev.NamespaceMembership(ts_ns=T0, pid=101, namespaces=NS, uid_map="0 65534 1"))
    s.apply(ev.SandboxReady(ts_ns=T0, pid=101, init_pid=100, cgroup_v2_path=None, cgroup_id=None))
    assert sorted(s.processes) == [100, 101]
    assert s.processes[101].ppid == 100 and s.processes[100].comm == "init"
    assert s.processes[101].membership.uid_map == "0 65534 1"


def test_a_fix_fills_the_editor_fields():
    from workbench.tui.screens.dialogs import fields_from_fix

    assert fields_from_fix(("--allow", "mkdir", "--allow", "mkdirat", "--memory=384M")) == (
        {"allow": "mkdir,mkdirat", "memory": "384M"}, [])
    assert fields_from_fix(("--net", "loopback", "--pids", "97")) == ({"pids": "97"}, ["--net loopback"])
