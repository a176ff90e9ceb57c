"""The sandbox's mount view, reconstructed from its profile, so that a path the app could not find
can be compared with the host: where does a sandbox path come from, and does it exist there?

The native backend builds: the rootfs (the host's / by default) bound read-only, a fresh /proc,
/dev (a few devices) and /tmp (empty tmpfs), then the binds on top. A path under /tmp, /dev, or a
rootfs other than / is where "it works on my machine" breaks.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

FRESH_MOUNTS = ("/tmp", "/dev", "/proc")
"""Mounted fresh inside: nothing of the host's shows there unless bound."""
SANDBOX_DEVICES = ("null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout",
                   "stderr", "ptmx", "core", "pts", "shm")


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


@dataclass(frozen=True)
class Origin:
    """Where a sandbox path comes from."""

    kind: str
    """`bind`, `rootfs`, `fresh` (our tmpfs/proc) or `unknown`."""
    host_path: str | None
    """The host path behind it (None for fresh mounts)."""
    readonly: bool
    bind: dict[str, Any] | None = None


class SandboxView:
    """The mount view of a profile (the flat dict of `Profile.to_dict()`)."""

    def __init__(self, profile: dict[str, Any]):
        self.rootfs = profile.get("rootfs") or "/"
        self.readonly_root = profile.get("readonly_root", True)
        self.binds = sorted(profile.get("binds") or [], key=lambda b: len(b.get("dst", "")), reverse=True)
        self.mnt_isolated = (profile.get("namespaces") or {}).get("mnt", True)
        self._origins: dict[str, Origin] = {}
        self._missing: dict[str, bool] = {}

    def origin(self, path: str) -> Origin:
        """Where `path` (absolute, as the sandbox sees it) comes from."""
        hit = self._origins.get(path)
        if hit is None:
            if len(self._origins) > 50_000:
                self._origins.clear()
            hit = self._origins[path] = self._origin(path)
        return hit

    def _origin(self, path: str) -> Origin:
        path = os.path.normpath(path)
        if not self.mnt_isolated:
            return Origin("rootfs", path, False)
        for b in self.binds:  # longest destination first: the mount on top wins
            if _under(path, b["dst"]):
                rest = path[len(b["dst"]):].lstrip("/")
                return Origin("bind", os.path.join(b["src"], rest) if rest else b["src"],
                              bool(b.get("readonly", True)), b)
        for top in FRESH_MOUNTS:
            if _under(path, top):
                return Origin("fresh", None, False)
        return Origin("rootfs", os.path.join(self.rootfs, path.lstrip("/")), bool(self.readonly_root))

    def exists_inside(self, path: str) -> bool | None:
        """Whether `path` exists in the sandbox (None: cannot tell from outside, e.g. under /tmp)."""
        o = self.origin(path)
        if o.kind == "fresh":
            if _under(path, "/dev"):
                rest = path[len("/dev"):].lstrip("/")
                return rest == "" or rest.split("/")[0] in SANDBOX_DEVICES
            return None
        return os.path.lexists(o.host_path) if o.host_path else None

    def bindable(self, dst: str) -> bool:
        """Whether a bind can land on `dst`: the backends create mount points only on their own
        tmpfs mounts (/tmp, /dev); elsewhere the destination must already exist in the sandbox."""
        if _under(dst, "/tmp") or _under(dst, "/dev"):
            return True
        return bool(self.exists_inside(dst))

    def missing_but_on_host(self, path: str) -> bool:
        """True when `path` exists on the host but the sandbox cannot see it there (cached: a
        program probing the same paths in a loop costs one lookup per path)."""
        hit = self._missing.get(path)
        if hit is None:
            if len(self._missing) > 50_000:
                self._missing.clear()
            hit = self._missing[path] = self._missing_but_on_host(path)
        return hit

    def _missing_but_on_host(self, path: str) -> bool:
        if not path.startswith("/") or _under(path, "/proc") or _under(path, "/sys"):
            return False  # /proc and /sys are per-namespace views, not missing files
        if not os.path.exists(path):
            return False
        inside = self.exists_inside(path)
        if inside is None:  # under our fresh /tmp: only binds put host files there
            return self.origin(path).kind == "fresh"
        return not inside


def read_interpreter(host_path: str) -> tuple[str, str] | None:
    """('script', '/bin/sh') for a #! script, ('elf', '/lib64/ld-linux-x86-64.so.2') for a dynamic
    ELF, None when neither can be read."""
    try:
        with open(host_path, "rb") as f:
            head = f.read(4096)
            if head.startswith(b"#!"):
                line = head[2:].split(b"\n", 1)[0].strip()
                return ("script", line.split()[0].decode(errors="replace")) if line else None
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only: the machines we serve
                return None
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                ph = f.read(phentsize)
                p_type, = struct.unpack_from("<I", ph, 0)
                if p_type == 3:  # PT_INTERP
                    p_offset, = struct.unpack_from("<Q", ph, 0x08)
                    p_filesz, = struct.unpack_from("<Q", ph, 0x20)
                    f.seek(p_offset)
                    return "elf", f.read(p_filesz).rstrip(b"\x00").decode(errors="replace")
    except (OSError, struct.error, IndexError):
        return None
    return None


def top_dir(path: str) -> str:
    """'/usr/lib/x' -> '/usr': what to bind to bring a missing tree in."""
    parts = [p for p in path.split("/") if p]
    return "/" + parts[0] if parts else "/"
