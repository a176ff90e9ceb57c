"""Fixtures for lesson tests: real sandboxes, so compiled probes are freed before `no_leaks`
counts BPF descriptors (the loader caches them per process on purpose)."""

from __future__ import annotations

import glob
import os

import pytest


def scratch_dirs() -> set[str]:
    """Lesson scratch directories of this process's runs (the engine removes them on every path)."""
    return set(glob.glob("/tmp/workbench-lesson-*"))


@pytest.fixture
def live(no_leaks):
    before = scratch_dirs()
    yield
    from workbench.tracing import loader

    loader.release_cached()
    assert scratch_dirs() <= before, "a lesson left its scratch directory behind"


def gvisor_wired() -> bool:
    """Whether the session follows the gVisor Sentry's log onto the bus (the backend's
    `attach_bus` hook): without it the gVisor lesson cannot see where the app's syscalls land."""
    import inspect

    from workbench import session

    return os.path.exists(os.path.join(os.path.dirname(session.__file__), "sandbox", "gvisor.py")) \
        and "attach_bus" in inspect.getsource(session)
