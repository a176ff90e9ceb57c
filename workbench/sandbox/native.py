"""The native backend's client side: talks to the launcher process (zygote.py) and hands out
`NativeSandbox` handles. Safe to use from any thread; one launcher serves the whole process."""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

from workbench.core.errors import CommandNotExecutable, CommandNotFound, SandboxError
from workbench.sandbox import cgroups
from workbench.sandbox.handle import ExitStatus, SandboxHandle  # noqa: F401 - ExitStatus is part of this API
from workbench.sandbox.plan import Plan


class _Launcher:
    """The process-wide connection to the launcher; replies are routed to waiting handles."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.sandbox.zygote", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=None if env.get("WORKBENCH_DEBUG") else subprocess.DEVNULL, env=env,
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.inboxes: dict[int, queue.Queue] = {}
        self.reader = threading.Thread(target=self._read, name="workbench-launcher-reader", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                for box in list(self.inboxes.values()):
                    box.put({"op": "gone"})
                return
            msg = json.loads(data)
            box = self.inboxes.get(msg.get("id"))
            if box is not None:
                box.put(msg)

    def alive(self) -> bool:
        return self.proc.poll() is None and self.reader.is_alive()

    def ping(self, timeout: float = 30) -> None:
        """Return once the launcher has done everything asked before (spares built too)."""
        self._round_trip("ping", timeout)

    def drop_spares(self, timeout: float = 30) -> None:
        """Tear down the sandboxes built ahead and build no more (until a launch asks again)."""
        self._round_trip("drop_spares", timeout)

    def _round_trip(self, op: str, timeout: float) -> None:
        pid = next(self.ids)
        box: queue.Queue = queue.Queue()
        self.inboxes[pid] = box
        try:
            self.request({"op": op, "id": pid})
            box.get(timeout=timeout)
        finally:
            self.inboxes.pop(pid, None)

    def request(self, msg: dict, fds: list[int] | None = None) -> None:
        data = json.dumps(msg).encode()
        with self.lock:
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.send(data)


_launcher: _Launcher | None = None
_launcher_lock = threading.Lock()


def launcher() -> _Launcher:
    global _launcher
    with _launcher_lock:
        if _launcher is None or not _launcher.alive():
            _launcher = _Launcher()
        return _launcher


def drop_spares() -> None:
    """Drop the launcher's spares, if a launcher runs (none is started for this)."""
    with _launcher_lock:
        current = _launcher if _launcher is not None and _launcher.alive() else None
    if current is not None:
        current.drop_spares()


class NativeSandbox(SandboxHandle):
    """One sandbox, held at its start gate after `launch`."""

    backend = "native"

    def __init__(self, plan: Plan, stdio: tuple[int, int, int]):
        super().__init__(plan, stdio)
        self.veth: dict | None = None
        self._closed = False

    def launch(self) -> None:
        """Build the sandbox and hold it at the gate. Raises SandboxError / CommandNotFound..."""
        t0 = time.monotonic()
        self._conn = launcher()
        self.id = next(self._conn.ids)
        self._inbox: queue.Queue = queue.Queue()
        self._conn.inboxes[self.id] = self._inbox
        wire = self.plan.to_wire()
        wire["owner"] = os.getpid()
        try:
            self._conn.request({"op": "launch", "id": self.id, "plan": wire}, list(self._stdio))
            reply = self._inbox.get(timeout=60)
        except (OSError, queue.Empty) as exc:
            self.close()
            raise SandboxError(f"the sandbox launcher did not answer ({exc})",
                               "run `workbench doctor` and retry") from None
        if reply["op"] != "ready":
            self.close()
            if reply["op"] == "gone":
                raise SandboxError("the sandbox launcher died", "run with WORKBENCH_DEBUG=1 to see why")
            code, text = reply.get("code", 125), reply.get("message", "unknown error")
            raise {127: CommandNotFound, 126: CommandNotExecutable}.get(code, SandboxError)(text)
        self.cgroup = cgroups.SandboxCgroup.from_dict(reply["cgroup"])
        self.pid, self.init_pid = reply["pid"], reply["init_pid"]
        self.from_spare = reply.get("spare", False)
        self.namespaces = reply["namespaces"]
        self.phases_ms = reply.get("phases_ms", {})
        self.launch_ms = (time.monotonic() - t0) * 1000

    def release(self) -> None:
        self._released_at = time.monotonic()
        self._conn.request({"op": "release", "id": self.id})

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        if self.status is not None:
            return self.status
        try:
            msg = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        self.exited_at = time.monotonic()
        if msg["op"] == "gone":
            self.status = ExitStatus(None, signal.SIGKILL)
        else:
            raw = msg["status"]
            if os.WIFSIGNALED(raw):
                self.status = ExitStatus(None, os.WTERMSIG(raw), msg.get("exec_errno"))
            else:
                self.status = ExitStatus(os.WEXITSTATUS(raw), None, msg.get("exec_errno"))
        return self.status

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.status is None and not self._closed:
            self._conn.request({"op": "kill", "id": self.id, "signal": int(sig)})

    def close(self) -> dict:
        """End the sandbox if still running and remove its cgroups. Returns the final usage."""
        usage: dict = {}
        if self._closed:
            return usage
        if self.status is None and getattr(self, "pid", 0):
            self.kill()
            self.wait(timeout=5)
        self._closed = True
        if getattr(self, "id", None) is not None and hasattr(self, "_conn"):
            self._conn.inboxes.pop(self.id, None)
        if self.cgroup is not None:
            usage = self.cgroup.usage()
            self.cgroup.remove()
        return usage
