"""Shared fixtures. Every test runs under `no_leaks`: the host's kernel objects are listed before
and after, and any difference (a cgroup, mount, network namespace, veth, BPF program or process
left behind) fails the test."""

from __future__ import annotations

import os
import re
import sys
import time

import psutil
import pytest

CGROUP_ROOTS = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/workbench"]


_OWNER = re.compile(r"^workbench-(?:[a-z]+-)?(\d+)-")


def _ours(name: str, family: set[int]) -> bool:
    """A cgroup made by this test process or its descendants, or one whose owner is gone. Other
    people's live sessions on the same host (another test run, a benchmark) are not our leaks."""
    m = _OWNER.match(name)
    if not m:
        return True
    owner = int(m.group(1))
    return owner in family or not os.path.exists(f"/proc/{owner}")


def _cgroups() -> set[str]:
    family = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
    found = set()
    for root in CGROUP_ROOTS:
        try:
            found |= {f"{root}/{e}" for e in os.listdir(root) if e.startswith("workbench-") and _ours(e, family)}
        except OSError:
            pass
    return found


def _bpf_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "bpf" in os.readlink(f"/proc/self/fd/{fd}"):
                count += 1
        except OSError:
            pass
    return count


def _children() -> set[int]:
    """Our descendants, except the long-lived sandbox launcher itself (one per process)."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "workbench.sandbox.zygote" in cmd and p.ppid() == os.getpid():
            continue
        out.add(p.pid)
    return out


def _mounts() -> set[tuple[str, str]]:
    """(mount id, mount point) of the host's mounts, except those other test runs on this host make
    under their own pytest directories (ours are under ours, and are checked)."""
    mine = f"/tmp/pytest-of-{os.environ.get('USER', 'root')}/"
    out = set()
    for line in open("/proc/self/mountinfo").read().splitlines():
        fields = line.split()
        point = fields[4]
        if point.startswith(mine) and _BASETEMP and not point.startswith(_BASETEMP):
            continue
        out.add((fields[0], point))
    return out


_BASETEMP: str | None = None


def host_state() -> dict:
    return {
        "cgroups": _cgroups(),
        "mounts": _mounts(),
        "netns": set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set(),
        "links": {n for n in os.listdir("/sys/class/net") if n.startswith("wb")},
        "bpf_fds": _bpf_fds(),
        # Forwarding on would route a sandbox's veth towards the outside: nothing may switch it on.
        "ip_forward": open("/proc/sys/net/ipv4/ip_forward").read().strip(),
        "children": _children(),
    }


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


async def wait_for_app(pilot, predicate, what: str = "condition", deadline_s: float = 60.0):
    """Let a Textual app run (one message round at a time) until `predicate()` is true; fail
    naming `what` after the deadline. Never a fixed pause."""
    end = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause()


@pytest.fixture(autouse=True)
def no_leaks(tmp_path_factory):
    global _BASETEMP
    _BASETEMP = str(tmp_path_factory.getbasetemp()) + "/"
    before = host_state()
    yield
    if "workbench.tracing.loader" in sys.modules:
        # Loaded probes are kept for the next session on purpose (a compile costs a second): free
        # them so that only what a test really leaked is counted.
        sys.modules["workbench.tracing.loader"].release_cached()
    # Dying processes leave cgroups and the process table asynchronously: give them a moment.
    deadline = time.monotonic() + 5
    while True:
        after = host_state()
        diff = {k: (before[k], after[k]) for k in before if after[k] != before[k]
                and not (isinstance(after[k], set) and after[k] <= before[k])}
        if not diff or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not diff, f"kernel objects leaked by this test: {diff}"
