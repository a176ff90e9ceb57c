"""Fixtures for lesson tests: real sandboxes, so compiled probes are freed before `no_leaks`
counts BPF descriptors (the loader caches them per process on purpose)."""

from __future__ import annotations

import glob

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

