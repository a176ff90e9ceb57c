"""One run: a backend, probes, samplers, recorder and diagnosis wired to one event bus.

    profile ─▶ plan ─▶ backend.launch() (held at the start gate) ─▶ probes attach ─▶ release
                                                    samplers, output pumps ─▶ bus ─▶ subscribers

The faces (CLI, TUI) build a `Session`, subscribe to `session.bus`, call `start()` from a worker
thread and `close()` when done. Nothing here imports textual or rich.
"""

from __future__ import annotations

import errno as errno_mod
import os
import signal
import threading
import time
from dataclasses import dataclass

from workbench.core import events as ev
from workbench.core.bus import Bus
from workbench.core.errors import TracingUnavailable, WorkbenchError
from workbench.report import ReportBuilder
from workbench.sandbox import security
from workbench.sandbox.plan import make_plan
from workbench.sandbox.profile import Profile

SAMPLE_HZ = 4
STATS_EVERY_S = 0.5


@dataclass
class SessionOptions:
    profile: Profile
    command: list[str]
    backend: str = "native"
    trace: bool = True
    stream: bool = True
    """Every syscall to user space (False: exact in-kernel aggregates only)."""
    record: str | None = None
    stdin: str = "pipe"
    """`pipe` (write_stdin), `null`, `inherit` (our stdin, output still captured) or `terminal`
    (the command inherits fds 0-2 and owns the terminal)."""
    profile_name: str = ""
    dump_bpf: bool = False
    echo_output: bool = False
    """Also copy the command's output to our own stdout/stderr (headless runs)."""
    diagnose: bool = True
    keep_spare: bool = False
    """Ask the launcher to build the next sandbox of this profile ahead of time (relaunch loops)."""


def drop_spares() -> None:
    """Tear down the sandboxes the launcher built ahead for `keep_spare` sessions."""
    from workbench.sandbox.native import drop_spares as drop

    drop()


def _new_sandbox(opts: SessionOptions, plan, stdio):
    if opts.backend == "native":
        from workbench.sandbox.native import NativeSandbox

        return NativeSandbox(plan, stdio)
    if opts.backend == "bwrap":
        from workbench.sandbox.bwrap import BwrapSandbox

        return BwrapSandbox(plan, stdio)
    if opts.backend == "gvisor":
        from workbench.sandbox.gvisor import GvisorSandbox

        return GvisorSandbox(plan, stdio)
    raise WorkbenchError(f"unknown backend {opts.backend!r}", "use native, bwrap or gvisor")


def _take_back_terminal() -> None:
    """The command owned the terminal's foreground; give it back to our process group."""
    # A background process group may only take the terminal while SIGTTOU is blocked (the kernel
    # treats blocked like ignored), and blocking works from any thread, unlike signal handlers.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        os.tcsetpgrp(0, os.getpgrp())
    except OSError:
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Session:
    def __init__(self, options: SessionOptions, bus: Bus | None = None):
        self.options = options
        self.bus = bus or Bus()
        self.report_builder = ReportBuilder()
        self.bus.subscribe(self.report_builder)
        self.plan = make_plan(options.profile, options.command, options.stdin)
        self.plan.extra["spare"] = options.keep_spare
        self.sandbox = None
        self.tracer = None
        self.audit = None
        self.recorder = None
        self.diagnoser = None
        self.exited: ev.SandboxExited | None = None
        self._exited = threading.Event()  # set with self.exited, whichever way the run ended
        self.final_usage: dict = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._stdin_w: int | None = None
        self._closed = False
        self._close_lock = threading.Lock()

    # --- start --------------------------------------------------------------------------------

    def start(self) -> None:
        """Launch held at the gate, attach probes, release. Blocking; run it in a worker."""
        o = self.options
        self._start_recorder()
        self._start_diagnoser()  # before SessionStarted, like the recorder: it names the command
        self.bus.publish(ev.SessionStarted(ev.now_ns(), tuple(o.command), o.backend,
                                           o.profile_name or o.profile.name, o.profile.to_dict()))
        compile_thread = self._compile_probes_in_background() if o.trace else None
        if not o.trace:
            self.bus.publish(ev.ProbeStatus(ev.now_ns(), "syscalls", "off", "--no-trace was given"))
        stdio = self._make_stdio()
        self.sandbox = _new_sandbox(o, self.plan, stdio)
        if hasattr(self.sandbox, "attach_bus"):  # backends with their own event sources (gVisor's strace)
            self.sandbox.attach_bus(self.bus)
        try:
            self.sandbox.launch()
        except WorkbenchError as exc:
            self._close_child_ends(stdio)
            if compile_thread:
                compile_thread.join()
            self._launch_failed(exc)
            raise
        self._close_child_ends(stdio)
        sb = self.sandbox
        self.bus.publish(ev.SandboxReady(ev.now_ns(), sb.pid, sb.init_pid, sb.cgroup_v2_path, sb.cgroup_id,
                                         sb.namespaces, sb.launch_ms))
        if compile_thread:
            compile_thread.join()
            self._attach_probes()
        if self.tracer is None:
            self._start_audit_fallback()
        self._start_samplers()
        self.bus.publish(ev.SandboxReleased(ev.now_ns(), sb.pid))
        sb.release()
        self._spawn(self._waiter, "workbench-waiter")

    def _launch_failed(self, exc: WorkbenchError) -> None:
        code = getattr(exc, "exit_status", 125)
        exec_error = {127: "ENOENT", 126: "EACCES"}.get(code)
        self.bus.publish(ev.Notice("error", str(exc), "sandbox"))
        self.exited = ev.SandboxExited(ev.now_ns(), code, None, 0.0, exec_error)
        self._exited.set()
        self.bus.publish(self.exited)

    def _start_recorder(self) -> None:
        if not self.options.record:
            return
        from workbench.record import Recorder

        o = self.options
        self.recorder = Recorder(self.bus, o.record, {
            "command": list(o.command), "backend": o.backend, "profile_name": o.profile_name or o.profile.name,
            "profile": o.profile.to_dict()})

    def _start_diagnoser(self) -> None:
        if not self.options.diagnose:
            return
        try:
            from workbench.diagnose import LiveDiagnoser
        except ImportError:
            return
        self.diagnoser = LiveDiagnoser(self.bus, self.options.profile.to_dict())

    def _compile_probes_in_background(self) -> threading.Thread | None:
        def compile_probes() -> None:
            try:
                from workbench.tracing.tracer import Tracer
            except ImportError as exc:
                self.bus.publish(ev.ProbeStatus(ev.now_ns(), "syscalls", "off", f"tracing unavailable: {exc}"))
                return
            sc = self.options.profile.to_dict()["seccomp"]
            # Under gVisor the profile's filter is never loaded, and its ptrace platform makes every
            # app syscall look like one seccomp answered: no denials from the host's view there.
            tracer = Tracer(self.bus, stream=self.options.stream, rule_for=lambda name: security.rule_for(sc, name),
                            dump_bpf=self.options.dump_bpf, denials=self.options.backend != "gvisor")
            try:
                tracer.compile()
            except TracingUnavailable as exc:
                self.bus.publish(ev.Notice("warning", f"eBPF probes are off: {exc}", "probes"))
                return
            self.tracer = tracer

        return self._spawn(compile_probes, "workbench-bcc-compile")

    def _attach_probes(self) -> None:
        if self.tracer is None:
            return
        sb = self.sandbox
        try:
            self.tracer.attach(cgroup_id=sb.cgroup_id, root_pid=sb.pid, gate_pid=sb.pid)
            self.tracer.start()
        except TracingUnavailable as exc:
            self.bus.publish(ev.Notice("warning", f"eBPF probes are off: {exc}", "probes"))
            self.tracer.stop()
            self.tracer = None

    def _start_audit_fallback(self) -> None:
        """Without probes, seccomp denials still reach the kernel log (the filter's log flag)."""
        sc = self.options.profile.to_dict()["seccomp"]
        if sc["mode"] == "off" or not sc["log"]:
            return
        from workbench.tracing.audit import AuditReader

        # The command's pid is known now; its children are picked up from the cgroup as records
        # arrive (a short-lived child may be gone by then: the fallback can miss its denials).
        seen: set[int] = {self.sandbox.pid}

        def sandbox_pids() -> set[int]:
            seen.update(self.sandbox_pids())  # a process killed by seccomp may be gone already
            return seen

        reader = AuditReader(self.bus, sandbox_pids, lambda name: security.rule_for(sc, name))
        try:
            reader.start()
        except OSError as exc:
            self.bus.publish(ev.Notice("warning", f"seccomp denials are not shown: no probes, and the "
                                       f"kernel log cannot be read ({exc.strerror})", "probes"))
            return
        self.audit = reader
        self.bus.publish(ev.ProbeStatus(ev.now_ns(), "seccomp-audit", "attached",
                                        "seccomp denials from the kernel's audit records (rate-limited)"))

    # --- stdio --------------------------------------------------------------------------------

    def _make_stdio(self) -> tuple[int, int, int]:
        if self.options.stdin == "terminal":
            return (0, 1, 2)
        if self.options.stdin == "null":
            stdin_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        elif self.options.stdin == "inherit":
            stdin_r = os.dup(0)
        else:
            stdin_r, self._stdin_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        self._spawn(lambda: self._pump(out_r, "stdout"), "workbench-stdout")
        self._spawn(lambda: self._pump(err_r, "stderr"), "workbench-stderr")
        return (stdin_r, out_w, err_w)

    def _close_child_ends(self, stdio: tuple[int, int, int]) -> None:
        if self.options.stdin != "terminal":
            for fd in stdio:
                os.close(fd)

    def _pump(self, fd: int, stream: str) -> None:
        echo = {"stdout": 1, "stderr": 2}[stream] if self.options.echo_output else None
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    return
                if echo is not None:
                    try:
                        os.write(echo, data)
                    except OSError:
                        echo = None
                self.bus.publish(ev.Output(ev.now_ns(), stream, data))
        finally:
            os.close(fd)

    def write_stdin(self, data: bytes) -> None:
        if self._stdin_w is not None:
            try:
                os.write(self._stdin_w, data)
            except BrokenPipeError:
                self.close_stdin()

    def close_stdin(self) -> None:
        if self._stdin_w is not None:
            os.close(self._stdin_w)
            self._stdin_w = None

    # --- while it runs ------------------------------------------------------------------------

    def _spawn(self, target, name: str) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def _start_samplers(self) -> None:
        self._spawn(self._sample_resources, "workbench-cgroup-sampler")
        try:
            from workbench.tracing.namespaces import MembershipSampler
        except ImportError:
            return
        self.membership = MembershipSampler(self.bus, self.sandbox_pids)
        self._spawn(self._sample_membership, "workbench-membership-sampler")

    def sandbox_pids(self) -> list[int]:
        cg = getattr(self.sandbox, "cgroup", None)
        return cg.pids() if cg else []

    def _sample_membership(self) -> None:
        while not self._stop.wait(1 / SAMPLE_HZ):
            self.membership.sample()

    def _sample_resources(self) -> None:
        cg = self.sandbox.cgroup
        last_stats = 0.0
        while True:
            u = cg.usage()
            self.bus.publish(ev.ResourceSample(ev.now_ns(), u["memory_bytes"], u["memory_peak_bytes"],
                                               u["memory_limit_bytes"], u["cpu_seconds"], u["pids"],
                                               u["pids_limit"], u["io_read_bytes"], u["io_write_bytes"],
                                               u["oom_kills"], u["pids_peak"]))
            if self.tracer is not None and time.monotonic() - last_stats >= STATS_EVERY_S:
                last_stats = time.monotonic()
                self.bus.publish(self.tracer.stats())
            if self._stop.wait(1 / SAMPLE_HZ):
                return

    def _waiter(self) -> None:
        status = self.sandbox.wait()
        if self.options.stdin == "terminal":
            _take_back_terminal()
        # One last look at the cgroup before it is removed: peaks and OOM kills are final now.
        cg = self.sandbox.cgroup
        if cg is not None:
            u = cg.usage()
            self.final_usage = u
            self.bus.publish(ev.ResourceSample(ev.now_ns(), u["memory_bytes"], u["memory_peak_bytes"],
                                               u["memory_limit_bytes"], u["cpu_seconds"], u["pids"],
                                               u["pids_limit"], u["io_read_bytes"], u["io_write_bytes"],
                                               u["oom_kills"], u["pids_peak"]))
        self._stop.set()
        if self.tracer is not None:
            self.tracer.stop()  # drains the ring buffer and publishes the final SyscallStats
        if self.audit is not None:
            self.audit.stop()  # reads the records left
        exec_error = errno_mod.errorcode.get(status.exec_errno) if status.exec_errno else None
        self.exited = ev.SandboxExited(ev.now_ns(), status.exit_code, status.signal, self.sandbox.run_seconds,
                                       exec_error)
        self._exited.set()
        self.bus.publish(self.exited)

    # --- control ------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> ev.SandboxExited | None:
        if self.sandbox is None and self.exited is None:
            return None  # never started: nothing will end
        self._exited.wait(timeout)
        return self.exited

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.sandbox is not None:
            self.sandbox.kill(sig)

    def close(self) -> None:
        """Tear everything down; idempotent, safe on every path."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self.sandbox is not None:
            self.sandbox.kill()
            self.wait(timeout=5)
            self.final_usage = self.sandbox.close() or self.final_usage
        if self.tracer is not None:
            self.tracer.stop()
        if self.audit is not None:
            self.audit.stop()
        self.close_stdin()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2)
        if self.diagnoser is not None and hasattr(self.diagnoser, "finish"):
            self.diagnoser.finish()
        self.bus.publish(ev.SessionEnded(ev.now_ns()))
        if self.recorder is not None:
            self.recorder.close()

    def report(self) -> dict:
        return self.report_builder.build()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
