"""Seccomp denials from the kernel log: the fallback that needs no eBPF.

A filter installed with the log flag (libseccomp's CTL_LOG, our profiles' `seccomp.log`) makes the
kernel write each denial as an audit record to the kernel log:

    audit: type=1326 audit(1733.123:45): auid=... uid=0 gid=0 ses=... pid=7 comm="mkdir"
           exe="/usr/bin/mkdir" sig=0 arch=c000003e syscall=83 compat=0 ip=0x... code=0x50000

The reader opens /dev/kmsg, seeks to its end (old records are not ours), and turns the records of
the pids we are told about into SeccompDenial(source="audit"). The kernel rate-limits these
records, so counts from here may be short; the bpf source is exact.
"""

from __future__ import annotations

import errno as _errno
import os
import re
import select
import threading
from typing import Callable, Iterable

from workbench.core.bus import Bus
from workbench.core.events import SeccompDenial, now_ns
from workbench.tracing import names

_RECORD = re.compile(r"type=1326\b.*?\bpid=(\d+)\b.*?\bcomm=(\"[^\"]*\"|\S+).*?\bsig=(\d+)\b.*?"
                     r"\bsyscall=(\d+)\b.*?\bcode=(0x[0-9a-fA-F]+)")
# SECCOMP_RET_* action bits (uapi/linux/seccomp.h): what the filter answered.
_ACTIONS = {0x80000000: "kill", 0x00000000: "kill", 0x00030000: "trap", 0x00050000: "errno",
            0x7ff00000: "trace", 0x7ffc0000: "log", 0x7fc00000: "notify"}
_ACTION_MASK = 0xFFFF0000


def parse(line: str, ts_ns: int | None = None) -> SeccompDenial | None:
    """A SeccompDenial from one kernel log line, or None when it is not a seccomp record."""
    m = _RECORD.search(line)
    if not m:
        return None
    pid, comm, nr, code = int(m[1]), m[2].strip('"'), int(m[4]), int(m[5], 16)
    action = _ACTIONS.get(code & _ACTION_MASK, hex(code & _ACTION_MASK))
    err = None
    if action == "errno" and code & 0xFFFF:  # the kernel logs the action bits, the errno rarely
        err = _errno.errorcode.get(code & 0xFFFF, f"E{code & 0xFFFF}")
    return SeccompDenial(ts_ns=ts_ns if ts_ns is not None else now_ns(), pid=pid, tid=pid, comm=comm,
                         syscall=names.name_of(nr), nr=nr, action=action, errno=err, source="audit")


def _kmsg_ts_ns(prefix: str) -> int | None:
    """/dev/kmsg's "prio,seq,usec,flags" prefix: usec is CLOCK_MONOTONIC, our event clock."""
    parts = prefix.split(",")
    try:
        return int(parts[2]) * 1000
    except (IndexError, ValueError):
        return None


class AuditReader:
    """Publishes SeccompDenial(source="audit") for the pids `pids_fn()` names, from /dev/kmsg.

    Needs read access to /dev/kmsg (root, or kernel.dmesg_restrict=0). `start()` raises OSError
    when it cannot be opened: the caller says that the view is off and why.
    """

    def __init__(self, bus: Bus, pids_fn: Callable[[], Iterable[int]],
                 rule_for: Callable[[str], str] | None = None, path: str = "/dev/kmsg"):
        self.bus = bus
        self.pids_fn = pids_fn
        self.rule_for = rule_for
        self.path = path
        self.count = 0
        self._fd = -1
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Open and seek to the end: from now on. Separate from start() so a caller can open
        before the sandbox runs and start reading later without missing records."""
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self._fd, 0, os.SEEK_END)

    def start(self) -> None:
        if self._fd < 0:
            self.open()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="workbench-audit-reader", daemon=True)
        self._thread.start()

    def poll(self) -> int:
        """Read every record available now; returns how many denials were published."""
        published = 0
        while True:
            try:
                raw = os.read(self._fd, 8192)
            except BlockingIOError:
                return published
            except OSError as exc:
                if exc.errno == _errno.EPIPE:  # overwritten before we read it: skip ahead
                    continue
                raise
            if not raw:
                return published
            published += self._handle(raw.decode(errors="replace"))

    def _handle(self, record: str) -> int:
        prefix, _, message = record.partition(";")
        denial = parse(message, _kmsg_ts_ns(prefix))
        if denial is None or denial.pid not in set(self.pids_fn()):
            return 0
        if self.rule_for is not None:
            from dataclasses import replace

            try:
                denial = replace(denial, rule=self.rule_for(denial.syscall) or "")
            except Exception:
                pass
        self.count += 1
        self.bus.publish(denial)
        return 1

    def stop(self) -> None:
        """Read what is left, stop the thread, close. Idempotent."""
        if self._stop_w >= 0:
            os.write(self._stop_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            self._thread = None
        if self._fd >= 0:
            self.poll()
            os.close(self._fd)
            self._fd = -1
        for fd in (self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._stop_r = self._stop_w = -1

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [])
            if self._fd in ready:
                self.poll()
            if self._stop_r in ready:
                return
