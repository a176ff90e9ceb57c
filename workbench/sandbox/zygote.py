"""The launcher: a small single-threaded process that builds sandboxes on request.

Why a separate process: the workbench runs threads (Textual, bcc's poller), and fork() in a
threaded process copies locks held by other threads. The launcher is started once with
subprocess (fork+exec, safe from threads), imports what a sandbox needs, and forks every sandbox
from its own single thread, which also makes a launch cheap (no interpreter start per sandbox).
What runs in the sandbox's own processes is in inside.py.

A launch has two halves: *build* (cgroups, namespaces, maps, filesystem, network, capabilities:
everything that depends on the profile only) and *assign* (the command, its environment and stdio).
A client that will launch the same profile again (the TUI's edit-relaunch loop, `compare`, the
launch benchmark) asks for a spare: after its sandbox exits, the launcher builds the next one ahead
of time, and the next launch only assigns.

It kills every sandbox, spares included, and removes their cgroups when the workbench's end of the
socket closes — also when the workbench was SIGKILLed.

Protocol: JSON messages on a SOCK_SEQPACKET pair; the command's stdio fds ride along as
SCM_RIGHTS with `launch`.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from workbench.sandbox import cgroups, held, inside, network, security
from workbench.sandbox.inside import Channels, LaunchFailed

STEP_TIMEOUT_S = 20.0
MAX_MSG = 1 << 20


def _read_line(fd: int, timeout: float = STEP_TIMEOUT_S) -> str:
    """One line from a pipe ('' on EOF). Lines are written whole, so one read usually does."""
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise LaunchFailed(125, "sandbox set-up timed out")
        chunk = os.read(fd, 1 if buf else 65536)
        if not chunk:
            return ""
        buf += chunk
    return buf.decode().rstrip("\n")


def _read_until_eof(fd: int, timeout: float) -> str:
    """Everything the sandbox's processes wrote before they all closed the pipe."""
    out = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


def _key(wire: dict) -> str:
    """Sandboxes built from the same profile for the same client are interchangeable."""
    return json.dumps({"profile": wire["profile"], "owner": wire["owner"]}, sort_keys=True)


@dataclass
class Sandbox:
    key: str
    wire: dict
    ch: Channels
    cgroup: cgroups.SandboxCgroup
    pid_a: int
    pidfd: int
    id: int = 0
    pid_b: int = 0
    pid_c: int = 0
    veth: str | None = None
    released: bool = False
    spare: bool = False
    status_buf: bytes | None = b""
    """What pid 1 and A wrote on the status pipe; None once the exit was reported."""
    status_eof: bool = False
    phases: list = field(default_factory=list)


class Launcher:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sandboxes: dict[int, Sandbox] = {}  # by id; spares have negative ids
        self.spares: dict[str, Sandbox] = {}
        self.wanted: dict[str, dict] = {}  # key -> wire of a profile to keep a spare of
        self.spare_ids = itertools.count(-1, -1)
        self.veth_index = 0

    def send(self, msg: dict) -> None:
        self.sock.send(json.dumps(msg).encode())

    # --- the loop ------------------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            watched = {self.sock.fileno(): None}
            for sb in self.sandboxes.values():
                watched[sb.pidfd] = sb
                if sb.released and sb.status_buf is not None and not sb.status_eof:
                    watched[sb.ch.status_r] = sb
            ready, _, _ = select.select(list(watched), [], [])
            for fd in ready:
                sb = watched[fd]
                if sb is not None and sb.id not in self.sandboxes:
                    continue  # reaped earlier in this round
                if sb is None:
                    msg, stdio, _flags, _addr = socket.recv_fds(self.sock, MAX_MSG, 3, socket.MSG_CMSG_CLOEXEC)
                    if not msg:
                        self.shutdown()
                        return
                    self.handle(json.loads(msg), stdio)
                elif fd == sb.pidfd:
                    self.reap(sb)
                else:
                    self.read_status(sb)
            self.refill_spares()

    def handle(self, msg: dict, stdio: list[int]) -> None:
        op, sid = msg["op"], msg.get("id")
        if op == "launch":
            try:
                self.launch(sid, msg["plan"], stdio)
            finally:
                for fd in stdio:
                    os.close(fd)
        elif op == "release" and sid in self.sandboxes:
            sb = self.sandboxes[sid]
            if not sb.released:
                sb.released = True
                os.write(sb.ch.gate_w, b"g")
        elif op == "kill" and sid in self.sandboxes:
            self._kill(self.sandboxes[sid], msg.get("signal", signal.SIGKILL))
        elif op == "ping":  # answered once everything queued before it (spares too) is done
            self.refill_spares()
            self.send({"op": "pong", "id": sid})
        elif op == "drop_spares":  # the client's relaunch loop is over: no spare, none rebuilt
            self.drop_spares()
            self.send({"op": "pong", "id": sid})

    # --- launching -----------------------------------------------------------------------------

    def launch(self, sid: int, wire: dict, stdio: list[int]) -> None:
        t0 = time.monotonic()
        key = _key(wire)
        if wire.get("spare"):
            if key not in self.wanted:
                self.drop_spares()  # one profile kept warm, the latest asked for: an edited one replaces it
            self.wanted[key] = wire
        sb = None if wire.get("fresh") else self.spares.pop(key, None)
        used_spare = sb is not None
        try:
            if sb is None:
                sb = self.build(wire, key)
            self.sandboxes.pop(sb.id, None)
            sb.id, sb.spare = sid, False
            self.sandboxes[sid] = sb
            self.assign(sb, wire, stdio)
        except LaunchFailed as exc:
            if sb is not None:
                self.abort(sb)
            self.send({"op": "error", "id": sid, "code": exc.code, "message": str(exc)})
            return
        phases = _durations(t0, [("assign", time.monotonic())]) if used_spare else _durations(t0, sb.phases)
        self.send({"op": "ready", "id": sid, "pid": sb.pid_c, "init_pid": sb.pid_b,
                   "cgroup": sb.cgroup.to_dict(), "namespaces": held.namespaces_of(sb.pid_c),
                   "veth": sb.veth, "launch_ms": (time.monotonic() - t0) * 1000,
                   "spare": used_spare, "phases_ms": phases})

    def build(self, wire: dict, key: str) -> Sandbox:
        """Everything that depends on the profile only, up to the command's parked process."""
        t0 = time.monotonic()
        prof = wire["profile"]
        plan = dict(wire)
        try:
            plan["seccomp_bpf"] = security.compile_filter(prof["seccomp"])
            # Compiled here, not in the sandbox: there, after pivot_root, libseccomp's module may
            # not even be importable (a workbench installed under /tmp).
            plan["terminal_guard_bpf"] = security.terminal_guard()
        except Exception as exc:  # noqa: BLE001 - libseccomp raises several types
            raise LaunchFailed(125, f"cannot build the seccomp filter: {exc}") from None
        if prof["net"] == "veth":  # decided before the fork: the sandbox side needs them
            self.veth_index += 1
            host_addr, sandbox_addr = network.veth_addresses(self.veth_index)
            plan["veth"] = {"host_addr": host_addr, "sandbox_addr": sandbox_addr,
                            "host_if": network.host_veth_name(wire["owner"], self.veth_index)}
        try:
            cg = cgroups.create(prof["memory"], prof["pids"], prof["cpus"], owner=wire["owner"])
        except Exception as exc:  # noqa: BLE001 - SandboxError carries the fix
            raise LaunchFailed(125, str(exc)) from None
        ch = Channels.make()
        pid_a = os.fork()
        if pid_a == 0:
            ch.close_launcher_ends()
            self.sock.close()
            inside.child_a(plan, ch, os.getppid())
        ch.close_sandbox_ends()
        sb = Sandbox(key=key, wire=wire, ch=ch, cgroup=cg, pid_a=pid_a, pidfd=os.pidfd_open(pid_a),
                     id=next(self.spare_ids), phases=[("fork", time.monotonic())])
        self.sandboxes[sb.id] = sb  # reaped like any other if it dies while parked
        try:
            self._bring_up(sb, plan)
        except LaunchFailed:
            self.abort(sb)
            raise
        sb.phases.insert(0, ("compile", t0))
        return sb

    def _expect(self, sb: Sandbox, fd: int, what: str) -> str:
        line = _read_line(fd)
        if not line and fd != sb.ch.ready_r:  # a process died: its reason is on the ready pipe
            try:
                line = _read_line(sb.ch.ready_r, 1.0)
            except LaunchFailed:
                line = ""
        if line.startswith("E"):
            code, _, text = line[1:].partition(":")
            raise LaunchFailed(int(code), text)
        if not line:
            raise LaunchFailed(125, f"sandbox died during set-up ({what})")
        return line

    def _bring_up(self, sb: Sandbox, plan: dict) -> None:
        prof, ch = plan["profile"], sb.ch
        mark = sb.phases.append  # where launch time goes, reported with `ready`
        try:
            sb.cgroup.add(sb.pid_a)
        except OSError as exc:
            raise LaunchFailed(125, f"cannot join the sandbox cgroup: {exc.strerror}") from None
        mark(("cgroup", time.monotonic()))
        os.write(ch.go_w, b"1")
        self._expect(sb, ch.info_r, "unshare")
        mark(("unshare", time.monotonic()))
        if prof["namespaces"]["user"]:
            try:
                with open(f"/proc/{sb.pid_a}/uid_map", "w") as f:
                    f.write(f"{prof['uid']} {prof['host_uid']} 1\n")
                with open(f"/proc/{sb.pid_a}/gid_map", "w") as f:
                    f.write(f"{prof['gid']} {prof['host_gid']} 1\n")
            except OSError as exc:
                raise LaunchFailed(125, f"cannot write the uid/gid map: {exc.strerror}") from None
        if prof["net"] == "veth":
            sb.veth = plan["veth"]["host_if"]
            try:
                network.create_veth(sb.veth, sb.pid_a, plan["veth"]["host_addr"])
            except Exception as exc:  # noqa: BLE001 - netlink errors come in several types
                raise LaunchFailed(125, f"cannot create the veth pair: {exc}") from None
        mark(("maps+net", time.monotonic()))
        os.write(ch.go_w, b"2")
        sb.pid_b = int(self._expect(sb, ch.info_r, "fork of pid 1"))
        mark(("pid of pid 1", time.monotonic()))
        parked = self._expect(sb, ch.ready_r, "set-up")
        sb.phases.extend(tuple(m) for m in json.loads(parked[1:]))
        sb.pid_c = self._find_command(sb, prof["init"])
        try:
            sb.cgroup.move_to_app(sb.pid_c)  # the probes' filter: from here on, only the command
        except OSError as exc:
            raise LaunchFailed(125, f"cannot move the command into its cgroup: {exc.strerror}") from None
        mark(("parked", time.monotonic()))

    def assign(self, sb: Sandbox, wire: dict, stdio: list[int]) -> None:
        """Hand the parked process its command and stdio; it answers ready (held at the gate)."""
        job = {"command": wire["command"], "env": wire["env"], "stdin": wire["stdin"]}
        try:
            socket.send_fds(sb.ch.command_launcher, [json.dumps(job).encode()], stdio)
        except OSError:
            raise LaunchFailed(125, "the sandbox died before its command arrived") from None
        self._expect(sb, sb.ch.ready_r, "command")
        sb.phases.append(("ready", time.monotonic()))

    def drop_spares(self) -> None:
        self.wanted.clear()
        for sb in list(self.spares.values()):
            self.abort(sb)

    def refill_spares(self, force: bool = False) -> None:
        """Build missing spares, but only while no sandbox runs: building blocks this loop for a
        few milliseconds, which must never delay a running sandbox's release or kill."""
        if not force and any(not sb.spare for sb in self.sandboxes.values()):
            return
        for key, wire in self.wanted.items():
            if key in self.spares:
                continue
            try:
                sb = self.build(wire, key)
            except LaunchFailed:
                continue  # the next launch builds its own and reports the reason
            sb.spare = True
            self.spares[key] = sb

    @staticmethod
    def _find_command(sb: Sandbox, has_init: bool) -> int:
        if not has_init:
            return sb.pid_b
        with open(f"/proc/{sb.pid_b}/task/{sb.pid_b}/children") as f:
            kids = f.read().split()
        if not kids:
            raise LaunchFailed(125, "the command's process vanished during set-up")
        return int(kids[0])

    # --- ending --------------------------------------------------------------------------------

    @staticmethod
    def _kill(sb: Sandbox, sig: int) -> None:
        # pid 1 forwards catchable signals to the command; SIGKILL ends the whole namespace.
        try:
            os.kill(sb.pid_b or sb.pid_a, sig)
        except ProcessLookupError:
            pass

    def abort(self, sb: Sandbox) -> None:
        for pid in (sb.pid_b, sb.pid_a):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        os.waitpid(sb.pid_a, 0)
        self._forget(sb)
        sb.cgroup.remove()

    def _forget(self, sb: Sandbox) -> None:
        for fd in sb.ch.launcher_ends() + [sb.pidfd]:
            try:
                os.close(fd)
            except OSError:
                pass
        sb.ch.command_launcher.close()
        self.sandboxes.pop(sb.id, None)
        if self.spares.get(sb.key) is sb:
            del self.spares[sb.key]

    def read_status(self, sb: Sandbox) -> None:
        """pid 1 reports the command's status the moment it has it: tell the client at once,
        without waiting for the namespaces to be torn down (A's exit, reaped later)."""
        chunk = os.read(sb.ch.status_r, 4096)
        sb.status_buf += chunk
        lines = sb.status_buf.decode(errors="replace").splitlines()
        status = next((int(x[1:]) for x in lines if x.startswith("S")), None)
        if status is not None:
            self.report_exit(sb, status)
        elif not chunk:  # pid 1 died without a word (SIGKILL): A's exit will tell, via its pidfd
            sb.status_eof = True

    def report_exit(self, sb: Sandbox, status: int) -> None:
        exec_errno = None
        os.set_blocking(sb.ch.ready_r, False)
        try:
            for line in os.read(sb.ch.ready_r, 4096).decode().splitlines():
                if line.startswith("X"):
                    exec_errno = int(line[1:])
        except OSError:
            pass
        sb.status_buf = None
        self.send({"op": "exited", "id": sb.id, "status": status, "exec_errno": exec_errno})

    def reap(self, sb: Sandbox) -> None:
        _, a_status = os.waitpid(sb.pid_a, 0)
        if sb.spare:  # died while parked (killed from outside): forget it, the next launch builds
            self._forget(sb)
            sb.cgroup.remove()
            return
        if sb.status_buf is not None:  # not reported yet: whatever pid 1 and A left says it
            text = (sb.status_buf + _read_until_eof(sb.ch.status_r, 0.5).encode()).decode(errors="replace")
            lines = text.splitlines()
            status = next((int(x[1:]) for x in lines if x.startswith("S")), None)
            b_status = next((int(x[1:]) for x in lines if x.startswith("A")), None)
            if status is None:
                status = b_status if b_status is not None else a_status
            self.report_exit(sb, status)
        self._forget(sb)

    def shutdown(self) -> None:
        """The workbench is gone: nothing it started may outlive it."""
        for sb in list(self.sandboxes.values()):
            self._kill(sb, signal.SIGKILL)
            try:
                os.kill(sb.pid_a, signal.SIGKILL)
            except ProcessLookupError:
                pass
            sb.cgroup.kill_all()
            try:
                os.waitpid(sb.pid_a, 0)
            except ChildProcessError:
                pass
            sb.cgroup.remove(timeout=2.0)
            if sb.veth:
                try:
                    network.delete_link(sb.veth)
                except Exception:  # noqa: BLE001 - it usually vanished with the namespace
                    pass


def _durations(t0: float, marks: list) -> dict:
    out, last = {}, t0
    for name, t in sorted(marks, key=lambda m: m[1]):
        out[name] = round((t - last) * 1000, 3)
        last = t
    return out


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the workbench's to handle
    Launcher(sock).serve()


if __name__ == "__main__":
    main()
