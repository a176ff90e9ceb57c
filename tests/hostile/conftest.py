"""Helpers for the hostile suite: run a command in a real sandbox and keep everything it produced
(exit status, output, report, events), and make sure cached probes do not outlive a test."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workbench.core import events as ev
from workbench.core.errors import WorkbenchError
from workbench.sandbox import profile as prof
from workbench.session import Session, SessionOptions

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@dataclass
class Result:
    status: int
    out: bytes
    err: bytes
    report: dict
    events: list = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return self.out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.decode(errors="replace")

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def run_sandbox(command: list[str] | str, profile: str | prof.Profile = "default", trace: bool = False,
                timeout: float = 90, keep_events: bool = True, stream: bool = True,
                record: str | None = None, **overrides) -> Result:
    """Run `command` in a sandbox through the same Session the CLI uses; wait for it to end."""
    if isinstance(command, str):
        command = ["sh", "-c", command]
    base = profile if isinstance(profile, prof.Profile) else prof.load(profile)
    p = prof.apply_overrides(base, **overrides)
    session = Session(SessionOptions(profile=p, command=command, trace=trace, stdin="null", stream=stream,
                                     record=record))
    out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    events: list = []
    lock = threading.Lock()

    def keep(e: ev.Event) -> None:
        if isinstance(e, ev.Output):
            out[e.stream].append(e.data)
        elif keep_events and not isinstance(e, ev.SyscallBatch):
            with lock:
                events.append(e)

    session.bus.subscribe(keep)
    try:
        try:
            session.start()
        except WorkbenchError:
            pass  # a launch failure ends as SandboxExited with the contract's status
        exited = session.wait(timeout=timeout)
    finally:
        session.close()
    assert exited is not None, f"{command} did not end within {timeout}s"
    status = exited.exit_code if exited.signal is None else 128 + exited.signal
    return Result(status, b"".join(out["stdout"]), b"".join(out["stderr"]), session.report(), events)


def open_to_sandbox(path: Path) -> Path:
    """The sandbox's root is host uid 65534: it needs "other" access to see a bound directory."""
    path.chmod(0o777)
    return path


@pytest.fixture(autouse=True)
def _free_cached_probes():
    """The loader keeps loaded probes for the next launch; free them so the leak check of
    tests/conftest.py sees the host as it was."""
    yield
    try:
        from workbench.tracing import loader
    except ImportError:
        return
    loader.release_cached()

