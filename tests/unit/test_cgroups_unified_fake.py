"""FAKE cgroup v2 host: our machines have cgroup v1 controllers (with a controller-less cgroup2 for
ids), so the unified layout most user machines have cannot be exercised for real here. These tests
point the cgroup code at a directory that imitates /sys/fs/cgroup on a pure v2 host (the files the
kernel would provide are written by the test) and check what we write and how we read it back."""

from __future__ import annotations

from workbench.sandbox import cgroups


def fake_v2_root(tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_limits_are_written_in_the_v2_files(tmp_path):
    root = fake_v2_root(tmp_path)
    assert cgroups.detect_layout(str(root)) == "unified"
    cg = cgroups.create(256 << 20, 23, 0.5, root=str(root), owner=4242)
    assert cg.layout == "unified" and cg.v1 == {}
    assert cg.v2.startswith(str(root / "workbench" / "workbench-4242-"))
    d = root / "workbench" / cg.name
    assert (d / "memory.max").read_text() == str(256 << 20)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "pids.max").read_text() == str(23 + cgroups.LAUNCHER_PROCS)
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "app").is_dir()  # the probes' filter
    # controllers enabled top-down so that they reach our directory
    assert (root / "workbench" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"


def test_usage_is_read_from_the_v2_files(tmp_path):
    root = fake_v2_root(tmp_path)
    cg = cgroups.create(256 << 20, 23, None, root=str(root), owner=4242)
    d = root / "workbench" / cg.name
    (d / "memory.current").write_text("1048576\n")
    (d / "memory.peak").write_text("4194304\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (d / "pids.current").write_text("5\n")
    (d / "pids.peak").write_text("9\n")
    (d / "pids.events").write_text("max 2\n")
    (d / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    (d / "io.stat").write_text("254:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n")
    u = cg.usage()
    assert u["memory_bytes"] == 1 << 20 and u["memory_peak_bytes"] == 4 << 20
    assert u["oom_kills"] == 1 and u["pids_max_hits"] == 2
    assert u["pids"] == 5 - cgroups.LAUNCHER_PROCS and u["pids_peak"] == 9 - cgroups.LAUNCHER_PROCS
    assert u["cpu_seconds"] == 1.5
    assert (u["io_read_bytes"], u["io_write_bytes"]) == (4096, 8192)
    assert (u["memory_limit_bytes"], u["pids_limit"]) == (256 << 20, 23)


def test_a_missing_v2_controller_is_a_clear_error(tmp_path):
    import pytest

    from workbench.core.errors import SandboxError

    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io\n")
    with pytest.raises(SandboxError, match="cgroup v2 controller memory is not available"):
        cgroups.create(1 << 20, None, None, root=str(root), owner=4242)
