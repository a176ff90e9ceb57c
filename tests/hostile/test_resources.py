"""Resource attacks from inside the `default` profile: a fork bomb, a memory bomb, filling the
tmpfs, a 100 MB output flood and a flood of a million syscalls. Each stays inside its limits, the
host stays usable, and the workbench's report says what happened."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from workbench.core import events as ev

from . import hostkernel as hk
from .conftest import REPO, open_to_sandbox, run_sandbox

pytestmark = pytest.mark.privileged

WORKBENCH = str(REPO / ".venv" / "bin" / "workbench")

# Every process forks forever; the first one waits for the host's go before it fails the run, so
# the host can look at the sandbox while the bomb sits at its limit.
FORK_BOMB = """
import os, sys, time
def bomb():
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.001)
refused = 0
while refused < 23:
    try:
        if os.fork() == 0:
            bomb()
    except OSError:
        refused += 1
open('/tmp/ctl/at-limit', 'w').close()
while not os.path.exists('/tmp/ctl/go'):
    time.sleep(0.005)
print('fork: Resource temporarily unavailable', file=sys.stderr)
sys.exit(1)
"""


def test_a_fork_bomb_stops_at_the_pids_limit_and_the_host_carries_on(tmp_path):
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    open_to_sandbox(ctl)
    seen: dict = {}

    def host_side():
        from tests.conftest import wait_until

        try:
            wait_until(lambda: (ctl / "at-limit").exists(), 60, "the bomb to reach its limit")
            owner = os.getpid()
            # The launcher's first child stays in the cgroup too, outside the sandbox's budget.
            seen["pids_current"] = [int(open(f"{d}/pids.current").read()) - 1 for d in hk.cgroup_dirs(owner)
                                    if "/pids/" in d]
            # The host can still start processes while the sandbox sits at its limit.
            seen["host_fork"] = subprocess.run(["true"]).returncode
        finally:
            (ctl / "go").touch()

    t = threading.Thread(target=host_side)
    t.start()
    try:
        r = run_sandbox(["python3", "-c", FORK_BOMB], trace=True, stream=False, pids="97",
                        binds=[f"{ctl}:/tmp/ctl:rw"], keep_events=True)
    finally:
        t.join()
    assert r.status == 1
    assert seen == {"pids_current": [97], "host_fork": 0}
    assert r.report["cgroup"]["pids_peak"] == 97
    layers = [f["layer"] for f in r.report["diagnosis"]]
    assert layers and layers[0] == "cgroup-pids", r.report["diagnosis"]
    assert "limit of 97" in r.report["diagnosis"][0]["summary"]


def test_a_memory_bomb_is_oom_killed_inside_the_sandbox_only(tmp_path):
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        # Several processes allocating at once: the OOM killer must pick among them only.
        r = run_sandbox(["python3", "-c", """
import os
for _ in range(3):
    if os.fork() == 0:
        break
x = []
while True:
    x.append(bytearray(4 << 20))
"""], trace=True, stream=False, memory="97M")
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert r.status == 128 + 9
    assert r.report["cgroup"]["oom_killed"] is True
    ooms = r.of(ev.OomKill)
    sandbox_pids = {p["pid"] for p in r.report["processes"]}
    assert ooms and {o.pid for o in ooms} <= sandbox_pids
    assert os.getpid() not in {o.pid for o in ooms}
    assert r.report["diagnosis"][0]["layer"] == "cgroup-memory"


def test_filling_the_tmpfs_ends_at_its_size_not_the_hosts_disk():
    before = os.statvfs("/tmp")
    r = run_sandbox("dd if=/dev/zero of=/tmp/fill bs=1M 2>/dev/null; echo dd=$?; stat -c %s /tmp/fill; "
                    "echo more > /tmp/more; echo echo=$?")
    after = os.statvfs("/tmp")
    assert r.status == 0
    # The default profile's /tmp is a 256 MiB tmpfs: dd stops there, then every write fails.
    assert r.stdout.split() == ["dd=1", str(256 << 20), "echo=1"]
    assert r.stderr.splitlines() == ["sh: 1: echo: echo: I/O error"]  # dash's words for ENOSPC
    # The host's /tmp did not lose the 256 MiB (other writers may move it by a little).
    assert abs(after.f_bavail - before.f_bavail) * after.f_frsize < 64 << 20


def test_a_100_mb_output_flood_arrives_whole(tmp_path):
    out = tmp_path / "out"
    with open(out, "wb") as f:
        done = subprocess.run([WORKBENCH, "run", "--no-trace", "--", "head", "-c", "104857601", "/dev/urandom"],
                              stdout=f, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size == 104857601
    assert done.stderr == b""


def test_a_100_mb_output_flood_reaches_the_bus_whole():
    r = run_sandbox(["head", "-c", "104857601", "/dev/zero"], keep_events=False)
    assert r.status == 0
    assert len(r.out) == 104857601 and r.out.count(0) == 104857601


def test_a_million_syscalls_lose_nothing_uncounted():
    # 1,000,003 syscalls from dd alone (500,001 reads and 500,001 writes, plus setup), as fast as
    # it can: the stream may drop some, but every drop is counted and the aggregates are exact.
    seen = [0]

    def count(e):
        if isinstance(e, ev.SyscallBatch):
            seen[0] += len(e.syscalls)

    from workbench.sandbox import profile as prof
    from workbench.session import Session, SessionOptions

    session = Session(SessionOptions(profile=prof.load("default"), stdin="null",
                                     command=["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=500001",
                                              "status=none"]))
    session.bus.subscribe(count)
    try:
        session.start()
        exited = session.wait(timeout=120)
    finally:
        session.close()
    report = session.report()
    assert exited is not None and exited.exit_code == 0
    assert report["syscalls"]["write"] == {"count": 500001, "errors": {}}
    assert report["syscalls"]["read"]["count"] >= 500001
    total = sum(s["count"] for s in report["syscalls"].values())
    assert seen[0] + report["lost_events"] == total


MAXRSS_OF = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def workbench_maxrss_kib(denials: int) -> int:
    """Peak memory of a `workbench run` whose command makes `denials` distinct denied mkdirs."""
    import sys

    flood = f"import os\nfor i in range({denials}):\n    try: os.mkdir('/tmp/d%d' % i)\n    except OSError: pass"
    done = subprocess.run([sys.executable, "-c", MAXRSS_OF, WORKBENCH, "run", "--quiet", "--deny", "mkdir", "--",
                           "python3", "-c", flood], capture_output=True, text=True, timeout=120)
    status, maxrss = done.stdout.split()
    assert status == "0", done.stderr
    return int(maxrss)


def test_a_flood_of_distinct_denials_does_not_grow_the_workbench_without_bound():
    # Bounded means: past some size, more denials cost nothing more. Fixed costs (ring buffers,
    # capped tables) are paid by the first 100,001 already. It grew (247, 307, 420 MB for 100k,
    # 200k, 400k) while a reader thread stalled by the GIL let raw records pile up; the copier
    # process and its bounded queue ended that (220 MB for both sizes).
    some = workbench_maxrss_kib(100001)
    three_times_as_many = workbench_maxrss_kib(300001)
    assert three_times_as_many - some < 32 << 10, (some, three_times_as_many)
