"""Run a command through a real Session and collect what the diagnosis said."""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.core import events as ev
from workbench.diagnose import apply_fix
from workbench.sandbox.profile import Profile, apply_overrides, from_dict
from workbench.session import Session, SessionOptions


@dataclass
class Outcome:
    exited: ev.SandboxExited | None
    findings: list[ev.Finding]
    denials: list[ev.SeccompDenial] = field(default_factory=list)
    stdout: bytes = b""
    stderr: bytes = b""
    launch_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exited is not None and self.exited.exit_code == 0 and self.exited.signal is None

    @property
    def top(self) -> ev.Finding:
        assert self.findings, f"no finding; exit {self.exited}, stderr {self.stderr!r}"
        return self.findings[0]


def run(profile: Profile, command: list[str], record: str | None = None, timeout: float = 120,
        backend: str = "native") -> Outcome:
    session = Session(SessionOptions(profile=profile, command=command, record=record, stdin="null",
                                     backend=backend))
    denials: list[ev.SeccompDenial] = []
    output = {"stdout": bytearray(), "stderr": bytearray()}
    session.bus.subscribe(denials.append, ev.SeccompDenial)
    session.bus.subscribe(lambda e: output[e.stream].extend(e.data), ev.Output)
    launch_error = None
    exited = None
    try:
        try:
            session.start()
        except Exception as exc:  # a launch failure (127/126) is a result here, not an error
            launch_error = str(exc)
        exited = session.wait(timeout=timeout) if launch_error is None else session.exited
    finally:
        session.close()
    findings = list(session.diagnoser.findings) if session.diagnoser is not None else []
    return Outcome(exited, findings, denials, bytes(output["stdout"]), bytes(output["stderr"]), launch_error)


def options_to_overrides(options: tuple[str, ...]) -> dict:
    """A finding's `fix_options` as `apply_overrides` keyword arguments (what `run --fix` does)."""
    kw: dict = {}
    it = iter(options)
    for flag in it:
        value = next(it)
        key = flag.lstrip("-")
        if key in ("allow", "deny"):
            kw.setdefault(key, []).extend(value.split(","))
        elif key == "bind":
            kw.setdefault("binds", []).append(value)
        else:
            kw[key] = value
    return kw


def fixed_profile(profile: Profile, finding: ev.Finding) -> Profile:
    """The profile with the finding's fix: its CLI options when it has them, else its profile patch."""
    if finding.fix_options:
        return apply_overrides(profile, **options_to_overrides(finding.fix_options))
    assert finding.fix_profile, f"finding without a machine-usable fix: {finding}"
    return from_dict(apply_fix(profile.to_dict(), finding), "fixed")
