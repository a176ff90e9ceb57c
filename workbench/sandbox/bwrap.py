"""The bubblewrap backend: our profile translated to bwrap's flags, in our cgroup, held at bwrap's
`--block-fd` so the probes attach before the command's execve.

    holder (bash, held) ──placed in the sandbox cgroup──▶ exec bwrap ──clone──▶ child
        child: namespaces, mounts, caps ─▶ blocks reading --block-fd   ◀── launch() returns here
        release(): one byte ─▶ seccomp program loaded (--seccomp FD) ─▶ execve(command)

Choices, and why:
- `--as-pid-1` with a pid namespace: without it bwrap forks its own init after the block fd and
  the command's pid is unknown until it has already exec'd, so the probes' start gate (which
  waits for one known task's execve) could not be set. The command is pid 1 of its namespace:
  it reaps its own orphans, and signals it installs no handler for are ignored (SIGKILL works).
- With a user namespace bwrap runs unprivileged as `user.host_uid`, so the sandbox's root is that
  host uid, as in the native backend; without one it runs as root with capabilities dropped.
- The seccomp filter is libseccomp's, exported as a BPF program (`export_bpf`) into a memfd;
  bwrap loads it last, just before execve.
"""

from __future__ import annotations

import errno as errno_mod
import json
import os
import signal
import stat
import subprocess
import time

from workbench.core.errors import SandboxError, UsageError
from workbench.sandbox import cgroups, held, security
from workbench.sandbox.mounts import RUN_SIZE
from workbench.sandbox.handle import ExitStatus, SandboxHandle
from workbench.sandbox.plan import Plan
from workbench.sandbox.profile import Profile

READY_TIMEOUT_S = 20.0
NR_READ = 0
_NS_FLAGS = {"pid": "--unshare-pid", "net": "--unshare-net", "uts": "--unshare-uts",
             "ipc": "--unshare-ipc", "cgroup": "--unshare-cgroup"}


def limitations(p: Profile) -> list[str]:
    """What of `p` bubblewrap cannot honour exactly, one line each (published as Notices)."""
    out = []
    if not p.namespaces["mnt"]:
        out.append("namespaces.mnt = false: bubblewrap always creates a mount namespace")
    if p.namespaces["pid"] and p.init:
        out.append("process.init: under bwrap the command runs as pid 1 (--as-pid-1) so the probes can "
                   "gate on its execve; it reaps its own orphans and ignores signals it has no handler for")
    if p.net == "none" and p.namespaces["net"]:
        out.append("network.mode = 'none': bubblewrap brings the loopback interface up in the new "
                   "network namespace (same as 'loopback')")
    if not p.no_new_privs:
        out.append("capabilities.no_new_privs = false: bubblewrap always sets no_new_privs")
    if p.seccomp.mode != "off" and p.seccomp.log:
        out.append("seccomp.log: bwrap loads the program without SECCOMP_FILTER_FLAG_LOG, so denials "
                   "reach the probes but not the kernel log")
    if not p.namespaces["user"] and p.cap_keep:
        out.append("capabilities.keep without a user namespace: bwrap keeps the full bounding set as root; "
                   "only the effective set is reduced")
    return out


def bwrap_args(p: Profile, command: list[str], env: dict[str, str], *, block_fd: int, status_fd: int,
               seccomp_fd: int | None, new_session: bool = True) -> list[str]:
    """bwrap's argv for profile `p` (the tool path is prepended by the caller). `new_session` off
    when the command must keep the caller's terminal."""
    if p.net == "veth":
        raise UsageError("the bwrap backend cannot give the sandbox a veth pair",
                         "use --net loopback or --backend native")
    a: list[str] = []
    ns = p.namespaces
    if ns["user"]:
        a += ["--unshare-user", "--uid", str(p.uid), "--gid", str(p.gid)]
    for name, flag in _NS_FLAGS.items():
        if ns[name]:
            a.append(flag)
    if ns["uts"]:
        a += ["--hostname", p.hostname]
    if ns["pid"]:
        a.append("--as-pid-1")
    # Filesystem, in the native backend's order: root, /proc, /dev, /tmp, then the binds on top.
    a += ["--ro-bind" if p.readonly_root else "--bind", p.rootfs, "/"]
    if ns["pid"]:
        a += ["--proc", "/proc"]
    a += ["--dev", "/dev", "--size", str(p.tmp_size), "--tmpfs", "/tmp"]
    if p.rootfs == "/" and os.path.isdir("/run"):
        # As the native backend: the host's /run holds its services' sockets (D-Bus, journald...),
        # reachable with the network off; an empty /run instead.
        a += ["--size", str(RUN_SIZE), "--tmpfs", "/run"]
    for b in p.binds:
        a += ["--ro-bind" if b.readonly else "--bind", b.src, b.dst]
    a += ["--cap-drop", "ALL"]
    for cap in p.cap_keep:
        a += ["--cap-add", "CAP_" + cap.upper()]
    a += ["--chdir", p.cwd, "--die-with-parent"] + (["--new-session"] if new_session else [])
    a += ["--unsetenv", "SHLVL"] if "SHLVL" not in env else []  # the holder's bash adds it
    a += ["--block-fd", str(block_fd), "--json-status-fd", str(status_fd)]
    if seccomp_fd is not None:
        a += ["--seccomp", str(seccomp_fd)]
    return a + ["--", *command]


def _searchable_by(path: str, uid: int, gid: int) -> bool:
    """Can `uid`/`gid` (no capabilities) walk down to `path`? Unprivileged bwrap resolves every
    source itself, so a 0700 parent (pytest's, a home directory) stops it."""
    parts = os.path.abspath(path).split("/")
    for i in range(1, len(parts)):
        d = "/".join(parts[:i]) or "/"
        try:
            st = os.stat(d)
        except OSError:
            return False
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid == gid else stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def check_reachable(p: Profile) -> None:
    """With a user namespace bwrap runs as host_uid: every source must be reachable by it."""
    if not p.namespaces["user"]:
        return
    for label, src in [("filesystem.rootfs", p.rootfs)] + [(f"bind {b.src}", b.src) for b in p.binds]:
        if not _searchable_by(src, p.host_uid, p.host_gid):
            raise UsageError(f"{label}: {src} is not reachable by uid {p.host_uid}, which bwrap runs as "
                             "(a parent directory is not searchable)",
                             "make its parents searchable (chmod o+x), or use --backend native")


def _export_seccomp(p: Profile) -> int | None:
    """The profile's filter as a classic-BPF program in a memfd, or None when seccomp is off."""
    flt = security.build_filter(p.to_dict()["seccomp"])
    if flt is None:
        return None
    fd = os.memfd_create("workbench-seccomp", os.MFD_CLOEXEC)
    with os.fdopen(os.dup(fd), "wb") as f:
        flt.export_bpf(f)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _blocked_on(pid: int, fd: int) -> bool:
    """Is `pid` inside read(fd, ...)? (/proc/PID/syscall: number, then arguments in hex.)"""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            parts = f.read().split()
    except OSError:
        return False
    return len(parts) > 1 and parts[0] == str(NR_READ) and int(parts[1], 16) == fd


class BwrapSandbox(SandboxHandle):
    """One bubblewrap sandbox, held at its block fd after `launch`."""

    backend = "bwrap"

    def __init__(self, plan: Plan, stdio: tuple[int, int, int]):
        super().__init__(plan, stdio)
        self.notices: list[str] = limitations(plan.profile)
        """What of the profile bwrap cannot honour (the session may publish them as Notices)."""
        self._holder: held.Held | None = None
        self._fds: list[int] = []
        self._block_w: int | None = None
        self._status_r: int | None = None
        self._exec_confirmed = False
        self._closed = False

    def attach_bus(self, bus) -> None:
        """Publish what of the profile bwrap cannot honour, as Notices (source `bwrap`)."""
        from workbench.core.events import Notice

        for text in self.notices:
            bus.publish(Notice("info", f"bwrap cannot honour {text}", "bwrap"))

    # --- launch --------------------------------------------------------------------------------

    def launch(self) -> None:
        p = self.plan.profile
        t0 = time.monotonic()
        tool = held.require("bwrap", "bubblewrap")
        check_reachable(p)
        path = held.resolve_command(p, self.plan.command[0], self.plan.env.get("PATH", ""), p.cwd)
        command = [path, *self.plan.command[1:]]
        self.cgroup = cgroups.create(p.memory, p.pids, p.cpus)
        try:
            self._spawn(tool, command)
        except BaseException:
            self.close()
            raise
        self.launch_ms = (time.monotonic() - t0) * 1000

    def _spawn(self, tool: str, command: list[str]) -> None:
        p = self.plan.profile
        block_r, self._block_w = os.pipe2(os.O_CLOEXEC)
        self._status_r, status_w = os.pipe2(os.O_CLOEXEC)
        seccomp_fd = _export_seccomp(p)
        child_fds = [block_r, status_w] + ([seccomp_fd] if seccomp_fd is not None else [])
        self._fds = list(child_fds)
        argv = [tool] + bwrap_args(p, command, self.plan.env, block_fd=block_r, status_fd=status_w,
                                   seccomp_fd=seccomp_fd, new_session=self.plan.stdin != "terminal")
        user = (p.host_uid, p.host_gid) if p.namespaces["user"] else (None, None)
        self._holder = held.Held(argv, self._stdio, self.plan.env, pass_fds=tuple(child_fds),
                                 user=user[0], group=user[1], new_session=self.plan.stdin != "terminal",
                                 rlimits=p.rlimits)
        for fd in child_fds:  # the holder has its copies; ours would hide bwrap's EOFs
            os.close(fd)
        self._fds = []
        pid = self._holder.pid
        assert self.cgroup is not None
        try:
            self.cgroup.add(pid)
        except OSError as exc:
            raise SandboxError(f"cannot place bubblewrap in the sandbox cgroup ({exc.strerror})",
                               "run as root (see `workbench doctor`)") from None
        self._holder.go()
        deadline = time.monotonic() + READY_TIMEOUT_S
        alive = lambda: self._holder.proc.poll() is None  # noqa: E731
        line = held.read_json_line(self._status_r, deadline, alive)
        try:
            child = int(json.loads(line)["child-pid"]) if line else 0
        except (ValueError, KeyError, TypeError):
            child = 0
        if not child:
            raise self._setup_failed()
        # The command's cgroup: the probes filter on app/, and everything it forks inherits it.
        self.cgroup.move_to_app(child)
        # bwrap's child inherits the holder's fds under the same numbers.
        while not _blocked_on(child, block_r):
            if not alive() or time.monotonic() > deadline:
                raise self._setup_failed()
            time.sleep(0.0005)
        self.pid = self.init_pid = child
        self.namespaces = held.namespaces_of(child)

    def _setup_failed(self) -> SandboxError:
        code = None
        if self._holder is not None:
            try:
                code = self._holder.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        return SandboxError(f"bubblewrap could not build the sandbox (exit {code})",
                            "its own message is on the command's stderr; check the profile's binds and "
                            "that unprivileged user namespaces are allowed (`workbench doctor`)")

    # --- handle --------------------------------------------------------------------------------

    def release(self) -> None:
        self._released_at = time.monotonic()
        if self._block_w is not None:
            os.write(self._block_w, b"g")
            os.close(self._block_w)
            self._block_w = None

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        if self.status is not None:
            return self.status
        code = self._wait_holder(self._holder, timeout)
        if code is None:
            return None
        self._read_exit_report()
        self.status = self._status_from(code)
        return self.status

    def _read_exit_report(self) -> None:
        """bwrap writes {"exit-code": N} only when the command's execve succeeded."""
        if self._status_r is None:
            return
        os.set_blocking(self._status_r, False)
        try:
            data = os.read(self._status_r, 65536)
        except OSError:
            data = b""
        self._exec_confirmed = b'"exit-code"' in data

    def _status_from(self, code: int) -> ExitStatus:
        if code < 0:  # bwrap itself was killed
            return ExitStatus(None, -code)
        if not self._exec_confirmed and self._released_at is not None and code == 1:
            # execvp failed inside (resolved beforehand, so rare: a bind hid the file)
            return ExitStatus(127, None, errno_mod.ENOENT)
        # bwrap reports a death by signal N as 128+N, like a shell: take it back to a signal.
        if self._exec_confirmed and 128 < code < 128 + signal.NSIG:
            return ExitStatus(None, code - 128)
        return ExitStatus(code, None)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.status is not None or self._closed:
            return
        for pid in ([self.pid] if self.pid else []):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGKILL and self.cgroup is not None:
            self.cgroup.kill_all()
        if not self.pid and self._holder is not None:
            self._holder.abandon()
            try:
                self._holder.proc.kill()
            except ProcessLookupError:
                pass

    def close(self) -> dict:
        """End the sandbox if still running, remove its cgroups. Returns the final usage."""
        usage: dict = {}
        if self._closed:
            return usage
        self._end_holder(self._holder)
        self._closed = True
        for fd in self._fds + [x for x in (self._block_w, self._status_r) if x is not None]:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds, self._block_w, self._status_r = [], None, None
        if self.cgroup is not None:
            usage = self.cgroup.usage()
            self.cgroup.remove()
        return usage
