"""Fixtures for the backend tests: the known workloads, compiled once, and a helper that runs a
command through a real session (real kernel, real bwrap / runsc) and collects what it published."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workbench.core import events as ev
from workbench.core.errors import WorkbenchError
from workbench.sandbox import profile as prof
from workbench.session import Session, SessionOptions

HERE = Path(__file__).resolve().parent
TRACING = HERE.parent / "tracing"


@pytest.fixture(scope="session")
def bin_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("backend-bin")
    subprocess.run(["gcc", "-O1", "-o", str(out / "workload"), str(TRACING / "workload.c")], check=True)
    subprocess.run(["gcc", "-O1", "-o", str(out / "probe"), str(HERE / "probe.c")], check=True)
    return out


@dataclass
class Run:
    status: int
    report: dict
    events: list = field(default_factory=list)
    sandbox: object = None

    def out(self, stream: str = "stdout") -> str:
        return b"".join(e.data for e in self.events if isinstance(e, ev.Output) and e.stream == stream).decode()

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def profile(name: str = "default", *, user_ns: bool = True, **overrides) -> prof.Profile:
    p = prof.apply_overrides(prof.load(name), **overrides)
    p.namespaces["user"] = user_ns
    prof.check_consistency(p, "test")
    return p


def run(command: list[str], backend: str, p: prof.Profile | None = None, *, trace: bool = False,
        on_ready=None, timeout: float = 60) -> Run:
    """One session, start to close; `on_ready(session, events)` runs after release."""
    session = Session(SessionOptions(profile=p or profile(), command=command, backend=backend, trace=trace,
                                     stdin="null"))
    events: list = []
    session.bus.subscribe(events.append)
    try:
        try:
            session.start()
            if on_ready is not None:
                on_ready(session, events)
        except WorkbenchError:
            pass  # launch failures end as SandboxExited with the contract's status
        exited = session.wait(timeout=timeout)
    finally:
        session.close()
    assert exited is not None
    status = exited.exit_code if exited.signal is None else 128 + exited.signal
    return Run(status, session.report(), events, session.sandbox)


@pytest.fixture(autouse=True)
def _free_cached_probes():
    """The loader keeps loaded probes for the next launch; free them so that the leak check of
    tests/conftest.py sees the host as it was."""
    yield
    from workbench.tracing import loader

    loader.release_cached()
