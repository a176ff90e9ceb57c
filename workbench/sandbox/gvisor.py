"""The gVisor backend: `runsc --network=none do CMD` in our cgroup, with the app's syscalls as the
Sentry sees them (its `--strace` log, parsed) beside the host syscalls the Sentry itself makes
(our eBPF probes, filtered on the cgroup that holds every runsc process).

    holder (bash, held, in app/) ── launch() returns here; the probes gate on its execve
    release(): exec runsc do ─▶ gofer + sandbox (the Sentry) ─▶ the app, inside the Sentry
                                 follower thread: *.boot.txt ─▶ Syscall(source="gvisor") ─▶ bus

The start gate is before runsc itself, so the run includes gVisor's own boot (~160 ms): the
host-side view then shows what a gVisor launch costs. `runsc do` honours little of a profile;
`limitations()` lists what it cannot, and the session publishes each as a Notice.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import signal
import stat
import tempfile
import threading
import time

from workbench.core.events import Notice, Syscall, SyscallBatch
from workbench.sandbox import cgroups, held
from workbench.sandbox.gvisor_strace import StraceParser
from workbench.sandbox.handle import ExitStatus, SandboxHandle
from workbench.sandbox.plan import Plan
from workbench.sandbox.profile import Profile

FOLLOW_EVERY_S = 0.02
BATCH = 2048
STUBS_DIR = "stubs"


def limitations(p: Profile) -> list[str]:
    """What of `p` gVisor's `runsc do` cannot honour, one line each."""
    out = ["namespaces: the app's namespaces are the Sentry's own emulation, not host namespaces "
           "(the report shows them as isolated, without inodes)"]
    if p.seccomp.mode != "off":
        out.append("seccomp: the profile's filter is not applied; the Sentry implements syscalls itself "
                   "and runs under its own host filter, so no seccomp denials will be seen")
    if p.readonly_root:
        out.append("filesystem.readonly_root: runsc do puts a writable in-memory overlay on the root; "
                   "writes succeed inside and never reach the host")
    if p.binds:
        out.append("filesystem.binds: runsc do has no bind mounts; they are ignored")
    if p.cap_keep or p.uid != 0:
        out.append("capabilities and user.uid: runsc do runs the app as root with gVisor's default "
                   "capabilities inside the Sentry")
    if p.hostname != "sandbox" or p.namespaces["uts"]:
        out.append("process.hostname: runsc do keeps the host's hostname")
    if p.rlimits:
        out.append("rlimits: not applied (they would limit the Sentry, not the app)")
    if p.pids:
        out.append("limits.pids counts host tasks: the Sentry's and gofer's threads, not the app's processes")
    if p.memory:
        out.append("limits.memory covers the Sentry and gofer as well as the app's memory")
    return out


def _traced(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return line.split()[1] != "0"
    except OSError:
        pass
    return False


def runsc_args(p: Profile, command: list[str], state_dir: str, log_dir: str) -> list[str]:
    from workbench.core.errors import UsageError

    if p.net == "veth":
        raise UsageError("the gvisor backend cannot give the sandbox a veth pair",
                         "use --net none/loopback or --backend native")
    # Never runsc's default network: `do` would set up NAT with iptables on the host.
    network = "host" if p.net == "host" else "none"
    return [f"--network={network}", f"--root={state_dir}", f"--debug-log={log_dir}/", "--strace",
            "--ignore-cgroups", "do", "-quiet", "-root", p.rootfs, "-cwd", p.cwd, "--", *command]


class GvisorSandbox(SandboxHandle):
    """One `runsc do` run, held before runsc starts after `launch`."""

    backend = "gvisor"

    def __init__(self, plan: Plan, stdio: tuple[int, int, int]):
        super().__init__(plan, stdio)
        self.notices: list[str] = limitations(plan.profile)
        self.app_syscalls = 0
        """Syscalls of the app seen in gVisor's strace log so far."""
        self._bus = None
        self._said = False
        self._holder: held.Held | None = None
        self._tmp: str | None = None
        self._follower: threading.Thread | None = None
        self._stub_watcher: threading.Thread | None = None
        self.stubs_moved: list[int] = []
        """Host pids of the ptrace stubs moved out of app/ (the first ones; the rest inherit)."""
        self.late_stubs: list[int] = []
        """Stubs found in app/ after it had already run app syscalls there: the host probes read
        those calls (sys_exit without sys_enter) as seccomp denials. A session should drop the
        denials of these pids (the race is lost when a stub clones the next one within ~5 ms)."""
        self._follow_stop = threading.Event()
        self._closed = False

    def attach_bus(self, bus) -> None:
        """Publish the app's syscalls (source gvisor) and gVisor's notices on `bus`. Call before
        `release` (before `launch` to also get launch-time notices first); without it the backend
        runs but the Sentry's view is not followed."""
        self._bus = bus
        if self._holder is not None:
            self._say_limitations()

    def _say_limitations(self) -> None:
        if self._said:
            return
        self._said = True
        if any(stat.S_ISREG(os.fstat(fd).st_mode) for fd in self._stdio[1:]):
            self._notice("warning", "runsc writes a regular file given as stdout/stderr from offset 0, "
                         "over what it held; use a pipe")
        for text in self.notices:
            self._notice("info", f"gvisor cannot honour {text}")

    # --- launch --------------------------------------------------------------------------------

    def launch(self) -> None:
        p = self.plan.profile
        t0 = time.monotonic()
        tool = held.require("runsc", "runsc")
        # runsc do shows the rootfs's own /tmp (under its overlay), and has no binds.
        p_view = dataclasses.replace(p, binds=[])
        path = held.resolve_command(p_view, self.plan.command[0], self.plan.env.get("PATH", ""), p.cwd,
                                    private=("/dev", "/proc"))
        if self._bus is not None:
            self._say_limitations()
        self.cgroup = cgroups.create(p.memory, p.pids, p.cpus)
        try:
            self._tmp = tempfile.mkdtemp(prefix="workbench-gvisor-")
            os.mkdir(os.path.join(self._tmp, "logs"))
            argv = [tool] + runsc_args(p, [path, *self.plan.command[1:]], os.path.join(self._tmp, "state"),
                                       os.path.join(self._tmp, "logs"))
            self._holder = held.Held(argv, self._stdio, self.plan.env, new_session=self.plan.stdin != "terminal")
            self.cgroup.add(self._holder.pid)
            self.cgroup.move_to_app(self._holder.pid)  # the probes see every runsc process
        except BaseException:
            self.close()
            raise
        self.pid = self.init_pid = self._holder.pid
        self.namespaces = {t: {"inode": None, "isolated": True, "by": "gvisor"}
                           for t in ("user", "pid", "mnt", "net", "uts", "ipc", "cgroup")}
        if p.net == "host":
            self.namespaces["net"]["isolated"] = False
        self.launch_ms = (time.monotonic() - t0) * 1000

    def _notice(self, level: str, text: str) -> None:
        if self._bus is not None:
            self._bus.publish(Notice(level, text, "gvisor"))

    def release(self) -> None:
        self._released_at = time.monotonic()
        if self._bus is not None:
            self._follower = threading.Thread(target=self._follow, name="workbench-gvisor-strace", daemon=True)
            self._follower.start()
        assert self._holder is not None
        if self.cgroup is not None and self.cgroup.v2:
            self._stub_watcher = threading.Thread(target=self._move_stubs_aside, name="workbench-gvisor-stubs",
                                                  daemon=True)
            self._stub_watcher.start()
        self._holder.go()

    # --- ptrace stubs ----------------------------------------------------------------------------

    def _move_stubs_aside(self) -> None:
        """Move gVisor's first ptrace stub from app/ to a sibling cgroup before the app runs.

        Under the ptrace platform every app syscall enters the host kernel in a stub process and is
        stopped there by PTRACE_SYSEMU: the host's sys_exit fires without a sys_enter, which is the
        very signature the probes read as a seccomp denial. Every stub is cloned from the first one
        (which the Sentry forks at boot, before the app starts), so moving that one moves them all,
        and the probes, filtered on app/, see the Sentry's own host syscalls only. Limits still
        apply: the sibling is inside the sandbox's cgroup.
        """
        cg = self.cgroup
        assert cg is not None and cg.v2 is not None and cg.app_dir is not None
        stubs = os.path.join(cg.v2, STUBS_DIR)
        try:
            os.mkdir(stubs)
        except OSError as exc:
            self._notice("warning", f"cannot set gVisor's ptrace stubs aside ({exc.strerror}): the probes "
                         "will report the app's syscalls as seccomp denials")
            return
        while not self._follow_stop.is_set():
            try:
                with open(os.path.join(cg.app_dir, "cgroup.procs")) as f:
                    pids = [int(x) for x in f.read().split()]
            except OSError:
                return
            for pid in pids:
                if pid not in self.stubs_moved and _traced(pid):
                    late = bool(self.stubs_moved)  # cloned by a stub before that stub was moved
                    try:
                        with open(os.path.join(stubs, "cgroup.procs"), "w") as f:
                            f.write(str(pid))
                        self.stubs_moved.append(pid)
                    except OSError:
                        continue
                    if late and not self.late_stubs:
                        self._notice("warning", "gVisor's ptrace stubs were set aside late: the host view "
                                     f"may show some of the app's first syscalls (pid {pid}) as seccomp "
                                     "denials")
                    if late:
                        self.late_stubs.append(pid)
            # Finely until the first stub is aside (the app starts ~100 ms into the boot), then
            # keep an eye out: a stub cloned by a traced helper before it was moved stays behind.
            self._follow_stop.wait(0.005 if self.stubs_moved else 0.001)

    def _remove_stubs_dir(self) -> None:
        cg = self.cgroup
        if cg is None or not cg.v2:
            return
        stubs = os.path.join(cg.v2, STUBS_DIR)
        deadline = time.monotonic() + 2.0
        while os.path.isdir(stubs):
            try:
                os.rmdir(stubs)
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.005)  # dying stubs leave the cgroup asynchronously

    # --- the Sentry's view ---------------------------------------------------------------------

    def _boot_log(self) -> str | None:
        found = glob.glob(os.path.join(self._tmp or "/nonexistent", "logs", "*.boot.txt"))
        return found[0] if found else None

    def _follow(self) -> None:
        """Tail the boot log until runsc has exited and the file is drained."""
        parser = StraceParser()
        f = None
        partial = ""
        try:
            while True:
                done = self._follow_stop.is_set()
                if f is None:
                    path = self._boot_log()
                    if path is not None:
                        f = open(path, errors="replace")
                if f is not None:
                    chunk = f.read()
                    if chunk:
                        lines = (partial + chunk).split("\n")
                        partial = lines.pop()
                        self._publish(parser, lines)
                        continue
                if done:
                    if partial:
                        self._publish(parser, [partial])
                    break
                self._follow_stop.wait(FOLLOW_EVERY_S)
        except Exception as exc:  # a parsing bug must not pass silently, nor kill the session
            self._notice("error", f"gVisor strace follower failed: {exc!r}")
        finally:
            if f is not None:
                f.close()
        if parser.skipped:
            self._notice("warning", f"{parser.skipped} gVisor strace lines could not be read")

    def _publish(self, parser: StraceParser, lines: list[str]) -> None:
        batch: list[Syscall] = []
        for line in lines:
            ev = parser.parse(line)
            if ev is None:
                continue
            if isinstance(ev, Syscall):
                batch.append(ev)
            else:
                self._bus.publish(ev)
        self.app_syscalls += len(batch)
        for i in range(0, len(batch), BATCH):
            chunk = tuple(batch[i:i + BATCH])
            self._bus.publish(SyscallBatch(ts_ns=chunk[0].ts_ns, syscalls=chunk))

    def _stop_follower(self) -> None:
        self._follow_stop.set()
        if self._follower is not None and self._follower is not threading.current_thread():
            self._follower.join(timeout=10)

    # --- ending --------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        if self.status is not None:
            return self.status
        code = self._wait_holder(self._holder, timeout)
        if code is None:
            return None
        # Drain the log before anyone reads the report: the follower stops after a last read.
        self._stop_follower()
        if code < 0:
            self.status = ExitStatus(None, -code)
        elif 128 < code < 128 + signal.NSIG and self._released_at is not None:
            self.status = ExitStatus(None, code - 128)  # runsc reports a signal death as 128+N
        else:
            self.status = ExitStatus(code, None)
        return self.status

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.status is not None or self._closed or self._holder is None:
            return
        if self._released_at is None:
            self._holder.abandon()  # the holder exits 125 without ever starting runsc
            return
        if sig == signal.SIGKILL and self.cgroup is not None:
            self.cgroup.kill_all()  # runsc, its gofer and the Sentry are all in our cgroup
        else:
            try:
                os.kill(self._holder.pid, sig)  # runsc do forwards signals to the app
            except ProcessLookupError:
                pass

    def close(self) -> dict:
        usage: dict = {}
        if self._closed:
            return usage
        self._end_holder(self._holder)
        self._closed = True
        self._stop_follower()
        if self._stub_watcher is not None:
            self._stub_watcher.join(timeout=5)
        if self.cgroup is not None:
            usage = self.cgroup.usage()
            self.cgroup.kill_all()
            self._remove_stubs_dir()
            self.cgroup.remove()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        return usage
