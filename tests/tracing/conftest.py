"""Fixtures for the probe tests: a held workload in its own v2 cgroup, and a tracer on a bus.

The lead's sandbox is not needed: a launcher (gate.py) blocks on a pipe inside a fresh directory of
the unified hierarchy, the tracer attaches to that directory's inode, then the gate opens and the
launcher execs the workload. Everything made here is removed on every path.
"""

from __future__ import annotations

from tests.conftest import wait_until
import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workbench.core.bus import Bus

HERE = Path(__file__).resolve().parent
UNIFIED = Path("/sys/fs/cgroup/unified")
PYTHON = sys.executable
_counter = itertools.count()


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    """Poll `condition()` until it is truthy or the deadline passes (then fail the test)."""
    return wait_until(condition, timeout, what)


@pytest.fixture(name="wait_for")
def wait_for_fixture():
    return wait_for


@pytest.fixture(scope="session")
def workload(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("bin") / "workload"
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(out), str(HERE / "workload.c")], check=True)
    return str(out)


@dataclass
class Held:
    """A launcher held at its start gate inside its own cgroup."""

    proc: subprocess.Popen
    cgroup_dir: Path
    gate_w: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def cgroup_id(self) -> int:
        return os.stat(self.cgroup_dir).st_ino

    def release(self) -> None:
        os.write(self.gate_w, b"x")
        os.close(self.gate_w)
        self.gate_w = -1

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)


@dataclass
class Sandboxes:
    held: list[Held] = field(default_factory=list)
    extra_dirs: list[Path] = field(default_factory=list)

    def launch(self, cmd: list[str], flags: tuple[str, ...] = (), cgroup: bool = True,
               memory_limit: int | None = None) -> Held:
        r, w = os.pipe()
        name = f"workbench-test-{os.getpid()}-{next(_counter)}"
        cg = UNIFIED / name
        cmd = [arg.replace("{cgroup}", str(cg)) for arg in cmd]  # for workloads that use it
        proc = subprocess.Popen([PYTHON, str(HERE / "gate.py"), str(r), *flags, "--", *cmd],
                                pass_fds=(r,), stdin=subprocess.DEVNULL)
        os.close(r)
        held = Held(proc=proc, cgroup_dir=cg, gate_w=w)
        self.held.append(held)
        if cgroup:
            cg.mkdir()
            (cg / "cgroup.procs").write_text(str(proc.pid))
        if memory_limit is not None:
            mem = Path("/sys/fs/cgroup/memory") / name
            mem.mkdir()
            self.extra_dirs.append(mem)
            (mem / "memory.limit_in_bytes").write_text(str(memory_limit))
            (mem / "memory.memsw.limit_in_bytes").write_text(str(memory_limit)) if (mem / "memory.memsw.limit_in_bytes").exists() else None
            (mem / "cgroup.procs").write_text(str(proc.pid))
        return held

    def cleanup(self) -> None:
        for h in self.held:
            if h.gate_w >= 0:
                os.close(h.gate_w)
            if h.proc.poll() is None:
                h.proc.send_signal(signal.SIGKILL)
                h.proc.wait(timeout=10)
            if h.cgroup_dir.exists():
                _kill_and_remove(h.cgroup_dir)
        for d in self.extra_dirs:
            if d.exists():
                _kill_and_remove(d)


def _kill_and_remove(cg: Path) -> None:
    for sub in [d for d in cg.iterdir() if d.is_dir()]:  # cgroups an app made below its own
        _kill_and_remove(sub)
    deadline = time.monotonic() + 10
    while True:
        procs = [int(p) for p in (cg / "cgroup.procs").read_text().split()]
        for pid in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            cg.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.fixture
def sandboxes():
    s = Sandboxes()
    try:
        yield s
    finally:
        s.cleanup()


@dataclass
class Recorder:
    """Every event published on a bus, in order."""

    bus: Bus
    events: list = field(default_factory=list)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def syscalls(self) -> list:
        from workbench.core.events import SyscallBatch

        return [s for b in self.of(SyscallBatch) for s in b.syscalls]


@pytest.fixture
def recorder() -> Recorder:
    bus = Bus()
    rec = Recorder(bus=bus)
    bus.subscribe(rec.events.append)
    return rec


@pytest.fixture
def make_tracer(recorder):
    from workbench.tracing.tracer import Tracer

    made = []

    def make(**kwargs) -> Tracer:
        t = Tracer(recorder.bus, **kwargs)
        made.append(t)
        return t

    try:
        yield make
    finally:
        for t in made:
            t.stop()


@pytest.fixture(autouse=True)
def _free_cached_probes():
    """The loader keeps loaded probes for the next launch; tests free them so that the leak check
    of tests/conftest.py sees the host as it was."""
    yield
    from workbench.tracing import loader

    loader.release_cached()


@pytest.fixture
def traced(make_tracer, sandboxes):
    """traced(cmd, flags=(), pid_tree=False, memory_limit=None, **tracer_options): launch `cmd`
    held at its gate (in its own cgroup, or followed as a process tree with pid_tree), trace it
    from its first instruction to its exit; returns (the stopped tracer, the held workload, its
    exit code)."""

    def run(cmd, flags=(), pid_tree=False, memory_limit=None, **tracer_options):
        t = make_tracer(**tracer_options)
        t.compile()
        held = sandboxes.launch(cmd, flags=flags, cgroup=not pid_tree, memory_limit=memory_limit)
        t.attach(None if pid_tree else held.cgroup_id, held.pid, held.pid)
        t.start()
        held.release()
        code = held.wait()
        t.stop()
        return t, held, code

    return run
