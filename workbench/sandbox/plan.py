"""Plan, then act: turn a validated Profile and a command into the exact launch recipe, checking
everything that can be checked before the first privileged call."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field

from workbench.core.errors import ProfileError, UsageError
from workbench.sandbox.profile import Profile


@dataclass
class Plan:
    profile: Profile
    command: list[str]
    env: dict[str, str]
    stdin: str = "pipe"
    """`pipe`, `null` or `terminal` (the command inherits the caller's terminal)."""
    extra: dict = field(default_factory=dict)

    def to_wire(self) -> dict:
        """Plain data for the launcher process."""
        return {"profile": self.profile.to_dict(), "command": list(self.command), "env": self.env,
                "stdin": self.stdin, **self.extra}


def _inside_exists(profile: Profile, path: str) -> bool:
    """Does `path` exist in the sandbox's view before it is built (rootfs or our own mounts)?"""
    if path == "/tmp" or path.startswith("/tmp/") or path.startswith("/dev/"):
        return True  # our tmpfs: missing mount points are created
    return os.path.lexists(os.path.join(profile.rootfs, path.lstrip("/")))


def _check_rlimits(profile: Profile) -> None:
    """Inside a user namespace a hard limit can only be lowered: above ours, setrlimit would fail."""
    from workbench.sandbox.security import RLIMIT_IDS

    for name, value in profile.rlimits.items():
        hard = resource.getrlimit(RLIMIT_IDS[name])[1]
        if hard != resource.RLIM_INFINITY and value > hard:
            raise ProfileError(f"rlimits.{name}", f"{value} is above this host's hard limit {hard}",
                               f"use at most {hard}")


def make_plan(profile: Profile, command: list[str], stdin: str = "pipe",
              host_env: dict[str, str] | None = None) -> Plan:
    if not command:
        raise UsageError("no command given", "put it after --, e.g. workbench run -- ls /")
    if stdin not in ("pipe", "null", "inherit", "terminal"):
        raise UsageError(f"unknown stdin mode {stdin!r}")
    if not os.path.isdir(profile.rootfs):
        raise ProfileError("filesystem.rootfs", f"{profile.rootfs!r} is not a directory")
    if profile.namespaces["mnt"]:
        missing = [d for d in ("proc", "dev", "tmp") if not os.path.isdir(os.path.join(profile.rootfs, d))]
        if missing:
            raise ProfileError("filesystem.rootfs", f"{profile.rootfs} has no /{', /'.join(missing)} to mount on",
                               f"mkdir {' '.join(os.path.join(profile.rootfs, d) for d in missing)}")
    for bind in profile.binds:
        if not os.path.exists(bind.src):
            raise ProfileError(f"bind {bind.src}", "source does not exist on the host",
                               "create it or fix the path")
        if not _inside_exists(profile, bind.dst):
            raise ProfileError(f"bind {bind.src}:{bind.dst}",
                               "destination does not exist in the sandbox's read-only root",
                               "bind onto an existing path, or under /tmp where it is created")
    _check_rlimits(profile)
    host_env = os.environ if host_env is None else host_env
    env = {k: host_env[k] for k in profile.pass_env if k in host_env}
    env.update(profile.env)
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return Plan(profile=profile, command=list(command), env=env, stdin=stdin)
