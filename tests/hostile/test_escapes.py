"""Escape attempts from inside the `default` profile: each must fail, be seen from the host to have
changed nothing, and be reported (a seccomp denial in the report, or the kernel's refusal in the
report's syscall errors).

All attempts run in ONE traced sandbox (tests/hostile/escape_attempts.py): one launch and one probe
compile for the whole module; each test below then checks one attempt from both sides.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import uuid

import pytest

from .conftest import HERE, Result, run_sandbox

pytestmark = pytest.mark.privileged

BIND_AT = "/tmp/in"


@pytest.fixture(scope="module")
def escape(tmp_path_factory):
    """Set up host-side targets, run every attempt in one traced sandbox, tear it all down."""
    from workbench.tracing import loader

    base = tmp_path_factory.mktemp("escape")
    base.chmod(0o755)
    bind = base / "bind"
    bind.mkdir()
    bind.chmod(0o777)
    outside = base / "outside"
    outside.mkdir()
    victim = outside / "victim"
    marker = base / "host-marker"
    marker.write_text("host only")
    (bind / "absolute-link").symlink_to(victim)
    (bind / "relative-link").symlink_to("../outside/victim")
    probe = bind / "setuid-probe"
    subprocess.run(["gcc", "-O1", "-o", str(probe), str(HERE / "privilege_probe.c")], check=True)
    shutil.copy(probe, bind / "filecap-probe")
    subprocess.run(["gcc", "-O1", "-o", str(bind / "other-abis"), str(HERE / "other_abis.c")], check=True)
    probe.chmod(0o4755)  # owned by host root
    subprocess.run(["setcap", "cap_net_raw,cap_sys_admin,cap_setuid+ep", str(bind / "filecap-probe")], check=True)

    sleeper = subprocess.Popen(["sleep", "300"])
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.setblocking(False)
    abstract_name = f"workbench-hostile-{uuid.uuid4().hex}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + abstract_name)
    unix.listen(8)
    unix.setblocking(False)
    hostname = socket.gethostname()
    core_pattern = open("/proc/sys/kernel/core_pattern").read()
    thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    params = {"host_pid": sleeper.pid, "port": tcp.getsockname()[1], "abstract": abstract_name,
              "host_marker": str(marker), "bind": BIND_AT, "victim": str(victim),
              "host_cgroup_procs": "/sys/fs/cgroup/unified/cgroup.procs"}
    try:
        # Run from the bind, not from the checkout: a checkout under /tmp is not in the sandbox's view.
        shutil.copy(HERE / "escape_attempts.py", bind / "escape_attempts.py")
        result = run_sandbox(["python3", f"{BIND_AT}/escape_attempts.py", json.dumps(params)], trace=True,
                             binds=[f"{bind}:{BIND_AT}:rw"])
        loader.release_cached()  # before the first test's leak check takes its "before"
        attempts = json.loads(result.stdout) if result.status == 0 else {}
        connections = []
        for listener in (tcp, unix):
            try:
                connections.append(listener.accept())
            except BlockingIOError:
                pass
        yield {"result": result, "attempts": attempts, "sleeper": sleeper, "bind": bind, "victim": victim,
               "connections": connections, "hostname": hostname, "core_pattern": core_pattern,
               "thp": thp}
    finally:
        loader.release_cached()
        tcp.close()
        unix.close()
        sleeper.kill()
        sleeper.wait()


def attempt(escape, name: str) -> dict:
    result: Result = escape["result"]
    assert result.status == 0, result.stderr
    return escape["attempts"][name]


def denials(escape, syscall: str) -> int:
    """How many times the report says seccomp refused `syscall` (0 when it does not say so)."""
    return sum(d["count"] for d in escape["result"].report["seccomp_denials"] if d["syscall"] == syscall)


def kernel_errors(escape, syscall: str, errno_name: str) -> int:
    return escape["result"].report["syscalls"].get(syscall, {}).get("errors", {}).get(errno_name, 0)


def test_the_attempt_script_ran_every_attempt(escape):
    attempts = escape["attempts"]
    assert len(attempts) == 47
    broken = {k: v for k, v in attempts.items() if v["escaped"] is None and "probe" not in k and "binary" not in k}
    assert broken == {}


@pytest.mark.parametrize("name,syscall,expected_errno", [
    ("ptrace_host_process", "ptrace", "EPERM"),
    ("ptrace_sandbox_init", "ptrace", "EPERM"),
    ("mount_tmpfs", "mount", "EPERM"),
    ("remount_root_rw", "mount", "EPERM"),
    ("fsopen_new_mount_api", "fsopen", "EPERM"),
    ("open_tree_clone", "open_tree", "EPERM"),
    ("pivot_root", "pivot_root", "EPERM"),
    ("chroot", "chroot", "EPERM"),
    ("unshare_user_namespace", "unshare", "EPERM"),
    ("unshare_mount_namespace", "unshare", "EPERM"),
    ("clone_new_user_namespace", "clone", "EPERM"),
    ("clone3", "clone3", "ENOSYS"),
    ("setns_host", "setns", "EPERM"),
    ("bpf", "bpf", "EPERM"),
    ("perf_event_open", "perf_event_open", "EPERM"),
    ("keyctl", "keyctl", "EPERM"),
    ("add_key", "add_key", "EPERM"),
    ("open_by_handle_at", "open_by_handle_at", "EPERM"),
    ("init_module", "init_module", "EPERM"),
    ("io_uring_setup", "io_uring_setup", "EPERM"),
    ("sethostname", "sethostname", "EPERM"),
])
def test_seccomp_refuses_and_the_report_names_it(escape, name, syscall, expected_errno):
    a = attempt(escape, name)
    assert (a["escaped"], a["errno"]) == (False, expected_errno)
    assert denials(escape, syscall) >= 1


def test_denials_are_counted_exactly_per_syscall(escape):
    # Every attempt above that seccomp answered, and nothing else the script did.
    counted = {}
    for d in escape["result"].report["seccomp_denials"]:
        if d["action"] == "errno":  # the other ABIs' calls are killed: see below
            counted[d["syscall"]] = counted.get(d["syscall"], 0) + d["count"]
    assert counted == {"ptrace": 2, "mount": 2, "fsopen": 1, "open_tree": 1, "pivot_root": 1, "chroot": 1,
                       "unshare": 2, "clone": 1, "clone3": 1, "setns": 1, "bpf": 1, "perf_event_open": 1,
                       "keyctl": 1, "add_key": 1, "open_by_handle_at": 1, "init_module": 1, "sethostname": 1,
                       "io_uring_setup": 1}
    rules = {d["syscall"]: d["rule"] for d in escape["result"].report["seccomp_denials"]}
    assert "deny_clone_newuser" in rules["clone"]
    assert "deny-list" in rules["mount"]


def test_host_processes_are_out_of_reach(escape):
    assert attempt(escape, "kill_host_pid") == {"escaped": False, "errno": "ESRCH",
                                                "detail": "[Errno 3] No such process"}
    assert attempt(escape, "kill_everything_visible")["escaped"] is False
    assert escape["sleeper"].poll() is None  # the host process survived kill(pid) and kill(-1)
    seen = attempt(escape, "proc_pid_root_and_cwd")
    assert seen["escaped"] is False
    assert seen["detail"]["seen"] == []
    assert seen["detail"]["pids"][0] == 1 and escape["sleeper"].pid not in seen["detail"]["pids"]
    # kill(host pid) and kill(-1) with nobody else to kill: both ESRCH.
    assert kernel_errors(escape, "kill", "ESRCH") == 2


@pytest.mark.parametrize("name", ["raw_socket", "packet_socket"])
def test_raw_sockets_need_a_capability_nobody_has(escape, name):
    assert (attempt(escape, name)["escaped"], attempt(escape, name)["errno"]) == (False, "EPERM")
    # The two attempts here and the one of the setuid probe below.
    assert kernel_errors(escape, "socket", "EPERM") == 3


def test_kernel_tunables_and_sys_are_not_writable(escape):
    # No sysrq on this kernel (ENOENT); elsewhere the file is root's and refuses host uid 65534.
    assert attempt(escape, "write_sysrq_trigger")["errno"] in ("ENOENT", "EACCES")
    assert (attempt(escape, "write_core_pattern")["escaped"], attempt(escape, "write_core_pattern")["errno"]) == (False, "EACCES")
    assert open("/proc/sys/kernel/core_pattern").read() == escape["core_pattern"]
    # Refused by permissions (root's files, we are host uid 65534) before the read-only mount.
    for name in ("write_sys_cgroup", "write_sys_kernel"):
        assert attempt(escape, name)["escaped"] is False
        assert attempt(escape, name)["errno"] in ("EACCES", "EROFS"), name
    assert escape["thp"] == open("/sys/kernel/mm/transparent_hugepage/enabled").read()


def test_the_hosts_hostname_is_untouched(escape):
    assert attempt(escape, "sethostname")["escaped"] is False
    assert attempt(escape, "write_proc_hostname")["escaped"] is False
    assert socket.gethostname() == escape["hostname"]


def test_network_none_reaches_no_host_socket(escape):
    tcp = attempt(escape, "loopback_tcp_to_host_port")
    unix = attempt(escape, "abstract_unix_socket")
    assert (tcp["escaped"], tcp["errno"]) == (False, "ENETUNREACH")
    assert (unix["escaped"], unix["errno"]) == (False, "ECONNREFUSED")
    assert escape["connections"] == []
    assert kernel_errors(escape, "connect", "ENETUNREACH") == 1


def test_symlinks_in_a_bind_mount_resolve_inside_the_sandbox(escape):
    for name in ("symlink_out_of_bind_absolute", "symlink_out_of_bind_relative", "symlink_planted_now",
                 "dotdot_out_of_bind"):
        assert attempt(escape, name)["escaped"] is False, name
    assert not escape["victim"].exists()  # nothing reached the host path the links point at
    planted = escape["bind"] / "planted"
    assert planted.is_symlink() and not escape["victim"].exists()


def test_a_setuid_root_binary_gives_nothing(escape):
    detail = attempt(escape, "setuid_root_binary")["detail"]
    # euid stays the sandbox's root (host 65534), no capability, no raw socket.
    assert detail == "euid=0 capeff=0 setuid0=0 raw=Operation not permitted"
    wrote = escape["bind"] / "setuid-wrote"
    assert (wrote.stat().st_uid, wrote.stat().st_gid) == (65534, 65534)  # not host root's


def test_a_file_capability_binary_is_refused_at_exec(escape):
    # Its file capabilities cannot be granted (no_new_privs; host root unmapped) and it has the
    # effective bit, so the kernel refuses the exec rather than run it with part of them.
    assert attempt(escape, "file_capability_binary")["detail"] == \
        "[Errno 1] Operation not permitted: '/tmp/in/filecap-probe'"
    assert not (escape["bind"] / "filecap-wrote").exists()


@pytest.mark.parametrize("name", ["i386_syscall_abi", "x32_syscall_abi"])
def test_another_syscall_abi_does_not_get_around_the_filter(escape, name):
    # The filter is for x86-64 only; a call through another ABI kills the process (SIGSYS) before
    # it can return.
    assert attempt(escape, name)["detail"] == [-31, ""]
    assert socket.gethostname() == escape["hostname"]


def test_calls_through_other_abis_are_reported_as_kills(escape):
    kills = [d for d in escape["result"].report["seccomp_denials"] if d["action"] == "kill"]
    assert sum(d["count"] for d in kills) == 2
    assert {d["comm"] for d in kills} == {"other-abis"}


def test_calls_through_other_abis_are_named_for_their_abi(escape):
    # Named from the SIGSYS siginfo (its arch and number): `int $0x80` with 74 is i386's
    # sethostname, not x86-64's fsync; the x32 call is 170 with bit 30 set.
    kills = sorted((d["syscall"], d["abi"]) for d in escape["result"].report["seccomp_denials"]
                   if d["action"] == "kill")
    assert kills == [("sethostname", "i386"), ("sethostname", "x32")], kills
    found = [d for d in escape["result"].report["diagnosis"] if "ABI" in d["summary"]]
    assert {d["summary"].split(" (")[0] for d in found} == {
        "seccomp killed the process on sethostname through the i386 ABI",
        "seccomp killed the process on sethostname through the x32 ABI"}
    assert all("no profile setting allows" in d["fix"] for d in found)


def test_the_running_executable_cannot_be_overwritten(escape):
    a = attempt(escape, "overwrite_own_executable")
    assert (a["escaped"], a["errno"]) in ((False, "ETXTBSY"), (False, "EROFS"), (False, "EACCES"))


def test_the_hosts_terminals_kernel_log_and_memory_are_out_of_reach(escape):
    assert attempt(escape, "host_terminals") == {"escaped": False, "errno": None, "detail": []}
    tty = attempt(escape, "controlling_terminal")
    assert (tty["escaped"], tty["errno"]) == (False, "ENXIO")
    # Not in the minimal /dev; /dev/core links to /proc/kcore, absent from this kernel and root's
    # (CAP_SYS_RAWIO) where it exists.
    kernel = attempt(escape, "kernel_log_and_memory")
    assert kernel["escaped"] is False
    assert kernel["detail"][:2] + kernel["detail"][3:4] == ["ENOENT", "ENOENT", "ENOENT"]
    assert kernel["detail"][2] == kernel["detail"][4] and kernel["detail"][4] in ("ENOENT", "EACCES", "EPERM")


def test_devices_cannot_be_made_or_reached(escape):
    assert (attempt(escape, "mknod_block_device")["escaped"], attempt(escape, "mknod_block_device")["errno"]) == (False, "EPERM")
    assert (attempt(escape, "host_block_device")["escaped"], attempt(escape, "host_block_device")["errno"]) == (False, "ENOENT")


def test_every_attempt_failed(escape):
    escaped = {k: v for k, v in escape["attempts"].items() if v["escaped"]}
    assert escaped == {}
    assert escape["sleeper"].poll() is None
    assert escape["sleeper"].send_signal(signal.SIGCONT) is None


# --- a terminal shared with the host (the TUI's shell: stdin = "terminal") -------------------------

TYPE_INTO_TERMINAL = r'''
import ctypes, errno, fcntl, os, termios
libc = ctypes.CDLL(None, use_errno=True)
print("isatty", os.isatty(0), "tcgets", len(termios.tcgetattr(0)))
try:
    for ch in b"echo INJECTED-BY-SANDBOX\n":
        fcntl.ioctl(0, termios.TIOCSTI, bytes([ch]))
    print("tiocsti ok")
except OSError as e:
    print("tiocsti", errno.errorcode[e.errno])
# The request with its upper 32 bits set: the kernel only looks at the low half.
ch = ctypes.c_char(b"X")
r = libc.syscall(16, 0, ctypes.c_ulong((1 << 32) | termios.TIOCSTI), ctypes.byref(ch))
print("tiocsti-high", "ok" if r == 0 else errno.errorcode[ctypes.get_errno()])
'''


def run_on_a_terminal(profile: str, code: str) -> tuple[int, str, bytes]:
    """Run python code in a sandbox sharing a pty with us; (status, what it printed, what was
    left in the terminal's input queue for the next reader: the host's shell)."""
    import os
    import pty
    import select
    import sys

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, str(HERE / "tty_driver.py"), os.ttyname(slave), "python3", "-c", code],
                                env={**os.environ, "TTY_PROFILE": profile}, cwd=str(HERE.parent.parent))
        out = b""
        while proc.poll() is None or select.select([master], [], [], 0.1)[0]:
            if select.select([master], [], [], 0.1)[0]:
                out += os.read(master, 65536)
        os.set_blocking(slave, False)
        try:
            pending = os.read(slave, 4096)
        except BlockingIOError:
            pending = b""
        return proc.returncode, out.decode(errors="replace").replace("\r\n", "\n"), pending
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("profile,answer", [("default", "EIO"), ("strict", "EPERM")])
def test_a_shared_terminal_cannot_be_typed_into(profile, answer):
    status, out, pending = run_on_a_terminal(profile, TYPE_INTO_TERMINAL)
    assert status == 0, out
    assert out.splitlines() == ["isatty True tcgets 7", f"tiocsti {answer}", f"tiocsti-high {answer}"]
    assert pending == b""  # nothing waits for the host's shell


def test_a_shared_terminal_cannot_be_typed_into_without_a_seccomp_policy():
    status, out, pending = run_on_a_terminal("permissive", TYPE_INTO_TERMINAL)
    assert status == 0, out
    assert pending == b""


# --- mounts the host makes while a sandbox runs --------------------------------------------------


def test_a_filesystem_mounted_later_under_a_read_only_bind_stays_out(tmp_path):
    """On hosts where mounts are shared (systemd's default), a disk mounted under a path the
    sandbox sees read-only (an automounted /media/x under the read-only root) must not appear
    inside writable. Here the shared mount is made by the test: this host's are private."""
    import os

    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(shared)], check=True)
    later = shared / "later"
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        later.mkdir(mode=0o777)
        os.mkfifo(shared / "go", 0o666)
        hold = os.open(shared / "go", os.O_RDWR)
        try:
            import threading

            def host_mounts_then_says_go():
                from tests.conftest import wait_until

                # The sandbox is up once its command runs; only then does the host mount.
                try:
                    wait_until(lambda: any(b"read line" in _cmdline(p) for p in _sandbox_shells()), 30,
                               "the sandbox to wait for go")
                    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(later)],
                                   check=True)
                finally:
                    os.write(hold, b"go\n")

            t = threading.Thread(target=host_mounts_then_says_go)
            t.start()
            try:
                r = run_sandbox("read line < /tmp/in/go; echo data > /tmp/in/later/escaped; echo rc=$?; "
                                "grep -c ' /tmp/in/later ' /proc/self/mountinfo",
                                binds=[f"{shared}:/tmp/in"])
            finally:
                t.join()
            written = os.listdir(later)
        finally:
            os.close(hold)
            subprocess.run(["umount", str(later)], check=False)
    finally:
        subprocess.run(["umount", str(shared)], check=True)
    assert r.status == 1
    assert r.stdout.split() == ["rc=2", "0"]  # not writable, and the new mount is not even there
    assert "Read-only file system" in r.stderr
    assert written == []


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _sandbox_shells() -> list[int]:
    import os

    from . import hostkernel as hk

    return [p for p in hk.descendants(os.getpid()) if hk.alive(p)]


def test_the_hosts_run_and_its_service_sockets_are_not_reachable():
    """/run holds the host's service sockets, often writable by anyone (D-Bus, journald,
    PostgreSQL): a read-only mount does not stop connect(). The sandbox gets an empty /run."""
    import os

    host_sockets = [os.path.join(d, f) for d, _dirs, files in os.walk("/run") for f in files
                    if os.path.exists(os.path.join(d, f)) and
                    __import__("stat").S_ISSOCK(os.lstat(os.path.join(d, f)).st_mode)]
    assert os.listdir("/run")  # the host's /run has something to hide
    probe = "import socket, sys\nfor path in sys.argv[1:]:\n    s = socket.socket(socket.AF_UNIX)\n" \
            "    try:\n        s.connect(path); print('reached', path)\n    except OSError as e: print(e.errno)\n"
    r = run_sandbox(["sh", "-c", 'ls -A /run /var/run; echo pid > /run/app.pid && cat /run/app.pid; '
                                 'python3 -c "$0" "$@"', probe, *host_sockets])
    assert r.status == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["/run:", "", "/var/run:", "pid"]  # empty, and the sandbox's own
    assert lines[4:] == ["2"] * len(host_sockets)  # ENOENT for every socket the host has there


# --- what the command inherits ---------------------------------------------------------------------

LIST_FDS = "import os\nfds = sorted(int(f) for f in os.listdir('/proc/self/fd'))\n" \
           "print(' '.join(f'{fd}:{os.readlink(f\"/proc/self/fd/{fd}\")}' for fd in fds if fd < 3 or os.path.exists(f'/proc/self/fd/{fd}') and not os.readlink(f'/proc/self/fd/{fd}').startswith('/proc/')))"


def test_the_command_inherits_only_its_three_stdio_descriptors():
    r = run_sandbox(["python3", "-c", LIST_FDS])
    assert r.status == 0, r.stderr
    fds = r.stdout.split()
    assert [f.split(":")[0] for f in fds] == ["0", "1", "2"], fds


def test_nothing_of_the_host_is_open_in_the_command():
    """Whatever it inherits, no descriptor points at a host directory or file (an open directory
    from outside the mount namespace would let openat(fd, "..") walk out of it)."""
    r = run_sandbox(["python3", "-c", LIST_FDS])
    assert r.status == 0, r.stderr
    targets = [f.split(":", 1)[1] for f in r.stdout.split()]
    assert all(t == "/dev/null" or t.startswith("pipe:[") for t in targets), targets


def test_no_host_environment_leaks_in(monkeypatch):
    # Secrets in the workbench's environment (tokens, keys) stay out: only the profile's own
    # variables and its pass_env list (TERM) reach the command.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hostile-23")
    monkeypatch.setenv("TERM", "xterm-23")
    r = run_sandbox(["python3", "-c", "import os; print(sorted(os.environ.items()))"])
    assert r.status == 0, r.stderr
    assert eval(r.stdout) == [("HOME", "/tmp"), ("LANG", "C.UTF-8"),  # noqa: S307 - our own repr
                              ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                              ("TERM", "xterm-23")]
