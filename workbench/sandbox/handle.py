"""What every backend's sandbox handle shares: the fields the session reads, the cgroup the
probes filter on, and the exit status. Each backend (native, bwrap, gvisor) subclasses it."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from workbench.sandbox import cgroups
from workbench.sandbox.plan import Plan


@dataclass
class ExitStatus:
    exit_code: int | None
    signal: int | None
    exec_errno: int | None = None

    @property
    def shell_status(self) -> int:
        """The status a shell would report: the code, or 128+N for a signal."""
        return self.exit_code if self.signal is None else 128 + self.signal


class SandboxHandle:
    """One sandbox: `launch()` builds it held at a start gate, `release()` lets the command run,
    `wait()`, `kill()`, `close()` (idempotent; removes the cgroups and returns the final usage)."""

    backend = ""

    def __init__(self, plan: Plan, stdio: tuple[int, int, int]):
        self.plan = plan
        self.cgroup: cgroups.SandboxCgroup | None = None
        self.status: ExitStatus | None = None
        self.pid = self.init_pid = 0
        """Host pids: the process that execs the command, and the sandbox's pid 1."""
        self.namespaces: dict = {}
        self.launch_ms = 0.0
        self._stdio = stdio
        self._released_at: float | None = None
        self.exited_at: float | None = None

    @property
    def cgroup_id(self) -> int | None:
        """What bpf_get_current_cgroup_id() returns for the command: the probes' filter."""
        return self.cgroup.app_id if self.cgroup else None

    @property
    def cgroup_v2_path(self) -> str | None:
        return self.cgroup.app_dir if self.cgroup else None

    def _wait_holder(self, holder, timeout: float | None) -> int | None:
        """For backends that run a tool (bwrap, runsc) held by a process of ours: its exit code,
        or None while it runs. Notes when the command ended."""
        if holder is None:
            return None
        try:
            code = holder.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exited_at = time.monotonic()
        return code

    def _end_holder(self, holder) -> None:
        """close() of a backend whose tool (bwrap, runsc) is held by a process of ours: if the
        command has not ended, stop holding, kill it, give it 5 s, then kill the tool itself."""
        if holder is None or self.status is not None:
            return
        holder.abandon()
        if holder.proc.poll() is not None:
            self.wait(timeout=0)  # ended already: only its status to collect
            return
        self.kill()
        if self.wait(timeout=5) is None:
            holder.proc.kill()
            holder.proc.wait()

    @property
    def run_seconds(self) -> float:
        """Release to exit (or to now, while it runs)."""
        if self._released_at is None:
            return 0.0
        return (self.exited_at or time.monotonic()) - self._released_at
