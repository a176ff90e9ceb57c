"""One small broken app per cause, really failing inside a real sandbox for that reason. For each:
the top finding names the right layer, and its fix (the options `workbench run --fix` applies, or
the profile patch when no option expresses it) makes the same app succeed."""

from __future__ import annotations

import os
import signal
import socket
import threading

import pytest
from .scenario_helpers import fixed_profile, run

from workbench.sandbox.profile import apply_overrides, load

pytestmark = pytest.mark.privileged
PY = "/usr/bin/python3"


def fails_then_fix_works(profile, command, layer, rule=None):
    before = run(profile, command)
    assert not before.ok, f"the broken app succeeded: {before.stdout!r}"
    top = before.top
    print(f"\n{layer}: {top.summary}\n  fix: {top.fix}\n  " + "\n  ".join(top.evidence[:3]))
    assert top.layer == layer, [(f.layer, f.summary) for f in before.findings]
    if rule:
        assert top.rule.startswith(rule), top.rule
    after = run(fixed_profile(profile, top), command)
    assert after.ok, (top.fix, after.exited, after.stderr, [(f.layer, f.summary) for f in after.findings])
    return before, after


def open_to_sandbox(path):
    """pytest's tmp dirs are root-only; the sandbox runs as host uid 65534."""
    while str(path).startswith("/tmp/"):
        os.chmod(path, os.stat(path).st_mode | 0o755)
        path = path.parent


def test_seccomp_errno_denial():
    p = apply_overrides(load("default"), deny=["mkdir"])
    before, after = fails_then_fix_works(p, ["sh", "-c", "mkdir /tmp/d23 && echo made"], "seccomp",
                                         "seccomp-denial:mkdir")
    assert before.top.fix_options == ("--allow", "mkdir") and after.stdout == b"made\n"


def test_seccomp_kill():
    p = apply_overrides(load("default"), deny=["rmdir"])
    p.seccomp.action = "kill"
    before, _ = fails_then_fix_works(p, ["sh", "-c", "mkdir /tmp/d && rmdir /tmp/d && echo gone"], "seccomp",
                                     "seccomp-denial:rmdir")
    assert before.exited.exit_code == 128 + signal.SIGSYS  # sh reports its child's SIGSYS death


def test_path_on_the_host_but_not_in_the_sandbox(tmp_path):
    data = tmp_path / "input.txt"
    data.write_text("23\n")
    open_to_sandbox(data)
    _, after = fails_then_fix_works(load("default"), ["cat", str(data)], "mount", "host-path-missing")
    assert after.stdout == b"23\n"


def test_write_to_a_read_only_bind(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    open_to_sandbox(out)
    os.chmod(out, 0o777)
    p = apply_overrides(load("default"), binds=[f"{out}:{out}:ro"])
    fails_then_fix_works(p, ["sh", "-c", f"echo 23 > {out}/result"], "readonly-fs")
    assert (out / "result").read_text() == "23\n"


def test_write_to_the_read_only_root_is_named():
    before = run(load("default"), ["mkdir", "/wb-should-not-exist"])
    assert not before.ok and before.top.layer == "readonly-fs"
    assert not os.path.exists("/wb-should-not-exist")


def test_missing_capability_to_bind_a_low_port():
    p = apply_overrides(load("default"), net="loopback")
    code = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 81)); print('bound')"
    _, after = fails_then_fix_works(p, [PY, "-c", code], "capabilities", "missing-capability:net_bind_service")
    assert after.stdout == b"bound\n"


def test_missing_capability_for_a_raw_socket():
    p = apply_overrides(load("default"), net="loopback")
    code = "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print('raw')"
    _, after = fails_then_fix_works(p, [PY, "-c", code], "capabilities", "missing-capability:net_raw")
    assert after.stdout == b"raw\n"


def test_mount_needs_seccomp_and_then_a_capability():
    """Two layers in turn: the default deny-list refuses mount; once allowed, CAP_SYS_ADMIN is missing."""
    cmd = ["sh", "-c", "mkdir /tmp/m && mount -t tmpfs none /tmp/m && echo mounted"]
    first = run(load("default"), cmd)
    assert not first.ok and first.top.rule == "seccomp-denial:mount"
    _, after = fails_then_fix_works(fixed_profile(load("default"), first.top), cmd, "capabilities",
                                    "missing-capability:sys_admin")
    assert after.stdout == b"mounted\n"


def test_chown_to_an_unmapped_uid():
    before, _ = fails_then_fix_works(load("default"), ["sh", "-c", "touch /tmp/f && chown 1000 /tmp/f"],
                                     "user-namespace", "unmapped-id")
    assert "uid 1000" in before.top.summary


def test_bound_directory_owned_by_an_unmapped_host_user(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    open_to_sandbox(data)
    os.chmod(data, 0o755)  # root's, not writable by the sandbox's host uid 65534
    p = apply_overrides(load("default"), binds=[f"{data}:{data}:rw"])
    fails_then_fix_works(p, ["sh", "-c", f"echo 23 > {data}/out"], "user-namespace", "unmapped-owner")
    assert (data / "out").read_text() == "23\n"


def test_memory_oom_kill():
    p = apply_overrides(load("default"), memory="64M")
    code = "b = bytearray(96 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('fits')"
    before, after = fails_then_fix_works(p, [PY, "-c", code], "cgroup-memory")
    assert before.top.fix_options == ("--memory", "320M") and after.stdout == b"fits\n"


def test_fork_at_the_pids_limit():
    p = apply_overrides(load("default"), pids="9")
    # 13 children that wait on a pipe, so they exist at once; the parent exits 1 when fork fails.
    code = ("import os, sys\nr, w = os.pipe()\nkids = []\n"
            "for i in range(13):\n"
            "    try: pid = os.fork()\n"
            "    except OSError as e: print(e, file=sys.stderr); os.close(w); sys.exit(1)\n"
            "    if pid == 0: os.close(w); os.read(r, 1); os._exit(0)\n"
            "    kids.append(pid)\n"
            "os.close(w)\nfor k in kids: os.waitpid(k, 0)\nprint(len(kids))")
    _, after = fails_then_fix_works(p, [PY, "-c", code], "cgroup-pids")
    assert after.stdout == b"13\n"


def greet_every_client(server: socket.socket, greeting: bytes) -> None:
    """A host service for the sandbox to reach: answers each connection with `greeting` until
    the listening socket is closed."""
    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(greeting)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()


def test_host_service_refused_on_the_sandbox_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]

    greet_every_client(server, b"hello\n")
    try:
        p = apply_overrides(load("default"), net="loopback")
        code = f"import socket; s = socket.create_connection(('127.0.0.1', {port})); print(s.recv(6).decode(), end='')"
        before, after = fails_then_fix_works(p, [PY, "-c", code], "network")
        assert before.top.fix_options == ("--net", "host") and after.stdout == b"hello\n"
    finally:
        server.close()


def test_exec_of_a_binary_that_only_the_host_has(tmp_path):
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    open_to_sandbox(tool)
    _, after = fails_then_fix_works(load("default"), [str(tool)], "exec", "binary-missing")
    assert after.stdout == b"tool ran\n"


def test_exec_of_a_script_whose_interpreter_is_missing(tmp_path):
    interp = tmp_path / "interp"
    interp.mkdir()
    (interp / "run").write_text("#!/bin/sh\nexec /bin/sh \"$@\"\n")
    app = tmp_path / "app"
    app.mkdir()
    (app / "main").write_text(f"#!{interp}/run\necho app ran\n")
    for f in (interp / "run", app / "main"):
        f.chmod(0o755)
    open_to_sandbox(interp / "run")
    open_to_sandbox(app / "main")
    p = apply_overrides(load("default"), binds=[f"{app}:/tmp/app"])
    _, after = fails_then_fix_works(p, ["/tmp/app/main"], "exec", "interpreter-missing")
    assert after.stdout == b"app ran\n"


def test_name_resolution_without_a_network_is_named():
    """Diagnosis only: no fix can make DNS work here, the test machine reaches no resolver at all."""
    code = "import socket; socket.getaddrinfo('example.org', 80)"
    before = run(load("default"), [PY, "-c", code])
    assert not before.ok
    assert (before.top.layer, before.top.rule) == ("network", "name-resolution:dns")
    assert before.top.fix_options == ("--net", "veth")


def test_live_findings_reach_the_recording_and_explain_agrees(tmp_path):
    from workbench.core import events as ev
    from workbench.diagnose import diagnose
    from workbench.record import open_recording

    rec = str(tmp_path / "run.sqlite")
    p = apply_overrides(load("default"), deny=["mkdir"])
    before = run(p, ["sh", "-c", "mkdir /tmp/d23"], record=rec)
    assert not before.ok and before.top.layer == "seccomp"
    with open_recording(rec) as recording:
        events = list(recording.events())
        assert recording.complete and recording.meta["exit"]["exit_code"] == 1
    kinds = [type(e).__name__ for e in events]
    assert "Finding" in kinds and kinds.index("Finding") < kinds.index("SessionEnded")
    recorded = [e for e in events if isinstance(e, ev.Finding)]
    assert recorded[0].rule == "seccomp-denial:mkdir"
    again = diagnose(events, None)  # the profile comes from SessionStarted in the recording
    assert [f.rule for f in again] == [f.rule for f in before.findings]
    # Replaying the recording through a live diagnoser gives the same diagnosis.
    import math

    from workbench.core.bus import Bus
    from workbench.diagnose import LiveDiagnoser
    from workbench.record.replay import Replayer

    bus = Bus()
    with open_recording(rec) as recording:
        live = LiveDiagnoser(bus, recording.meta["profile"])
        player = Replayer(recording, bus)
        player.play(speed=math.inf)
        assert player.wait_finished(timeout=60)
        player.close()
    assert [f.rule for f in live.finish()] == [f.rule for f in before.findings]


def test_a_syscall_gvisor_does_not_implement():
    # fchmodat2 (452, Linux 6.6) is newer than the Sentry of Debian's runsc: ENOSYS there only.
    code = ("import ctypes, sys\nlibc = ctypes.CDLL(None, use_errno=True)\nopen('/tmp/f23', 'w').close()\n"
            "sys.exit(0 if libc.syscall(452, -100, b'/tmp/f23', 0o600, 0) == 0 else 3)")
    before = run(load("default"), [PY, "-c", code], backend="gvisor")
    assert before.exited is not None and before.exited.exit_code == 3
    assert before.top.layer == "gvisor" and before.top.fix_options == ("--backend", "native")
    assert [f.layer for f in before.findings] == ["gvisor"]  # the Sentry's own seccomp traps are not blamed
    after = run(load("default"), [PY, "-c", code], backend=before.top.fix_options[1])
    assert after.ok


def test_a_unix_socket_of_the_host_is_not_in_the_sandbox(tmp_path):
    sock_dir = tmp_path / "run"
    sock_dir.mkdir()
    open_to_sandbox(sock_dir)
    path = sock_dir / "service.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    os.chmod(path, 0o777)
    server.listen(4)

    greet_every_client(server, b"pong\n")
    try:
        code = (f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({str(path)!r}); "
                "print(s.recv(5).decode(), end='')")
        _, after = fails_then_fix_works(load("default"), [PY, "-c", code], "mount", "host-path-missing")
        assert after.stdout == b"pong\n"
    finally:
        server.close()
