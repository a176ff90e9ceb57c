"""The TUI's only door to the session layer: build options, open a session.

Imported lazily so that the TUI's screens load (and can be tested on a bare bus) even where the
session module cannot be imported; the failure then is one line for people.
"""

from __future__ import annotations

from workbench.core.errors import WorkbenchError


def _session_module():
    try:
        from workbench import session
    except ImportError as exc:
        raise WorkbenchError(f"the session layer cannot be loaded ({exc})",
                             "reinstall workbench (scripts/setup.sh)") from None
    return session


BACKENDS = ("native", "bwrap", "gvisor")


def make_options(profile, command: list[str], record: str | None = None, stdin: str = "pipe",
                 trace: bool = True, profile_name: str = "", backend: str = "native"):
    """SessionOptions for a run launched from the TUI."""
    return _session_module().SessionOptions(profile=profile, command=list(command), backend=backend,
                                            trace=trace, stream=trace, record=record, stdin=stdin,
                                            profile_name=profile_name)


def drop_spares() -> None:
    """No sandbox kept built ahead any more (the TUI is closing)."""
    _session_module().drop_spares()


def open_session(options):
    """A Session for `options` (not started: start it in a worker)."""
    return _session_module().Session(options, bus=None)
