import pytest


@pytest.fixture(autouse=True)
def _free_cached_probes(no_leaks):
    """The loader keeps compiled probes for the next launch on purpose; free them before `no_leaks`
    (tests/conftest.py) counts BPF descriptors."""
    yield
    from workbench.tracing import loader

    loader.release_cached()
