"""Pure decoders: flags, signals, socket addresses, the struct derived from a ctypes layout."""

from __future__ import annotations

import ctypes as ct
import os
import socket
import struct

from workbench.tracing import decode, names, records


def test_open_flags_in_words():
    assert decode.open_flags(os.O_WRONLY | os.O_CREAT | os.O_TRUNC) == "O_WRONLY|O_CREAT|O_TRUNC"
    assert decode.open_flags(os.O_RDONLY | os.O_CLOEXEC) == "O_RDONLY|O_CLOEXEC"


def test_clone_flags_and_exit_signal():
    flags = 0x00010000 | 0x00000100 | 0x00000800 | 17  # CLONE_THREAD|CLONE_VM|CLONE_SIGHAND|SIGCHLD
    assert decode.clone_flags(flags) == "CLONE_VM|CLONE_SIGHAND|CLONE_THREAD|SIGCHLD"
    assert decode.clone_flags(0x10000000 | 0x80000) == "CLONE_SETTLS|CLONE_NEWUSER"


def test_socket_addresses():
    v4 = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 8053) + socket.inet_aton("10.0.0.7") + bytes(8)
    assert decode.sockaddr(v4) == {"family": "AF_INET", "addr": "10.0.0.7:8053"}
    v6 = (struct.pack("=H", socket.AF_INET6) + struct.pack("!H", 443) + bytes(4)
          + socket.inet_pton(socket.AF_INET6, "::1") + bytes(4))
    assert decode.sockaddr(v6) == {"family": "AF_INET6", "addr": "[::1]:443"}
    unix = struct.pack("=H", socket.AF_UNIX) + b"/run/x.sock\0junk"
    assert decode.sockaddr(unix) == {"family": "AF_UNIX", "addr": "/run/x.sock"}
    abstract = struct.pack("=H", socket.AF_UNIX) + b"\0bus\0"
    assert decode.sockaddr(abstract)["addr"] == "@bus"


def test_decode_args_by_syscall_name():
    assert decode.decode_args("kill", (7, 9, 0, 0, 0, 0)) == {"sig": "SIGKILL"}
    assert decode.decode_args("renameat2", (0, 0, 0, 0, 0, 0), (b"/a\0", b"/b\0")) == {
        "oldpath": "/a", "newpath": "/b"}
    assert decode.decode_args("getppid", (0,) * 6) == {}


def test_names_come_from_libseccomp():
    assert names.name_of(names.number_of("mkdir")) == "mkdir"
    assert names.name_of(100000) == "syscall_100000"
    assert names.errno_name(-13) == "EACCES" and names.errno_name(5) is None
    assert names.errno_name(-512) == "ERESTARTSYS"  # seen by a tracer when a signal interrupts


def test_struct_of_follows_ctypes_offsets():
    class Rec(ct.Structure):
        _fields_ = [("a", ct.c_uint32), ("b", ct.c_uint64), ("c", ct.c_uint16 * 3), ("d", ct.c_int8)]

    s, fields = records.struct_of(Rec)
    assert s.size == Rec.d.offset + 1
    assert fields == ["a", "b", "c[0]", "c[1]", "c[2]", "d"]
    rec = Rec(7, 2**40 + 3, (1, 2, 3), -5)
    assert s.unpack_from(bytes(rec)) == (7, 2**40 + 3, 1, 2, 3, -5)
