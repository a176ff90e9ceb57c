"""Process probes: fork, exec (filename, argv) and exit (code or signal) of a known tree; OOM kills."""

from __future__ import annotations

import pytest

from workbench.core.events import OomKill, ProcessExec, ProcessExited, ProcessForked

pytestmark = pytest.mark.privileged


@pytest.mark.parametrize("pid_tree", [False, True], ids=["cgroup-filter", "pid-tree-filter"])
def test_three_process_tree_fork_exec_exit(traced, recorder, workload, pid_tree):
    t, held, code = traced([workload, "tree", "3", "7"], pid_tree=pid_tree, stream=False)
    assert code == 5
    forks = recorder.of(ProcessForked)
    assert len(forks) == 2 and {f.ppid for f in forks} == {held.pid}
    children = [f.pid for f in forks]
    execs = recorder.of(ProcessExec)
    assert [(e.pid, e.filename, e.argv) for e in execs] == [(held.pid, workload, (workload, "tree", "3", "7"))]
    exits = {e.pid: (e.exit_code, e.signal) for e in recorder.of(ProcessExited)}
    assert exits == {children[0]: (3, None), children[1]: (7, None), held.pid: (5, None)}
    # Counted once each: the children's return from clone is not a second clone.
    counts = {s.name: s.count for s in t.stats().stats}
    assert (counts["clone"], counts["exit_group"], counts["execve"]) == (2, 3, 1)


def test_threads_are_counted_but_not_reported_as_processes(traced, recorder, workload):
    t, held, code = traced([workload, "threads", "3", "9"], stream=True)
    assert code == 0
    assert next(s.count for s in t.stats().stats if s.name == "getppid") == 27
    calls = [s for s in recorder.syscalls() if s.name == "getppid"]
    assert len(calls) == 27 and len({s.tid for s in calls}) == 3 and {s.pid for s in calls} == {held.pid}
    assert recorder.of(ProcessForked) == []


def test_exec_of_a_child_has_its_argv(traced, recorder, workload):
    t, held, code = traced([workload, "execchild", "/bin/echo", "one", "two three"], stream=False)
    assert code == 0
    child = [f.pid for f in recorder.of(ProcessForked)]
    execs = [(e.pid, e.filename, e.argv) for e in recorder.of(ProcessExec)]
    assert execs[1:] == [(child[0], "/bin/echo", ("/bin/echo", "one", "two three"))]
    assert {e.pid: e.exit_code for e in recorder.of(ProcessExited)} == {child[0]: 0, held.pid: 0}


def test_oom_kill_is_reported(traced, recorder, workload):
    t, held, code = traced([workload, "alloc", "257"], memory_limit=33 << 20, stream=False)
    assert code == -9
    ooms = recorder.of(OomKill)
    assert [o.pid for o in ooms] == [held.pid]
    exits = [(e.pid, e.exit_code, e.signal) for e in recorder.of(ProcessExited)]
    assert exits == [(held.pid, None, 9)]
