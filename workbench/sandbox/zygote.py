"""The launcher: a small single-threaded process that forks sandboxes on request.

Why a separate process: the workbench runs threads (Textual, bcc's poller), and fork() in a
threaded process copies locks held by other threads. The launcher is started once with
subprocess (fork+exec, safe from threads), imports what a sandbox needs, and forks every sandbox
from its own single thread, which also makes a launch cheap (no interpreter start per sandbox).

Per sandbox, three processes:
  A  child of the launcher, in the host pid namespace: unshares the namespaces, waits while the
     launcher writes its uid/gid maps and moves a veth in, then forks B and waits for it.
  B  pid 1 inside: builds the filesystem, hostname and network, then forks C and acts as a
     minimal init (reaps orphans, forwards signals, reports C's wait status). With
     `process.init = false` B is C.
  C  the command: rlimits, capabilities, no_new_privs, reports ready, waits at the start gate,
     loads the seccomp filter last, and execs.
Each dies with its parent (PR_SET_PDEATHSIG), and the launcher kills every sandbox and removes its
cgroups when the workbench's end of the socket closes, even if the workbench was SIGKILLed.

Protocol: JSON messages on a SOCK_SEQPACKET pair; the command's stdio fds ride along as
SCM_RIGHTS with `launch`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass

from workbench.sandbox import cgroups, mounts, network, security
from workbench.sandbox import linux as L

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT)
STEP_TIMEOUT_S = 20.0
MAX_MSG = 1 << 20


# Timestamps (CLOCK_MONOTONIC, shared by all processes) of set-up steps inside the sandbox; each
# fork copies the list, and the command sends it with its ready line.
_marks: list[tuple[str, float]] = []


def _mark(name: str) -> None:
    _marks.append((name, time.monotonic()))


class LaunchFailed(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _pipe() -> tuple[int, int]:
    return os.pipe2(os.O_CLOEXEC)


def _read_line(fd: int, timeout: float = STEP_TIMEOUT_S) -> str:
    """One line from a pipe, '' on EOF."""
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise LaunchFailed(125, "sandbox set-up timed out")
        chunk = os.read(fd, 1)
        if not chunk:
            return ""
        buf += chunk
    return buf.decode().rstrip("\n")


def _fail(ready_w: int, exc: BaseException, code: int = 125) -> None:
    """Report a set-up failure to the launcher and die; never returns."""
    if isinstance(exc, LaunchFailed):
        code, text = exc.code, str(exc)
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc.strerror or exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    try:
        os.write(ready_w, f"E{code}:{text}\n".encode())
    finally:
        os._exit(code)


@dataclass
class Pipes:
    go_r: int
    go_w: int
    info_r: int
    info_w: int
    ready_r: int
    ready_w: int
    gate_r: int
    gate_w: int
    status_r: int
    status_w: int

    @classmethod
    def make(cls) -> "Pipes":
        fds = [fd for _ in range(5) for fd in _pipe()]
        return cls(*fds)

    def child_ends(self) -> list[int]:
        return [self.go_r, self.info_w, self.ready_w, self.gate_r, self.status_w]

    def parent_ends(self) -> list[int]:
        return [self.go_w, self.info_r, self.ready_r, self.gate_w, self.status_r]


# --- inside the sandbox ----------------------------------------------------------------------


def _which(name: str, path: str) -> str:
    """Resolve the command in the sandbox's own view, so that 127/126 are told apart before exec."""
    candidates = [name] if "/" in name else [os.path.join(d or ".", name) for d in path.split(":")]
    found_not_exec = None
    for c in candidates:
        if os.path.isfile(c):
            if os.access(c, os.X_OK):
                return c
            found_not_exec = c
    if found_not_exec:
        raise LaunchFailed(126, f"{name}: permission denied (not executable in the sandbox)")
    raise LaunchFailed(127, f"{name}: command not found in the sandbox")


def _child_c(plan: dict, p: Pipes, stdio: list[int]) -> None:
    prof = plan["profile"]
    try:
        if plan["stdin"] == "terminal":
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            os.setpgid(0, 0)
            try:
                os.tcsetpgrp(0, os.getpgrp())
            except OSError:
                pass
            signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        else:
            os.setsid()  # no controlling terminal: no TIOCSTI into the host's
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        _mark("fork command")
        os.chdir(prof["cwd"])
        path = _which(plan["command"][0], plan["env"].get("PATH", ""))
        security.apply_rlimits(prof["rlimits"])
        if prof["namespaces"]["user"]:
            security.drop_capabilities(prof["cap_keep"], ambient=prof["uid"] != 0)
        if prof["no_new_privs"]:
            security.set_no_new_privs()
        flt = plan.get("seccomp_bpf")
        _mark("security")
        os.write(p.ready_w, ("R" + json.dumps(_marks) + "\n").encode())
        if os.read(p.gate_r, 1) != b"g":
            os._exit(125)  # the launcher went away: never run the command
        if flt is not None:
            security.load_compiled(flt, prof["seccomp"]["log"])
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the launcher
        _fail(p.ready_w, exc)
    try:
        os.execve(path, plan["command"], plan["env"])
    except OSError as exc:
        os.write(p.ready_w, f"X{exc.errno}\n".encode())
        os._exit(127 if exc.errno == 2 else 126)


def _init_loop(child: int, status_w: int) -> None:
    """pid 1: forward signals to the command, reap everything, report the command's status."""

    def forward(sig, _frame):
        try:
            os.kill(child, sig)
        except ProcessLookupError:
            pass

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            os.write(status_w, f"S{status}\n".encode())
            os._exit(0)  # pid 1 leaving takes every other process of the namespace with it


def _child_b(plan: dict, p: Pipes, stdio: list[int], sources) -> None:
    prof = plan["profile"]
    try:
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
        ns = prof["namespaces"]
        _mark("fork pid 1")
        if ns["mnt"]:
            mounts.build(plan, sources)
        _mark("filesystem")
        if ns["uts"]:
            L.sethostname(prof["hostname"])
        if prof["net"] in ("loopback", "veth"):
            network.link_up("lo")
        if prof["net"] == "veth":
            network.configure_sandbox_side(plan["veth"]["sandbox_addr"], plan["veth"]["host_addr"])
        _mark("hostname+network")
        if not prof["init"]:
            _child_c(plan, p, stdio)
        child = os.fork()
        if child == 0:
            _child_c(plan, p, stdio)
        for fd in stdio + [p.gate_r, p.ready_w]:
            os.close(fd)
        if ns["user"]:
            security.drop_capabilities([], ambient=False)
        security.set_no_new_privs()
    except BaseException as exc:  # noqa: BLE001
        _fail(p.ready_w, exc)
    _init_loop(child, p.status_w)


def _child_a(plan: dict, p: Pipes, stdio: list[int], launcher: int) -> None:
    prof = plan["profile"]
    try:
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != launcher:
            os._exit(125)
        if os.read(p.go_r, 1) != b"1":  # placed in the cgroup first: the cgroup ns is rooted there
            os._exit(125)
        flags = 0
        for name, on in prof["namespaces"].items():
            if on:
                flags |= L.NS_FLAGS[name]
        L.unshare(flags)
        # Still host uid 0 (the uid changes below), so a root-only parent directory can be walked;
        # opened after the unshare, the fds belong to the new mount namespace and can be bound.
        sources = mounts.open_sources(plan) if prof["namespaces"]["mnt"] else None
        os.write(p.info_w, b"u\n")
        if os.read(p.go_r, 1) != b"2":
            os._exit(125)
        if prof["namespaces"]["user"]:
            os.setresgid(prof["gid"], prof["gid"], prof["gid"])
            os.setgroups([])
            os.setresuid(prof["uid"], prof["uid"], prof["uid"])
        b = os.fork()
        if b == 0:
            _child_b(plan, p, stdio, sources)
        os.write(p.info_w, f"{b}\n".encode())
        for fd in stdio + [p.gate_r, p.ready_w]:
            os.close(fd)
        _, status = os.waitpid(b, 0)
        os.write(p.status_w, f"A{status}\n".encode())
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001
        _fail(p.ready_w, exc)


# --- the launcher ----------------------------------------------------------------------------


@dataclass
class Sandbox:
    id: int
    pid_a: int
    pidfd: int
    pipes: Pipes
    cgroup: cgroups.SandboxCgroup
    pid_b: int = 0
    pid_c: int = 0
    veth: str | None = None
    released: bool = False
    phases: list = None


class Launcher:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sandboxes: dict[int, Sandbox] = {}
        self.veth_index = 0

    def send(self, msg: dict) -> None:
        self.sock.send(json.dumps(msg).encode())

    def serve(self) -> None:
        while True:
            fds = [self.sock.fileno()] + [s.pidfd for s in self.sandboxes.values()]
            ready, _, _ = select.select(fds, [], [])
            for fd in ready:
                if fd == self.sock.fileno():
                    msg, stdio, _flags, _addr = socket.recv_fds(self.sock, MAX_MSG, 3)
                    if not msg:
                        self.shutdown()
                        return
                    self.handle(json.loads(msg), stdio)
                else:
                    for sb in list(self.sandboxes.values()):
                        if sb.pidfd == fd:
                            self.reap(sb)

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
                os.write(sb.pipes.gate_w, b"g")
        elif op == "kill" and sid in self.sandboxes:
            sb = self.sandboxes[sid]
            for pid in (sb.pid_b or sb.pid_a,):
                try:
                    os.kill(pid, msg.get("signal", signal.SIGKILL))
                except ProcessLookupError:
                    pass
        elif op == "ping":
            self.send({"op": "pong"})

    def launch(self, sid: int, plan: dict, stdio: list[int]) -> None:
        t0 = time.monotonic()
        cg = cgroups.SandboxCgroup.from_dict(plan["cgroup"])
        if plan["profile"]["net"] == "veth":  # decided before the fork: the sandbox side needs them
            self.veth_index += 1
            host_addr, sandbox_addr = network.veth_addresses(self.veth_index)
            plan["veth"] = {"host_addr": host_addr, "sandbox_addr": sandbox_addr,
                            "host_if": network.host_veth_name(plan["owner"], self.veth_index)}
        try:
            plan["seccomp_bpf"] = security.compile_filter(plan["profile"]["seccomp"])
        except Exception as exc:  # noqa: BLE001 - libseccomp raises several types
            self.send({"op": "error", "id": sid, "code": 125, "message": f"cannot build the seccomp filter: {exc}"})
            return
        p = Pipes.make()
        pid_a = os.fork()
        if pid_a == 0:
            for fd in p.parent_ends():
                os.close(fd)
            self.sock.close()
            _child_a(plan, p, stdio, os.getppid())
        for fd in p.child_ends():
            os.close(fd)
        sb = Sandbox(id=sid, pid_a=pid_a, pidfd=os.pidfd_open(pid_a), pipes=p, cgroup=cg, phases=[("fork", time.monotonic())])
        self.sandboxes[sid] = sb
        try:
            self._bring_up(sb, plan)
        except LaunchFailed as exc:
            self._abort(sb)
            self.send({"op": "error", "id": sid, "code": exc.code, "message": str(exc)})
            return
        ns = {}
        for name in ("user", "pid", "mnt", "net", "uts", "ipc", "cgroup"):
            try:
                inode = os.stat(f"/proc/{sb.pid_c}/ns/{name}").st_ino
                # "Host" is the workbench's own view: /proc/1 may belong to an outer sandbox.
                ns[name] = {"inode": inode, "isolated": inode != os.stat(f"/proc/self/ns/{name}").st_ino}
            except OSError:
                ns[name] = {"inode": None, "isolated": plan["profile"]["namespaces"].get(name, False)}
        self.send({"op": "ready", "id": sid, "pid": sb.pid_c, "init_pid": sb.pid_b,
                   "namespaces": ns, "veth": sb.veth, "launch_ms": (time.monotonic() - t0) * 1000,
                   "phases_ms": _phase_durations(t0, sb.phases + [("ready", time.monotonic())])})

    def _expect(self, sb: Sandbox, fd: int, what: str) -> str:
        line = _read_line(fd)
        if line.startswith("E"):
            code, _, text = line[1:].partition(":")
            raise LaunchFailed(int(code), text)
        if not line:
            err = _read_line(sb.pipes.ready_r, 1.0) if fd != sb.pipes.ready_r else ""
            if err.startswith("E"):
                code, _, text = err[1:].partition(":")
                raise LaunchFailed(int(code), text)
            raise LaunchFailed(125, f"sandbox died during set-up ({what})")
        return line

    def _bring_up(self, sb: Sandbox, plan: dict) -> None:
        prof, p = plan["profile"], sb.pipes
        mark = sb.phases.append  # where launch time goes, reported with `ready`
        try:
            sb.cgroup.add(sb.pid_a)
        except OSError as exc:
            raise LaunchFailed(125, f"cannot join the sandbox cgroup: {exc.strerror}") from None
        mark(("cgroup", time.monotonic()))
        os.write(p.go_w, b"1")
        self._expect(sb, p.info_r, "unshare")
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
        os.write(p.go_w, b"2")
        sb.pid_b = int(self._expect(sb, p.info_r, "fork of pid 1"))
        mark(("pid of pid 1", time.monotonic()))
        ready = self._expect(sb, p.ready_r, "set-up")
        sb.phases.extend(tuple(m) for m in json.loads(ready[1:]))
        mark(("ready line", time.monotonic()))
        sb.pid_c = self._find_command(sb, prof["init"])
        try:
            sb.cgroup.move_to_app(sb.pid_c)
        except OSError as exc:
            raise LaunchFailed(125, f"cannot move the command into its cgroup: {exc.strerror}") from None

    @staticmethod
    def _find_command(sb: Sandbox, has_init: bool) -> int:
        if not has_init:
            return sb.pid_b
        with open(f"/proc/{sb.pid_b}/task/{sb.pid_b}/children") as f:
            kids = f.read().split()
        if not kids:
            raise LaunchFailed(125, "the command's process vanished during set-up")
        return int(kids[0])

    def _abort(self, sb: Sandbox) -> None:
        for pid in (sb.pid_b, sb.pid_a):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        os.waitpid(sb.pid_a, 0)
        self._forget(sb)

    def _forget(self, sb: Sandbox) -> None:
        for fd in sb.pipes.parent_ends() + [sb.pidfd]:
            try:
                os.close(fd)
            except OSError:
                pass
        self.sandboxes.pop(sb.id, None)

    def reap(self, sb: Sandbox) -> None:
        _, a_status = os.waitpid(sb.pid_a, 0)
        lines = []
        while True:
            try:
                line = _read_line(sb.pipes.status_r, 0.2)
            except LaunchFailed:
                break
            if not line:
                break
            lines.append(line)
        status = next((int(x[1:]) for x in lines if x.startswith("S")), None)
        b_status = next((int(x[1:]) for x in lines if x.startswith("A")), None)
        exec_errno = None
        os.set_blocking(sb.pipes.ready_r, False)
        try:
            tail = os.read(sb.pipes.ready_r, 4096).decode()
            for line in tail.splitlines():
                if line.startswith("X"):
                    exec_errno = int(line[1:])
        except (BlockingIOError, OSError):
            pass
        if status is None:
            status = b_status if b_status is not None else a_status
        self._forget(sb)
        self.send({"op": "exited", "id": sb.id, "status": status, "exec_errno": exec_errno})

    def shutdown(self) -> None:
        """The workbench is gone: nothing it started may outlive it."""
        for sb in list(self.sandboxes.values()):
            for pid in (sb.pid_b, sb.pid_a):
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
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


def _phase_durations(t0: float, marks: list) -> dict:
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
