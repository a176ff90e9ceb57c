"""Decoding probe records (probes/wb_layout.h) into typed events.

Layouts are never restated here: the loader hands over bcc's ctypes twin of each C struct, and the
hot syscall record gets a `struct.Struct` derived from that twin's field offsets.
"""

from __future__ import annotations

import ctypes as ct
import struct
from typing import Any, Callable

from workbench.core.events import (
    Event, FatalSignal, OomKill, ProcessExec, ProcessExited, ProcessForked, SeccompDenial, Syscall,
)
from workbench.core import syscalls
from workbench.tracing import decode, names

# Record kinds and actions: WB_REC_* and WB_DENY_* in probes/wb_layout.h.
REC_NEWTASK, REC_EXEC_ARGV, REC_EXEC, REC_EXIT, REC_SIGNAL, REC_DENIAL, REC_OOM = range(1, 8)
ACTIONS = {1: "errno", 2: "trap", 3: "kill"}
CLONE_THREAD = 0x00010000
_ARGV_KEPT = 4096        # exec argv remembered for decoding, oldest dropped first
_CODES = {ct.c_uint8: "B", ct.c_int8: "b", ct.c_uint16: "H", ct.c_int16: "h", ct.c_uint32: "I",
          ct.c_int32: "i", ct.c_uint64: "Q", ct.c_int64: "q", ct.c_ulong: "Q", ct.c_long: "q",
          ct.c_ulonglong: "Q", ct.c_longlong: "q", ct.c_uint: "I", ct.c_int: "i", ct.c_ushort: "H",
          ct.c_short: "h", ct.c_ubyte: "B", ct.c_byte: "b"}


def struct_of(leaf: type) -> tuple[struct.Struct, list[str]]:
    """A flat struct.Struct for a ctypes structure of scalars and scalar arrays, and the names of
    its values in order (arrays expand to name[0], name[1], ...)."""
    fmt, names_out, pos = "<", [], 0
    for field_name, ctype in leaf._fields_:
        if field_name.startswith("__pad"):
            continue
        desc = getattr(leaf, field_name)
        if desc.offset > pos:
            fmt += f"{desc.offset - pos}x"
        count, base = 1, ctype
        if issubclass(ctype, ct.Array):
            count, base = ctype._length_, ctype._type_
        code = _CODES.get(base)
        if code is None:
            raise TypeError(f"{leaf.__name__}.{field_name}: {base} is not a scalar")
        fmt += f"{count}{code}"
        names_out += [field_name] if count == 1 else [f"{field_name}[{i}]" for i in range(count)]
        pos = desc.offset + desc.size
    return struct.Struct(fmt), names_out


def _text(buf: Any) -> str:
    return bytes(buf).split(b"\0", 1)[0].decode(errors="replace")


def _field_bytes(rec: Any, layout: type, name: str) -> bytes:
    """A char array field in full: ctypes' own view stops at the first NUL."""
    desc = getattr(layout, name)
    return bytes(memoryview(rec).cast("B")[desc.offset: desc.offset + desc.size])


def _blobs(rec: Any, path_len: int) -> tuple[bytes, bytes]:
    raw = _field_bytes(rec, type(rec), "b")
    return raw[: rec.blob_len[0]], raw[path_len: path_len + rec.blob_len[1]]


class Decoder:
    """State shared by the record handlers of one tracing session: comms, exec argv, known pids."""

    def __init__(self, layouts: dict[str, type], path_len: int, arg_len: int,
                 rule_for: Callable[[str], str] | None, comm_of: Callable[[int], str]):
        self.layouts = layouts
        self.path_len = path_len
        self.arg_len = arg_len
        self.rule_for = rule_for
        self.comm_of = comm_of
        self.comms: dict[int, str] = {}
        self.argv: dict[int, tuple[str, tuple[str, ...]]] = {}
        self.known_pids: set[int] = set()
        self.sys_struct, _ = struct_of(layouts["sys"])
        self.sys_size = ct.sizeof(layouts["sys"])
        # Per syscall number: (name, _EXEC | _REGISTERS | 0).
        self.facts = [(n, _EXEC if n in ("execve", "execveat") else
                       _REGISTERS if n in decode.REGISTER_ONLY else 0)
                      for n in (names.name_of(nr) for nr in range(512))]
        self.errno_names = {n: names.errno_name(-n) for n in range(1, 4096)}
        self.errors = 0
        self.denials = True
        """False where exits without entries are not seccomp's doing (gVisor's ptrace platform
        stops every app syscall on the host): no SeccompDenial, and no syscall marked denied."""
        self.refresh: Callable[[], object] | None = None
        """Drains the control ring again: set by the tracer."""

    def comm(self, tid: int) -> str:
        c = self.comms.get(tid)
        if c is None:
            c = self.comms[tid] = self.comm_of(tid)
        return c

    # --- control records ------------------------------------------------------------------------

    def control(self, view: memoryview, off: int, size: int) -> Event | None:
        kind = int.from_bytes(view[off: off + 4], "little")
        handler = _HANDLERS.get(kind)
        if handler is None:
            self.errors += 1
            return None
        layout = self.layouts[handler[0]]
        if size < ct.sizeof(layout):
            self.errors += 1
            return None
        rec = layout.from_buffer_copy(view[off: off + ct.sizeof(layout)])
        h = rec.h
        comm = _text(h.comm)
        self.comms[h.tid] = comm
        return handler[1](self, rec, h, comm)

    def _newtask(self, rec: Any, h: Any, comm: str) -> Event | None:
        self.comms[rec.child] = comm
        if rec.clone_flags & CLONE_THREAD:
            return None  # a thread, not a process
        self.known_pids.add(rec.child)
        return ProcessForked(ts_ns=h.ts, pid=rec.child, ppid=h.pid, comm=comm)

    def _exec_argv(self, rec: Any, h: Any, comm: str) -> Event | None:
        raw = _field_bytes(rec, type(rec), "argv")
        n = self.arg_len
        argv = tuple(_text(raw[i * n:(i + 1) * n]) for i in range(min(rec.argc, len(raw) // n)))
        if rec.truncated:
            argv += ("...",)
        # Kept after exit too: the stream's execve record may be decoded after the exit record.
        if len(self.argv) >= _ARGV_KEPT:
            del self.argv[next(iter(self.argv))]
        self.argv[h.tid] = (_text(rec.filename), argv)
        return None

    def _exec(self, rec: Any, h: Any, comm: str) -> Event | None:
        self.known_pids.add(h.pid)
        # Kept (not popped): the stream's execve record, read after this one, decodes from it too.
        _path, argv = self.argv.get(rec.old_pid) or self.argv.get(h.tid, ("", ()))
        return ProcessExec(ts_ns=h.ts, pid=h.pid, filename=_text(rec.filename), argv=argv, comm=comm)

    def _exit(self, rec: Any, h: Any, comm: str) -> Event | None:
        sig = rec.signal or None
        code = None if sig or rec.exit_code < 0 else rec.exit_code
        return ProcessExited(ts_ns=h.ts, pid=h.pid, exit_code=code, signal=sig, comm=comm)

    def _signal(self, rec: Any, h: Any, comm: str) -> Event | None:
        return FatalSignal(ts_ns=h.ts, pid=h.pid, signal=rec.sig, code=rec.code, comm=comm)

    def _denial(self, rec: Any, h: Any, comm: str) -> Event | None:
        if not self.denials:
            return None
        abi = syscalls.abi_of(rec.arch, rec.nr)
        name = syscalls.name_in_abi(abi, rec.nr)
        raw_args = tuple(int(a) for a in rec.args)
        action = ACTIONS.get(rec.action, "errno")
        errno = names.errno_name(rec.ret) if action == "errno" else None
        if abi != "x86_64":  # the filter kills other ABIs whatever the profile lists
            args, rule = {}, f"seccomp: every call through the {abi} ABI is killed (the filter is for x86-64)"
        else:
            args, rule = decode.decode_args(name, raw_args, _blobs(rec, self.path_len)), self._rule(name)
        return SeccompDenial(ts_ns=h.ts, pid=h.pid, tid=h.tid, comm=comm, syscall=name,
                             nr=rec.nr & ~syscalls.X32_SYSCALL_BIT, action=action, errno=errno, args=args,
                             raw_args=raw_args, rule=rule, source="bpf", abi=abi)

    def _rule(self, name: str) -> str:
        if self.rule_for is None:
            return ""
        try:
            return self.rule_for(name) or ""
        except Exception:  # the lead's callable must not stop the tracer
            return ""

    def _oom(self, rec: Any, h: Any, comm: str) -> Event | None:
        if rec.from_sandbox:
            self.known_pids.add(rec.victim)
        return OomKill(ts_ns=h.ts, pid=rec.victim, comm=_text(rec.victim_comm), pages=rec.total_vm)

    # --- the syscall stream ---------------------------------------------------------------------

    def syscall(self, view: memoryview, off: int, size: int) -> Syscall:
        """One stream record (without its ring-buffer header) as a Syscall."""
        return self.syscalls(view, ((off, size),))[0]

    def syscalls(self, view: memoryview, spans: Any) -> list[Syscall]:
        """Stream records at (offset, size) spans of `view`, as Syscalls, in order.

        The hot path (up to a million records a second): one loop, locals only, positional
        construction, and per-number facts (name, needs decoding) looked up in one list.
        """
        out: list[Syscall] = []
        append, unpack = out.append, self.sys_struct.unpack_from
        facts, comms, errno_names = self.facts, self.comms, self.errno_names
        sys_size, path_len, nfacts = self.sys_size, self.path_len, len(facts)
        denied_mask = 1 if self.denials else 0
        for off, size in spans:
            (ts, dur, a0, a1, a2, a3, a4, a5, ret, pid, tid, nr, flags, bl0, bl1,
             _pad) = unpack(view, off)
            name, special = facts[nr] if nr < nfacts else (names.name_of(nr), 0)
            args = (a0, a1, a2, a3, a4, a5)
            if special == _EXEC:  # read at entry: at exit the registers are the new image's
                decoded = self._special(name, special, tid, args)
            elif size > sys_size:
                start = off + sys_size
                decoded = decode.decode_args(name, args, (
                    bytes(view[start: start + bl0]),
                    bytes(view[start + path_len: start + path_len + bl1])))
            elif special:
                decoded = self._special(name, special, tid, args)
            else:
                decoded = {}
            comm = comms.get(tid)
            if comm is None:
                comm = self.comm(tid)
            append(Syscall(ts, pid, tid, comm, nr, name, args, ret,
                           errno_names.get(-ret) if -4096 < ret < 0 else None, dur, decoded, flags & denied_mask == 1))
        return out

    def _special(self, name: str, special: int, tid: int, args: tuple[int, ...]) -> dict[str, Any]:
        if special == _EXEC:
            if tid not in self.argv and self.refresh is not None:
                self.refresh()  # its argv record (written at entry) may have landed just now
            path, argv = self.argv.get(tid, ("", ()))
            return {"pathname": path, "argv": list(argv)}
        return decode.decode_args(name, args)


_EXEC, _REGISTERS = 1, 2
_HANDLERS: dict[int, tuple[str, Callable[..., Event | None]]] = {
    REC_NEWTASK: ("newtask", Decoder._newtask),
    REC_EXEC_ARGV: ("exec_argv", Decoder._exec_argv),
    REC_EXEC: ("exec", Decoder._exec),
    REC_EXIT: ("exit", Decoder._exit),
    REC_SIGNAL: ("signal", Decoder._signal),
    REC_DENIAL: ("denial", Decoder._denial),
    REC_OOM: ("oom", Decoder._oom),
}
