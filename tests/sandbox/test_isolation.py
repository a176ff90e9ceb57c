"""The native backend really isolates: each layer is checked from inside the sandbox, on the real
kernel, by trying to get past it (privileged tier: needs root)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from workbench.core import events as ev
from workbench.core.errors import WorkbenchError
from workbench.sandbox import profile as prof
from workbench.session import Session, SessionOptions

pytestmark = pytest.mark.privileged


def run(command: list[str] | str, profile: str = "default", trace: bool = False, **overrides):
    """Run a command in a sandbox; return (exit status, stdout, stderr, report)."""
    if isinstance(command, str):
        command = ["sh", "-c", command]
    p = prof.apply_overrides(prof.load(profile), **overrides)
    session = Session(SessionOptions(profile=p, command=command, trace=trace, stdin="null"))
    out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    session.bus.subscribe(lambda e: out[e.stream].append(e.data), ev.Output)
    try:
        try:
            session.start()
        except WorkbenchError:
            pass  # launch failures end as a SandboxExited with the contract's status (125/126/127)
        exited = session.wait(timeout=60)
    finally:
        session.close()
    assert exited is not None
    status = exited.exit_code if exited.signal is None else 128 + exited.signal
    return status, b"".join(out["stdout"]).decode(), b"".join(out["stderr"]).decode(), session.report()


def test_pid_namespace_hides_host_pids():
    status, out, _, report = run("echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; "
                                 f"test -e /proc/{os.getpid()} && echo HOSTPID; true")
    assert status == 0
    first, listing = out.splitlines()[:2]
    assert first == "2"  # pid 1 is the sandbox's init, the command is the first child
    assert set(listing.split()) <= {"1", "2", "3", "4", "5", "6", "7"}
    assert "HOSTPID" not in out
    assert report["namespaces"]["pid"]["isolated"] is True


def test_root_is_read_only_and_tmp_is_private(tmp_path):
    marker = tmp_path / "host-only"
    marker.write_text("x")
    status, out, err, _ = run(f"touch /etc/workbench-escape; echo rc=$?; test -e {marker} && echo SEEN; "
                              "echo inside > /tmp/inside && cat /tmp/inside")
    assert status == 0
    assert "rc=1" in out and "Read-only file system" in err
    assert "SEEN" not in out  # the host's /tmp is not the sandbox's
    assert "inside" in out
    assert not os.path.exists("/etc/workbench-escape")
    assert not os.path.exists("/tmp/inside")


def test_hostname_user_and_security_state():
    status, out, _, _ = run("hostname; id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status")
    assert status == 0
    lines = out.split("\n")
    assert lines[0] == "sandbox"
    assert lines[1] == "0"
    fields = dict(line.split(":\t") for line in lines[2:] if ":\t" in line)
    assert fields == {"CapEff": "0000000000000000", "CapBnd": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}


def test_uid_map_points_at_the_unprivileged_host_uid(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    status, _, err, _ = run("echo data > /tmp/out/file", binds=[f"{shared}:/tmp/out:rw"])
    assert status == 0, err
    st = os.stat(shared / "file")
    assert (st.st_uid, st.st_gid) == (65534, 65534)


def test_read_only_bind_refuses_writes(tmp_path):
    (tmp_path / "in.txt").write_text("hello")
    tmp_path.chmod(0o755)  # the sandbox's root is an unprivileged host uid: it needs "other" access
    status, out, err, _ = run("cat /tmp/in/in.txt; echo x > /tmp/in/new; echo rc=$?", binds=[f"{tmp_path}:/tmp/in"])
    assert status == 0
    assert out.startswith("hello") and "rc=0" not in out and "Read-only file system" in err
    assert not (tmp_path / "new").exists()


def test_denied_syscall_returns_eperm():
    status, out, _, _ = run(["python3", "-c", "import os\ntry:\n os.mkdir('/tmp/a')\nexcept OSError as e:\n print(e.errno)"],
                            deny=["mkdir"])
    assert status == 0
    assert out.strip() == "1"  # EPERM


def test_kill_action_kills_with_sigsys(tmp_path):
    p = tmp_path / "kill.toml"
    p.write_text('[seccomp]\nmode = "deny"\naction = "kill"\nsyscalls = ["rmdir"]\n')
    status, _, _, report = run(["python3", "-c", "import os; os.rmdir('/tmp')"], profile=str(p))
    assert status == 128 + 31
    assert report["signal_name"] == "SIGSYS"


def test_nested_user_namespace_is_refused():
    status, out, _, _ = run("unshare -U true; echo rc=$?")
    assert status == 0 and "rc=1" in out


def test_network_none_reaches_nothing():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        status, out, _, _ = run(["python3", "-c", f"""
import socket, os
print(sorted(os.listdir('/sys/class/net')) if False else open('/proc/net/dev').read().count(':'))
s = socket.socket()
try:
    s.connect(('127.0.0.1', {port}))
    print('CONNECTED')
except OSError as e:
    print('errno', e.errno)
"""])
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()
    assert status == 0
    lines = out.split()
    assert lines[0] == "1"  # one interface: lo
    assert "CONNECTED" not in out and "errno" in out


def test_veth_reaches_the_host_side_only():
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen(1)
    port = server.getsockname()[1]
    got: list[bytes] = []

    def accept():
        server.settimeout(30)
        try:
            conn, _ = server.accept()
            got.append(conn.recv(100))
            conn.close()
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    forwarding = open("/proc/sys/net/ipv4/ip_forward").read()
    try:
        status, out, err, _ = run(["python3", "-c", f"""
import socket, subprocess
gw = [l.split()[2] for l in open('/proc/net/route').read().splitlines()[1:] if l.split()[1] == '00000000']
gw = socket.inet_ntoa(bytes.fromhex(gw[0])[::-1])
s = socket.create_connection((gw, {port}), timeout=10)
s.sendall(b'hello from the sandbox')
print('sent', gw)
"""], net="veth")
    finally:
        t.join(timeout=35)
        server.close()
    assert status == 0, err
    assert got == [b"hello from the sandbox"]
    assert open("/proc/sys/net/ipv4/ip_forward").read() == forwarding  # never switched on by us


def test_memory_hog_is_oom_killed_and_reported():
    status, _, _, report = run(["python3", "-c", "x = []\nwhile True: x.append(bytearray(8 << 20))"], memory="64M")
    assert status == 128 + 9
    assert report["cgroup"]["oom_killed"] is True
    assert report["cgroup"]["memory_peak_bytes"] >= 48 << 20


def test_fork_loop_stops_at_the_pids_limit():
    status, out, _, report = run(["python3", "-c", """
import os, time, errno
kids = 0
try:
    while True:
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        kids += 1
except OSError as e:
    print(kids, errno.errorcode[e.errno])
"""], pids="23")
    assert status == 0
    kids, err = out.split()
    # 23 in all: init, the python process and 21 children.
    assert (int(kids), err) == (21, "EAGAIN")
    assert report["cgroup"]["pids_peak"] == 23


@pytest.mark.parametrize("command,expected", [
    ("exit 7", 7),
    ("kill -9 $$", 137),
    ("kill -TERM $$", 143),
])
def test_exit_status_propagates(command, expected):
    assert run(command)[0] == expected


def test_missing_command_is_127_and_not_executable_is_126(tmp_path):
    assert run(["no-such-command-here"])[0] == 127
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    tmp_path.chmod(0o755)
    status = run(["/tmp/s/script.sh"], binds=[f"{tmp_path}:/tmp/s"])[0]
    assert status == 126


def test_terminating_signal_reaches_the_command_through_init():
    # SIGTERM sent to pid 1 from outside is forwarded to the command by the minimal init.
    p = prof.load("default")
    session = Session(SessionOptions(profile=p, command=["sleep", "60"], trace=False, stdin="null"))
    try:
        session.start()
        session.kill(15)
        exited = session.wait(timeout=10)
    finally:
        session.close()
    assert exited is not None and exited.signal == 15


def test_without_a_user_namespace_capabilities_are_still_dropped(tmp_path):
    # Without a user namespace these would be the host's own capabilities.
    p = tmp_path / "no-userns.toml"
    p.write_text("[namespaces]\nuser = false\n")
    status, out, _, _ = run("grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status", profile=str(p))
    assert status == 0
    assert out.split() == ["CapEff:", "0000000000000000", "CapBnd:", "0000000000000000", "NoNewPrivs:", "1"]


def test_loopback_network_lets_the_sandbox_talk_to_itself():
    status, out, err, _ = run(["python3", "-c", """
import socket
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
cli = socket.create_connection(srv.getsockname())
conn, _ = srv.accept(); cli.sendall(b'ping'); print(conn.recv(4).decode())
"""], net="loopback")
    assert status == 0, err
    assert out.strip() == "ping"


def test_strict_allow_list_refuses_what_it_does_not_list():
    status, out, _, _ = run(["python3", "-c", """
import os, errno
print('ok')
try:
    os.sched_setaffinity(0, {0})
except OSError as e:
    print(errno.errorcode[e.errno])
"""], profile="strict")
    assert status == 0
    assert out.split() == ["ok", "EPERM"]


def test_rootfs_runs_a_command_from_another_tree(tmp_path):
    root = tmp_path / "root"
    for d in ("proc", "dev", "tmp", "bin"):
        (root / d).mkdir(parents=True)
    src = tmp_path / "hello.c"
    src.write_text('#include <stdio.h>\n#include <unistd.h>\nint main(void){'
                   'printf("hello from %s\\n", access("/etc/os-release", F_OK) ? "a bare root" : "the host");'
                   'return 0;}\n')
    import subprocess
    subprocess.run(["gcc", "-static", "-O1", "-o", str(root / "bin" / "hello"), str(src)], check=True)
    for d in (tmp_path, root, root / "bin"):
        d.chmod(0o755)
    status, out, err, _ = run(["/bin/hello"], rootfs=str(root))
    assert status == 0, err
    assert out == "hello from a bare root\n"
