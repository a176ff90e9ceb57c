"""Turning raw syscall arguments into words: paths, socket addresses, flags, signal numbers.

Which arguments the kernel side copies (a path string, a socket address) is declared here, by
syscall *name*; the loader turns names into numbers through libseccomp and fills the probes'
`wb_argkinds` map with them.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import struct
from typing import Any

# The kinds of probes/wb_layout.h (WB_ARG_*).
ARG_STR = 1
ARG_SOCKADDR = 2

# name -> up to two copied arguments: (kind, argument index, decoded key)
COPIED: dict[str, tuple[tuple[int, int, str], ...]] = {
    "open": ((ARG_STR, 0, "pathname"),),
    "creat": ((ARG_STR, 0, "pathname"),),
    "openat": ((ARG_STR, 1, "pathname"),),
    "openat2": ((ARG_STR, 1, "pathname"),),
    "stat": ((ARG_STR, 0, "pathname"),),
    "lstat": ((ARG_STR, 0, "pathname"),),
    "newfstatat": ((ARG_STR, 1, "pathname"),),
    "statx": ((ARG_STR, 1, "pathname"),),
    "access": ((ARG_STR, 0, "pathname"),),
    "faccessat": ((ARG_STR, 1, "pathname"),),
    "faccessat2": ((ARG_STR, 1, "pathname"),),
    "execve": ((ARG_STR, 0, "pathname"),),
    "execveat": ((ARG_STR, 1, "pathname"),),
    "mkdir": ((ARG_STR, 0, "pathname"),),
    "mkdirat": ((ARG_STR, 1, "pathname"),),
    "rmdir": ((ARG_STR, 0, "pathname"),),
    "unlink": ((ARG_STR, 0, "pathname"),),
    "unlinkat": ((ARG_STR, 1, "pathname"),),
    "rename": ((ARG_STR, 0, "oldpath"), (ARG_STR, 1, "newpath")),
    "renameat": ((ARG_STR, 1, "oldpath"), (ARG_STR, 3, "newpath")),
    "renameat2": ((ARG_STR, 1, "oldpath"), (ARG_STR, 3, "newpath")),
    "link": ((ARG_STR, 0, "oldpath"), (ARG_STR, 1, "newpath")),
    "symlink": ((ARG_STR, 0, "target"), (ARG_STR, 1, "linkpath")),
    "readlink": ((ARG_STR, 0, "pathname"),),
    "readlinkat": ((ARG_STR, 1, "pathname"),),
    "chdir": ((ARG_STR, 0, "path"),),
    "chroot": ((ARG_STR, 0, "path"),),
    "chmod": ((ARG_STR, 0, "pathname"),),
    "fchmodat": ((ARG_STR, 1, "pathname"),),
    "chown": ((ARG_STR, 0, "pathname"),),
    "lchown": ((ARG_STR, 0, "pathname"),),
    "fchownat": ((ARG_STR, 1, "pathname"),),
    "truncate": ((ARG_STR, 0, "path"),),
    "mount": ((ARG_STR, 0, "source"), (ARG_STR, 1, "target")),
    "umount2": ((ARG_STR, 0, "target"),),
    "pivot_root": ((ARG_STR, 0, "new_root"), (ARG_STR, 1, "put_old")),
    "mknod": ((ARG_STR, 0, "pathname"),),
    "mknodat": ((ARG_STR, 1, "pathname"),),
    "connect": ((ARG_SOCKADDR, 1, "addr"),),
    "bind": ((ARG_SOCKADDR, 1, "addr"),),
    "sendto": ((ARG_SOCKADDR, 4, "addr"),),
}

# Register-only decodings: name -> (argument index, key, decoder name)
_SIGNAL_ARGS = {"kill": 1, "tkill": 1, "tgkill": 2, "rt_sigaction": 0, "rt_sigqueueinfo": 1,
                "pidfd_send_signal": 1}
_FLAG_ARGS = {"open": 1, "openat": 2, "clone": 0, "unshare": 0, "setns": 1}
_SOCKET_ARGS = {"socket": 0}
REGISTER_ONLY = frozenset(_SIGNAL_ARGS) | frozenset(_FLAG_ARGS) | frozenset(_SOCKET_ARGS)

_CLONE_FLAGS = {  # linux/sched.h: flags, not syscall numbers
    0x00000100: "CLONE_VM", 0x00000200: "CLONE_FS", 0x00000400: "CLONE_FILES",
    0x00000800: "CLONE_SIGHAND", 0x00001000: "CLONE_PIDFD", 0x00002000: "CLONE_PTRACE",
    0x00004000: "CLONE_VFORK", 0x00008000: "CLONE_PARENT", 0x00010000: "CLONE_THREAD",
    0x00020000: "CLONE_NEWNS", 0x00040000: "CLONE_SYSVSEM", 0x00080000: "CLONE_SETTLS",
    0x00100000: "CLONE_PARENT_SETTID", 0x00200000: "CLONE_CHILD_CLEARTID",
    0x00800000: "CLONE_UNTRACED", 0x01000000: "CLONE_CHILD_SETTID", 0x02000000: "CLONE_NEWCGROUP",
    0x04000000: "CLONE_NEWUTS", 0x08000000: "CLONE_NEWIPC", 0x10000000: "CLONE_NEWUSER",
    0x20000000: "CLONE_NEWPID", 0x40000000: "CLONE_NEWNET", 0x80000000: "CLONE_IO",
}
_OPEN_FLAGS = sorted(((getattr(os, n), n) for n in dir(os) if n.startswith("O_") and n not in
                      ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE", "O_RSYNC", "O_NDELAY",
                       "O_FSYNC") and getattr(os, n)), reverse=True)


def _flags(value: int, table: dict[int, str] | list[tuple[int, str]]) -> str:
    # Widest flags first (O_TMPFILE contains O_DIRECTORY's bit), then shown low bit first.
    items = sorted(table.items() if isinstance(table, dict) else table, reverse=True)
    found, rest = [], value
    for bit, name in items:
        if bit and value & bit == bit and rest & bit:
            found.append((bit, name))
            rest &= ~bit
    words = [name for _bit, name in sorted(found)]
    if rest:
        words.append(hex(rest))
    return "|".join(words) or "0"


def open_flags(value: int) -> str:
    mode = ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[value & 3]
    rest = _flags(value & ~3, _OPEN_FLAGS)
    return mode if rest == "0" else f"{mode}|{rest}"


def clone_flags(value: int) -> str:
    exit_signal = value & 0xFF
    text = _flags(value & ~0xFF, _CLONE_FLAGS)
    if exit_signal:
        text = f"{text}|{signal_name(exit_signal)}" if text != "0" else signal_name(exit_signal)
    return text


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIG{sig}"


def sockaddr(blob: bytes) -> dict[str, Any]:
    """A struct sockaddr as {"family": "AF_INET", "addr": "127.0.0.1:80"}."""
    if len(blob) < 2:
        return {}
    family = struct.unpack_from("=H", blob)[0]
    try:
        fam_name = socket.AddressFamily(family).name
    except ValueError:
        fam_name = f"AF_{family}"
    out: dict[str, Any] = {"family": fam_name}
    if family == socket.AF_INET and len(blob) >= 8:
        port = struct.unpack_from("!H", blob, 2)[0]
        out["addr"] = f"{ipaddress.IPv4Address(blob[4:8])}:{port}"
    elif family == socket.AF_INET6 and len(blob) >= 24:
        port = struct.unpack_from("!H", blob, 2)[0]
        out["addr"] = f"[{ipaddress.IPv6Address(blob[8:24])}]:{port}"
    elif family == socket.AF_UNIX:
        path = blob[2:]
        if path[:1] == b"\0":  # abstract socket: the name is every byte after the NUL
            out["addr"] = "@" + path[1:].split(b"\0")[0].decode(errors="replace")
        else:
            out["addr"] = path.split(b"\0")[0].decode(errors="replace")
    return out


def c_string(blob: bytes) -> str:
    return blob.split(b"\0", 1)[0].decode(errors="replace")


def decode_args(name: str, args: tuple[int, ...], blobs: tuple[bytes, bytes] = (b"", b"")) -> dict[str, Any]:
    """Decoded arguments by name for the syscalls we know; {} for the others."""
    out: dict[str, Any] = {}
    for (kind, _index, key), blob in zip(COPIED.get(name, ()), blobs):
        if not blob:
            continue
        if kind == ARG_STR:
            out[key] = c_string(blob)
        elif kind == ARG_SOCKADDR:
            addr = sockaddr(blob)
            if addr:
                out[key] = addr.get("addr", "")
                out["family"] = addr["family"]
    if name in _SIGNAL_ARGS:
        out["sig"] = signal_name(args[_SIGNAL_ARGS[name]] & 0xFFFFFFFF)
    index = _FLAG_ARGS.get(name)
    if index is not None:
        value = args[index]
        if name in ("open", "openat"):
            out["flags"] = open_flags(value)
        else:
            out["flags"] = clone_flags(value)
    if name in _SOCKET_ARGS:
        fam = args[0] & 0xFFFF
        try:
            out["domain"] = socket.AddressFamily(fam).name
        except ValueError:
            out["domain"] = str(fam)
    return out
