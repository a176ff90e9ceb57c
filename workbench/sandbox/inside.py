"""The code that runs inside a sandbox's processes, forked by the launcher (zygote.py).

  A  child of the launcher, in the host pid namespace and the sandbox's cgroups: unshares the
     namespaces, opens the mount sources while still host uid 0, waits while the launcher writes
     its uid/gid maps (and moves a veth in), then forks B and waits for it.
  B  pid 1 inside: builds the filesystem, hostname and network, forks C, then acts as a minimal
     init (reaps orphans, forwards signals, reports C's wait status). With `process.init = false`
     B is C.
  C  the command: rlimits, capabilities, no_new_privs, then *parks*: everything so far depends on
     the profile only, so a sandbox can be built before its command is known (a spare). Given the
     command and its stdio, it resolves the executable, says ready, waits at the start gate, loads
     the seccomp filter last and execs.

Every step that fails reports `E<status>:<reason>` on the ready pipe and exits; the launcher turns
it into the CLI's exit status (125 sandbox, 126 not executable, 127 not found).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import dataclass

from workbench.sandbox import mounts, network, security
from workbench.sandbox import linux as L

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT)
MAX_MSG = 1 << 20

# Timestamps (CLOCK_MONOTONIC, the same clock in every process) of the set-up steps; each fork
# copies the list, and C sends it when it parks.
_marks: list[tuple[str, float]] = []


def mark(name: str) -> None:
    _marks.append((name, time.monotonic()))


class LaunchFailed(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Channels:
    """Pipes between the launcher and one sandbox, both ends (each side closes the other's)."""

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
    command_launcher: socket.socket
    command_sandbox: socket.socket

    @classmethod
    def make(cls) -> "Channels":
        fds = [fd for _ in range(5) for fd in os.pipe2(os.O_CLOEXEC)]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(*fds, ours, theirs)

    def sandbox_ends(self) -> list[int]:
        return [self.go_r, self.info_w, self.ready_w, self.gate_r, self.status_w]

    def launcher_ends(self) -> list[int]:
        return [self.go_w, self.info_r, self.ready_r, self.gate_w, self.status_r]

    def close_launcher_ends(self) -> None:
        for fd in self.launcher_ends():
            os.close(fd)
        self.command_launcher.close()

    def close_sandbox_ends(self) -> None:
        for fd in self.sandbox_ends():
            os.close(fd)
        self.command_sandbox.close()


def fail(ready_w: int, exc: BaseException, code: int = 125) -> None:
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


def which(name: str, path: str) -> str:
    """Resolve the command in the sandbox's own view, so that 127 and 126 are told apart."""
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


def _default_signals() -> None:
    """The command starts with every signal at its default and none blocked. Python ignores
    SIGPIPE and SIGXFSZ, the launcher SIGINT, and an ignored signal stays ignored across exec:
    `yes | head` would never end."""
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass  # signals the C library reserves for itself
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _take_terminal() -> None:
    """Become the terminal's foreground process group (an interactive program owns it)."""
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    os.setpgid(0, 0)
    try:
        os.tcsetpgrp(0, os.getpgrp())
    except OSError:
        pass
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)


def child_c(plan: dict, ch: Channels) -> None:
    prof = plan["profile"]
    try:
        _default_signals()
        mark("fork command")
        try:
            os.chdir(prof["cwd"])
        except OSError as exc:
            raise LaunchFailed(125, f"process.cwd: cannot enter {prof['cwd']} in the sandbox ({exc.strerror})") from None
        try:
            security.apply_rlimits(prof["rlimits"])
        except (OSError, ValueError) as exc:
            raise LaunchFailed(125, f"rlimits: {exc}") from None
        # Always, and above all without a user namespace, where these are the host's capabilities.
        security.drop_capabilities(prof["cap_keep"], ambient=prof["uid"] != 0)
        if prof["no_new_privs"]:
            security.set_no_new_privs()
        mark("security")
        os.write(ch.ready_w, ("P" + json.dumps(_marks) + "\n").encode())
        # Parked: the command and its stdio arrive when someone launches.
        msg, stdio, _flags, _addr = socket.recv_fds(ch.command_sandbox, MAX_MSG, 3, socket.MSG_CMSG_CLOEXEC)
        if not msg:
            os._exit(125)
        job = json.loads(msg)
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        if job["stdin"] == "terminal":
            _take_terminal()
        else:
            os.setsid()  # no controlling terminal: no TIOCSTI into the host's
        for fd in stdio:
            if fd > 2:
                os.close(fd)
        path = which(job["command"][0], job["env"].get("PATH", ""))
        os.write(ch.ready_w, b"R\n")
        if os.read(ch.gate_r, 1) != b"g":
            os._exit(125)  # the launcher went away: never run the command
        if plan.get("seccomp_bpf") is not None:
            security.load_compiled(plan["seccomp_bpf"], prof["seccomp"]["log"])
        elif job["stdin"] == "terminal":
            # No policy, but the caller's own terminal: still no typing into it (TIOCSTI).
            security.set_no_new_privs()
            security.load_compiled(plan["terminal_guard_bpf"], False)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the launcher
        fail(ch.ready_w, exc)
    try:
        os.execve(path, job["command"], job["env"])
    except OSError as exc:
        os.write(ch.ready_w, f"X{exc.errno}\n".encode())
        os._exit(127 if exc.errno == 2 else 126)


def init_loop(child: int, status_w: int) -> None:
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


def child_b(plan: dict, ch: Channels, sources) -> None:
    prof = plan["profile"]
    try:
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
        ns = prof["namespaces"]
        mark("fork pid 1")
        # Network first, while the host's filesystem is still in view: pyroute2 imports parts of
        # itself lazily, and the workbench may live under /tmp, which the sandbox replaces.
        if ns["uts"]:
            L.sethostname(prof["hostname"])
        if prof["net"] in ("loopback", "veth"):
            network.link_up("lo")
        if prof["net"] == "veth":
            network.configure_sandbox_side(plan["veth"]["sandbox_addr"], plan["veth"]["host_addr"])
        mark("hostname+network")
        if ns["mnt"]:
            mounts.build(plan, sources)
        mark("filesystem")
        if not prof["init"]:
            child_c(plan, ch)
        child = os.fork()
        if child == 0:
            child_c(plan, ch)
        for fd in (ch.gate_r, ch.ready_w):
            os.close(fd)
        ch.command_sandbox.close()
        security.drop_capabilities([], ambient=False)
        security.set_no_new_privs()
    except BaseException as exc:  # noqa: BLE001
        fail(ch.ready_w, exc)
    init_loop(child, ch.status_w)


def _close_inherited_fds(keep: set[int]) -> None:
    """Whatever the launcher had open when it forked (other sandboxes' pipes, a client's stdio in
    flight) must not reach this sandbox: an inherited descriptor is how sandboxes leak."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory's own fd, already closed


def child_a(plan: dict, ch: Channels, launcher: int) -> None:
    prof = plan["profile"]
    try:
        _close_inherited_fds(set(ch.sandbox_ends()) | {ch.command_sandbox.fileno()})
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != launcher:
            os._exit(125)
        if os.read(ch.go_r, 1) != b"1":  # placed in the cgroup first: the cgroup ns is rooted there
            os._exit(125)
        flags = 0
        for name, on in prof["namespaces"].items():
            if on:
                flags |= L.NS_FLAGS[name]
        L.unshare(flags)
        # Still host uid 0 (the uid changes below), so a root-only parent directory can be walked;
        # opened after the unshare, the fds belong to the new mount namespace and can be bound.
        sources = mounts.open_sources(plan) if prof["namespaces"]["mnt"] else None
        os.write(ch.info_w, b"u\n")
        if os.read(ch.go_r, 1) != b"2":
            os._exit(125)
        if prof["namespaces"]["user"]:
            os.setresgid(prof["gid"], prof["gid"], prof["gid"])
            os.setgroups([])
            os.setresuid(prof["uid"], prof["uid"], prof["uid"])
            # A credential change clears the parent-death signal: set it again, and make sure the
            # launcher did not die in between (then nobody would be left to kill this sandbox).
            L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != launcher:
                os._exit(125)
        b = os.fork()
        if b == 0:
            child_b(plan, ch, sources)
        os.write(ch.info_w, f"{b}\n".encode())
        for fd in (ch.gate_r, ch.ready_w):
            os.close(fd)
        ch.command_sandbox.close()
        _, status = os.waitpid(b, 0)
        os.write(ch.status_w, f"A{status}\n".encode())
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001
        fail(ch.ready_w, exc)
