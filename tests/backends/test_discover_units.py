"""Grouping and naming of sandboxes on synthetic process tables (pure: the kinds this host cannot
start — docker, flatpak, systemd services — are checked here; tests/backends/test_discover.py
checks real ones)."""

from __future__ import annotations

from workbench.discover.procfs import ProcInfo
from workbench.discover.sandboxes import group

HOST_NS = {"user": 1, "pid": 2, "mnt": 3, "net": 4, "uts": 5, "ipc": 6, "cgroup": 7}
FULL = (1 << 41) - 1


def proc(pid, ppid, comm, argv=None, *, ns=None, seccomp=0, nnp=False, cg="/", uid=0, cap_eff=FULL, cap_bnd=FULL):
    return ProcInfo(pid=pid, ppid=ppid, comm=comm, argv=argv or [comm], uid=uid,
                    namespaces={**HOST_NS, **(ns or {})}, seccomp=seccomp, no_new_privs=nnp,
                    cap_eff=cap_eff, cap_bnd=cap_bnd, cgroup_v2=cg)


def sandboxes(*procs):
    return {s.root: s for s in group({p.pid: p for p in procs}, HOST_NS, "/", FULL)}


def test_plain_processes_and_dropped_capabilities_alone_are_not_sandboxes():
    found = sandboxes(proc(1, 0, "init"), proc(100, 1, "sshd", cap_eff=0, uid=0),
                      proc(101, 1, "bash", uid=1000, cap_eff=0))
    assert found == {}


def test_docker_container_is_one_sandbox_with_its_exec_session():
    ns = {"pid": 40, "mnt": 41, "net": 42, "uts": 43, "ipc": 44, "cgroup": 45}
    cg = "/system.slice/docker-0123abcd.scope"
    found = sandboxes(
        proc(1, 0, "init"), proc(900, 1, "containerd-shim", ["/usr/bin/containerd-shim-runc-v2", "-id", "x"]),
        proc(901, 900, "nginx", ["nginx", "-g", "daemon off;"], ns=ns, seccomp=2, cg=cg, cap_bnd=0xff),
        proc(902, 901, "nginx", ns=ns, seccomp=2, cg=cg, cap_bnd=0xff),
        proc(950, 1, "sh", ["sh"], ns=ns, seccomp=2, cg=cg, cap_bnd=0xff),  # docker exec: parent is outside
    )
    assert list(found) == [901]
    s = found[901]
    assert s.kind == "docker" and s.pids == [901, 902, 950]
    assert s.layers == ["pid-ns", "mnt-ns", "net-ns", "uts-ns", "ipc-ns", "cgroup-ns", "seccomp", "capabilities",
                        "cgroup"]


def test_flatpak_is_bubblewrap_with_flatpak_on_its_command_line():
    ns = {"user": 60, "pid": 61, "mnt": 62}
    found = sandboxes(
        proc(1, 0, "init"),
        proc(300, 1, "bwrap", ["bwrap", "--args", "41", "/app/bin/org.gnome.Maps"], nnp=True, cap_bnd=0),
        proc(301, 300, "bwrap", ns=ns, nnp=True, cap_bnd=0),
        proc(302, 301, "gnome-maps", ns=ns, seccomp=2, nnp=True, cap_bnd=0, cg="/user.slice/app-flatpak-org.gnome.Maps-9.scope"),
    )
    assert list(found) == [300]  # the launcher heads it: its children only add isolation
    assert found[300].kind == "bubblewrap"
    found = sandboxes(proc(1, 0, "init"), proc(300, 1, "bwrap", ["bwrap", "--args", "41", "flatpak-run"], nnp=True),
                      proc(301, 300, "app", ns=ns, nnp=True))
    assert found[300].kind == "flatpak"


def test_systemd_service_with_seccomp_and_private_tmp():
    found = sandboxes(proc(1, 0, "systemd"),
                      proc(500, 1, "resolved", ns={"mnt": 90}, seccomp=2, nnp=True, cg="/system.slice/resolved.service",
                           uid=101, cap_eff=0, cap_bnd=0x3))
    s = found[500]
    assert s.kind == "systemd service"
    assert s.layers == ["mnt-ns", "seccomp", "no_new_privs", "capabilities", "cgroup"]


def test_seccomp_only_trees_are_one_sandbox_each_and_children_join_their_parent():
    found = sandboxes(proc(1, 0, "init"),
                      proc(10, 1, "chrome", seccomp=2), proc(11, 10, "chrome-renderer", seccomp=2, ns={"net": 70}),
                      proc(20, 1, "sshd-session", seccomp=2, nnp=True))
    assert sorted(found) == [10, 20]
    assert found[10].pids == [10, 11] and "net-ns" in found[10].layers
    assert found[20].pids == [20] and found[20].kind == "unknown"


def test_unshare_and_a_nested_pid_namespace_make_one_sandbox():
    found = sandboxes(proc(1, 0, "init"),
                      proc(30, 1, "unshare", ["unshare", "--pid", "--mount", "--fork", "sh"], ns={"mnt": 80}),
                      proc(31, 30, "sh", ns={"mnt": 80, "pid": 81}),
                      proc(32, 31, "sleep", ns={"mnt": 80, "pid": 81}))
    assert list(found) == [30]
    assert found[30].kind == "unshare" and found[30].pids == [30, 31, 32]
    assert found[30].namespaces["pid"] == {"inode": 81, "isolated": True}  # the members', not the launcher's
    assert found[30].namespaces["net"] == {"inode": 4, "isolated": False}
