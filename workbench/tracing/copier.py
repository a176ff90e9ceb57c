"""The stream copier: a small process of its own that empties the stream ring buffer.

Why a process and not a thread: a thread of the workbench needs the GIL to copy, and the GIL is
held for tens to hundreds of milliseconds at a time by a full garbage collection of a large heap
(a TUI holding a million events, a long test session). The kernel's ring fills in ~150 ms under a
syscall-bound app, and then drops records. This process has a heap of a few objects, so it never
pauses: it copies records out of the kernel as they come and queues them (up to a bound, beyond
which they are counted lost) until the workbench reads them from a pipe.

    copier = Copier.spawn(map_fd, ring_size)   # starts reading at once
    for kind, count, data in copier.frames(): ...   # in the decoder thread, until DONE
    copier.finish()                             # after the probes are detached: drain, then DONE
    copier.close()

Frames on the pipe: a header (u32 kind, u32 records, u64 bytes) and the bytes. DATA carries raw
ring records (walk them with ringbuf.spans); LOST says how many records did not fit the queue;
DONE is the last frame.
"""

from __future__ import annotations

import collections
import ctypes
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Iterator

FRAME = struct.Struct("<IIQ")
DATA, LOST, DONE = 1, 2, 3
QUEUE_LIMIT = 256 << 20   # raw records waiting for the workbench; beyond it they are lost
_PIPE_SIZE = 1 << 20
_PR_SET_PDEATHSIG = 1
_SMALL = 256 << 10        # taken less than this: wait a little, so frames are large and few
_NAP_S = 0.002
_IDLE_S = 0.01            # the stream ring never wakes a reader (cheaper in the kernel): poll


class Copier:
    """The workbench's end: the process, the pipe it writes frames to, the pipe that stops it."""

    def __init__(self, proc: subprocess.Popen, frames_r: int, stop_w: int):
        self.proc = proc
        self.completed = False
        """DONE was read: everything it copied reached us. False after its death."""
        self._frames = os.fdopen(frames_r, "rb", buffering=_PIPE_SIZE)
        self._stop_w = stop_w

    @classmethod
    def spawn(cls, map_fd: int, ring_size: int, queue_limit: int = QUEUE_LIMIT,
              batch: tuple[int, int] = (0, 1)) -> Copier:
        """`batch`: (bytes, records) of a ring record that holds a batch of records, so that
        losses are counted in records (probes/wb_layout.h WB_BATCH)."""
        frames_r, frames_w = os.pipe()
        stop_r, stop_w = os.pipe()
        try:
            fcntl.fcntl(frames_w, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            pass  # a smaller pipe only means more, smaller writes
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        try:
            # -S: no site packages to import; the copier needs the standard library and this file.
            proc = subprocess.Popen(
                [sys.executable, "-S", "-m", "workbench.tracing.copier", str(os.getpid()),
                 str(map_fd), str(ring_size), str(frames_w), str(stop_r), str(queue_limit),
                 str(batch[0]), str(batch[1])],
                pass_fds=(map_fd, frames_w, stop_r), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env, start_new_session=True)
        except BaseException:
            for fd in (frames_r, stop_w):
                os.close(fd)
            raise
        finally:
            os.close(frames_w)
            os.close(stop_r)
        return cls(proc, frames_r, stop_w)

    def frames(self) -> Iterator[tuple[int, int, bytes]]:
        """(kind, records, bytes) as they come, blocking without the GIL; ends after DONE or at
        the copier's death."""
        read = self._frames.read
        while True:
            head = read(FRAME.size)
            if len(head) < FRAME.size:
                return
            kind, count, size = FRAME.unpack(head)
            data = read(size) if size else b""
            if len(data) < size:
                return  # died mid-frame
            if kind == DONE:
                self.completed = True
                return
            yield kind, count, data

    def finish(self) -> None:
        """The probes are detached: drain what is left, send it, then DONE."""
        if self._stop_w >= 0:
            try:
                os.write(self._stop_w, b"f")
            except OSError:
                pass  # it is gone already; frames() ends at EOF

    def close(self) -> None:
        if self._stop_w >= 0:
            os.close(self._stop_w)
            self._stop_w = -1
        self._frames.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the copier process ---------------------------------------------------------------------------

def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)  # the workbench died before the line above


def _copy(map_fd: int, ring_size: int, out: int, stop: int, queue_limit: int, batch_size: int,
          batch_count: int) -> None:
    from workbench.tracing.ringbuf import RingReader

    reader = RingReader(map_fd, ring_size)
    queue: collections.deque[memoryview] = collections.deque()
    queued = lost = 0
    finishing = False
    os.set_blocking(out, False)
    poller = select.poll()
    poller.register(stop, select.POLLIN)

    def take_all() -> int:
        nonlocal queued, lost
        taken = 0
        while True:
            data, n = reader.take(ring_size // 4, batch_size, batch_count)
            if not n:
                return taken
            taken += len(data)
            if queued + FRAME.size + len(data) > queue_limit:
                lost += n
                continue
            queue.append(memoryview(FRAME.pack(DATA, n, len(data)) + data))
            queued += FRAME.size + len(data)

    def write_some() -> None:
        nonlocal queued
        while queue:
            try:
                n = os.write(out, queue[0])
            except BlockingIOError:
                return
            queued -= n
            if n < len(queue[0]):
                queue[0] = queue[0][n:]
                return
            queue.popleft()

    reported = 0
    while True:
        taken = take_all()
        if lost > reported:  # told as it happens, behind the records queued before it
            queue.append(memoryview(FRAME.pack(LOST, lost - reported, 0)))
            queued += FRAME.size
            reported = lost
        write_some()
        if finishing:
            break
        if taken < _SMALL:
            if queue:
                poller.register(out, select.POLLOUT)
            events = poller.poll((_NAP_S if taken else _IDLE_S) * 1000)
            if queue:
                poller.unregister(out)
            if any(fd == stop for fd, _ev in events):
                finishing = True  # one more take: what the probes wrote before they were detached
    os.set_blocking(out, True)
    if lost > reported:
        queue.append(memoryview(FRAME.pack(LOST, lost - reported, 0)))
    queue.append(memoryview(FRAME.pack(DONE, 0, 0)))
    for chunk in queue:
        while chunk:
            chunk = chunk[os.write(out, chunk):]
    reader.close()


def main(argv: list[str]) -> int:
    parent, map_fd, ring_size, out, stop, queue_limit, batch_size, batch_count = (int(a) for a in argv)
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the workbench's to handle
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -5)  # it must run soon when records wait, it runs little
    except OSError:
        pass
    try:
        _copy(map_fd, ring_size, out, stop, queue_limit, batch_size, batch_count)
    except BrokenPipeError:
        pass  # the workbench closed its end: nobody wants the rest
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
