"""Reading a BPF ring buffer map straight from its memory mapping.

bcc's own reader calls a ctypes callback per record (about a microsecond each) and can only be
polled as a whole; reading the mapping ourselves lets the tracer take a run of records per call,
drain the two ring buffers separately and count what it could not decode.

Layout (kernel/bpf/ringbuf.c, stable ABI): page 0 holds the consumer position (ours to write);
from page 1 the producer position, then the data area mapped twice so a record that wraps is
contiguous. Each record starts with an 8-byte header: u32 length with BUSY (bit 31, not committed
yet) and DISCARD (bit 30) flags, u32 page offset; records are 8-byte aligned.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Callable

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HDR = struct.Struct("<I")


class RingReader:
    """Consumer side of one BPF_MAP_TYPE_RINGBUF. Not thread-safe: one thread reads."""

    def __init__(self, map_fd: int, size: int):
        page = os.sysconf("SC_PAGE_SIZE")
        self.fd = map_fd
        self.size = size
        self._mask = size - 1
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._data_off = page
        self._view = memoryview(self._prod)
        # Positions and headers are shared with the kernel while it writes: read and write them
        # as whole aligned words (memoryview item access is one load or store), never through
        # struct's byte copies — a torn consumer position makes the kernel refuse records.
        self._cons_pos = memoryview(self._cons).cast("Q")
        self._prod_pos = self._view.cast("Q")
        self._words = self._view.cast("I")

    def pending_bytes(self) -> int:
        return self._prod_pos[0] - self._cons_pos[0]

    def skip_all(self) -> None:
        """Forget what is queued (left over from a previous session of a reused object)."""
        self._cons_pos[0] = self._prod_pos[0]

    def drain(self, handle: Callable[[memoryview, int, int], None], max_bytes: int | None = None) -> int:
        """Call `handle(view, offset, length)` for each committed record; returns records read.

        The view is only valid during the call: the space is handed back to the kernel after.
        """
        prod_pos = self._prod_pos[0]
        cons_pos = start = self._cons_pos[0]
        limit = cons_pos + (max_bytes if max_bytes is not None else self.size)
        view, words, mask, base, n = self._view, self._words, self._mask, self._data_off, 0
        while cons_pos < prod_pos and cons_pos < limit:
            off = base + (cons_pos & mask)
            length = words[off >> 2]
            if length & _BUSY:
                break  # reserved, not yet submitted: records after it wait for it
            size = length & ~(_BUSY | _DISCARD)
            if not length & _DISCARD:
                handle(view, off + 8, size)
                n += 1
            cons_pos += (size + 8 + 7) & ~7
        if cons_pos != start:
            self._cons_pos[0] = cons_pos
        return n

    def take(self, max_bytes: int, batch_size: int = 0, batch_count: int = 1) -> tuple[bytes, int]:
        """Copy out the committed records (up to about max_bytes) and hand their space back at
        once; returns (raw bytes with their headers, record count). Walk them with `spans()`.
        A record of exactly `batch_size` bytes holds `batch_count` records and counts as many.

        For a fast producer and a slow consumer: the kernel's buffer is freed at memcpy speed,
        the records are decoded later from our own memory.
        """
        prod_pos = self._prod_pos[0]
        cons_pos = start = self._cons_pos[0]
        limit = cons_pos + min(max_bytes, self.size)
        view, words, mask, base, n = self._view, self._words, self._mask, self._data_off, 0
        while cons_pos < prod_pos and cons_pos < limit:
            length = words[(base + (cons_pos & mask)) >> 2]
            if length & _BUSY:
                break
            size = length & ~(_BUSY | _DISCARD)
            cons_pos += (size + 8 + 7) & ~7
            n += batch_count if size == batch_size else 1
        if cons_pos == start:
            return b"", 0
        off = base + (start & mask)
        data = bytes(view[off: off + (cons_pos - start)])  # contiguous: the data area is mapped twice
        self._cons_pos[0] = cons_pos
        return data, n

    def close(self) -> None:
        for view in (self._words, self._prod_pos, self._cons_pos, self._view):
            view.release()
        self._prod.close()
        self._cons.close()


def spans(data: bytes | memoryview) -> list[tuple[int, int]]:
    """(offset, size) of each record copied out by `RingReader.take`, discarded ones skipped."""
    view = memoryview(data)
    out, off, end = [], 0, len(view)
    append, unpack_hdr = out.append, _HDR.unpack_from
    while off < end:
        length = unpack_hdr(view, off)[0]
        size = length & ~(_BUSY | _DISCARD)
        if not length & _DISCARD:
            append((off + 8, size))
        off += (size + 8 + 7) & ~7
    return out

