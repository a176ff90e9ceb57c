"""Start an external sandboxing tool (bwrap, runsc) held before its first instruction, so that it
can be placed in our cgroup before it forks or unshares anything.

Why a holder: a cgroup namespace is rooted where its creator stands at clone time, and memory is
charged to the cgroup a page is first touched in; both must be ours from the tool's first clone.
Python 3.11's subprocess cannot place a child in a cgroup, and `preexec_fn` is not safe in our
threaded process. So a tiny bash (fork+exec by subprocess, which is thread-safe) waits on a pipe,
we write its pid into the cgroup, and a byte on the pipe lets it `exec` the tool under the same
pid. bash rather than dash: dash cannot name file descriptors above 9 in redirections.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time

from workbench.core.errors import SandboxError

# The gate fd number is spliced in as a decimal integer we chose, never user text.
_HOLD = '{limits}read -r -u {fd} _ || exit 125; exec {fd}<&-; exec "$@"'
# bash's ulimit flag per profile rlimit, and the unit it counts in (bytes are given to setrlimit).
_ULIMIT = {"nofile": ("-n", 1), "nproc": ("-u", 1), "core": ("-c", 1024), "fsize": ("-f", 1024),
           "stack": ("-s", 1024), "as": ("-v", 1024), "cpu": ("-t", 1), "memlock": ("-l", 1024)}
HOLD_EXIT = 125
"""The holder's status when the gate closed without a byte (we gave up before release)."""


def require(tool: str, package: str) -> str:
    path = shutil.which(tool) or (f"/usr/bin/{tool}" if os.access(f"/usr/bin/{tool}", os.X_OK) else None)
    if path is None:
        raise SandboxError(f"{tool} is not installed", f"apt-get install {package} (or run scripts/setup.sh)")
    return path


class Held:
    """A process that will exec `argv` once `go()` is called; until then it reads a pipe."""

    def __init__(self, argv: list[str], stdio: tuple[int, int, int], env: dict[str, str],
                 pass_fds: tuple[int, ...] = (), user: int | None = None, group: int | None = None,
                 new_session: bool = True, rlimits: dict[str, int] | None = None):
        # rlimits are set by the holder itself: lowering needs no privilege, while prlimit() on
        # another uid's process needs CAP_SYS_RESOURCE, which containers often drop.
        limits = "".join(f"ulimit -S -H {_ULIMIT[k][0]} {int(v) // _ULIMIT[k][1]} || exit 125; "
                         for k, v in sorted((rlimits or {}).items()))
        bash = shutil.which("bash") or "/bin/bash"
        gate_r, self._gate_w = os.pipe2(os.O_CLOEXEC)
        try:
            self.proc = subprocess.Popen(
                [bash, "--norc", "--noprofile", "-c", _HOLD.format(fd=gate_r, limits=limits), "workbench-hold", *argv],
                stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], pass_fds=(gate_r, *pass_fds),
                env=env, user=user, group=group, extra_groups=[] if user is not None else None,
                start_new_session=new_session, close_fds=True,
            )
        except OSError as exc:
            os.close(self._gate_w)
            raise SandboxError(f"cannot start {argv[0]} ({exc.strerror})", "run `workbench doctor`") from None
        finally:
            os.close(gate_r)
        self.pid = self.proc.pid

    def go(self) -> None:
        """Let the holder exec the tool (same pid)."""
        if self._gate_w is not None:
            try:
                os.write(self._gate_w, b"\n")
            except BrokenPipeError:
                pass
            os.close(self._gate_w)
            self._gate_w = None

    def abandon(self) -> None:
        """Close the gate without a byte: the holder exits 125 without running anything."""
        if self._gate_w is not None:
            os.close(self._gate_w)
            self._gate_w = None


def read_json_line(fd: int, deadline: float, alive) -> bytes | None:
    """One newline-terminated chunk from `fd` before `deadline`, or None on EOF / timeout /
    when `alive()` turns false with nothing to read."""
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], min(left, 0.05))
        if not ready:
            if not alive():
                return None
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return buf or None
        buf += chunk
    return buf


def namespaces_of(pid: int) -> dict[str, dict]:
    """Per namespace type: its inode and whether it differs from ours (the host's view)."""
    out: dict[str, dict] = {}
    for name in ("user", "pid", "mnt", "net", "uts", "ipc", "cgroup"):
        try:
            inode = os.stat(f"/proc/{pid}/ns/{name}").st_ino
            # "Host" is the workbench's own view: /proc/1 may belong to an outer sandbox.
            out[name] = {"inode": inode, "isolated": inode != os.stat(f"/proc/self/ns/{name}").st_ino}
        except OSError:
            out[name] = {"inode": None, "isolated": None}
    return out


PRIVATE_MOUNTS = ("/tmp", "/dev", "/proc")


def host_path(profile, inside: str, private: tuple[str, ...] = PRIVATE_MOUNTS) -> str | None:
    """Where a path of the sandbox's view lives on the host (binds first, then the rootfs); None
    for our private mounts (/tmp, /dev, /proc), which start empty or synthetic."""
    inside = os.path.normpath(inside)
    for bind in sorted(profile.binds, key=lambda b: -len(b.dst)):
        if inside == bind.dst or inside.startswith(bind.dst.rstrip("/") + "/"):
            return bind.src + inside[len(bind.dst):]
    for mount in private:
        if inside == mount or inside.startswith(mount + "/"):
            return None
    return os.path.join(profile.rootfs, inside.lstrip("/"))


def resolve_command(profile, name: str, path_env: str, cwd: str = "/",
                    private: tuple[str, ...] = PRIVATE_MOUNTS) -> str:
    """The command's absolute path in the sandbox's view, so 127 and 126 are told apart before
    anything is built (as the native launcher does). Raises CommandNotFound/CommandNotExecutable."""
    from workbench.core.errors import CommandNotExecutable, CommandNotFound

    if "/" in name:
        candidates = [name if name.startswith("/") else os.path.join(cwd, name)]
    else:
        candidates = [os.path.join(d or ".", name) for d in path_env.split(":")]
    not_exec = None
    for inside in candidates:
        host = host_path(profile, inside, private)
        if host is None or not os.path.isfile(host):
            continue
        if os.access(host, os.X_OK):
            return inside
        not_exec = inside
    if not_exec:
        raise CommandNotExecutable(f"{name}: permission denied (not executable in the sandbox)")
    raise CommandNotFound(f"{name}: command not found in the sandbox")
