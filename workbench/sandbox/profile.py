"""Profiles: TOML files describing every isolation layer of a sandbox, validated completely before
anything privileged happens.

The format is documented in docs/profiles.md. Validation collects the first mistake as a
`ProfileError` naming the file and key ("strict.toml: seccomp.syscalls: unknown syscall 'mkdri'").
CLI options are applied with `apply_overrides`, and validated the same way.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.errors import ProfileError
from workbench.sandbox import syscalls

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "profiles"
NAMESPACE_TYPES = ("user", "pid", "mnt", "net", "uts", "ipc", "cgroup")
NET_MODES = ("none", "loopback", "veth", "host")
SECCOMP_MODES = ("off", "deny", "allow")
SECCOMP_ACTIONS = ("errno", "kill", "trap", "log")
CAPABILITIES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)  # index == capability number (linux/capability.h), so the order matters
MIN_MEMORY = 4 << 20  # measured: pid 1 and the command's process start in 2-3 MiB
RLIMITS = ("nofile", "nproc", "core", "fsize", "stack", "as", "cpu", "memlock")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


@dataclass
class Bind:
    """A host path made visible inside the sandbox."""

    src: str
    dst: str
    readonly: bool = True


@dataclass
class Seccomp:
    mode: str = "deny"
    """`off`, `deny` (listed syscalls refused, others allowed) or `allow` (only listed allowed)."""
    action: str = "errno"
    """What a refused syscall gets: `errno`, `kill` (the process), `trap` (SIGSYS) or `log`."""
    errno: str = "EPERM"
    syscalls: list[str] = field(default_factory=list)
    """The list the mode applies to."""
    log: bool = True
    """Install with SECCOMP_FILTER_FLAG_LOG, so denials also reach the kernel log (audit)."""
    deny_clone_newuser: bool = True
    """Refuse clone/unshare asking for a new user namespace (regaining capabilities)."""


@dataclass
class Profile:
    name: str = "custom"
    description: str = ""
    hostname: str = "sandbox"
    cwd: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    pass_env: list[str] = field(default_factory=list)
    """Host variables copied in when set (TERM, LANG, ...); nothing else leaks in."""
    namespaces: dict[str, bool] = field(default_factory=lambda: {t: True for t in NAMESPACE_TYPES})
    uid: int = 0
    gid: int = 0
    host_uid: int = 65534
    """Host uid that the sandbox's `uid` maps to (the unprivileged owner of what it writes)."""
    host_gid: int = 65534
    rootfs: str = "/"
    readonly_root: bool = True
    tmp_size: int = 256 << 20
    binds: list[Bind] = field(default_factory=list)
    net: str = "none"
    cap_keep: list[str] = field(default_factory=list)
    no_new_privs: bool = True
    memory: int | None = None
    pids: int | None = None
    cpus: float | None = None
    rlimits: dict[str, int] = field(default_factory=dict)
    seccomp: Seccomp = field(default_factory=Seccomp)
    init: bool = True
    """Run a minimal init as pid 1 that reaps orphans and forwards signals."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- parsing helpers ---------------------------------------------------------------------------


def parse_size(value: Any, where: str) -> int:
    """'512M', '1.5GiB', 1048576 -> bytes."""
    if isinstance(value, bool):
        raise ProfileError(where, f"expected a size like '512M', got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ProfileError(where, f"size must be positive, got {value}")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            n = float(m.group(1)) * (1 << (10 * " kmgt".index(m.group(2).lower() or " ")))
            if n >= 1 and n < (1 << 62):
                return int(n)
    raise ProfileError(where, f"expected a size like '512M' or '2G', got {value!r}")


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float, (int, float)))
    if not ok:
        raise ProfileError(where, f"expected {what}, got {value!r}")
    return value


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise ProfileError(where, f"{value!r} is not one of {', '.join(choices)}")
    return value


def parse_bind(spec: Any, where: str) -> Bind:
    """'SRC[:DST[:ro|rw]]' or {src=..., dst=..., mode="ro"}."""
    if isinstance(spec, dict):
        unknown = set(spec) - {"src", "dst", "mode"}
        if unknown:
            raise ProfileError(where, f"unknown key {sorted(unknown)[0]!r} (known: src, dst, mode)")
        src, dst, mode = spec.get("src"), spec.get("dst", spec.get("src")), spec.get("mode", "ro")
    elif isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) > 3 or not parts[0]:
            raise ProfileError(where, f"bad bind {spec!r}", "write SRC[:DST[:ro|rw]]")
        src = parts[0]
        dst = parts[1] if len(parts) > 1 and parts[1] else src
        mode = parts[2] if len(parts) > 2 else "ro"
    else:
        raise ProfileError(where, f"expected 'SRC[:DST[:ro|rw]]', got {spec!r}")
    for label, path in (("source", src), ("destination", dst)):
        if not isinstance(path, str) or not path.startswith("/"):
            raise ProfileError(where, f"bind {label} must be an absolute path, got {path!r}")
    _choice(mode, ("ro", "rw"), where + ".mode")
    return Bind(src=os.path.normpath(src), dst=os.path.normpath(dst), readonly=mode == "ro")


# --- the schema --------------------------------------------------------------------------------

_SECTIONS = {
    "name", "description", "process", "user", "namespaces", "filesystem", "network",
    "capabilities", "limits", "rlimits", "seccomp",
}


def _check_keys(table: Any, known: set[str], where: str) -> dict:
    if not isinstance(table, dict):
        raise ProfileError(where, f"expected a table, got {table!r}")
    for key in table:
        if key not in known:
            raise ProfileError(f"{where}.{key}" if where else key,
                               f"unknown key {key!r}", f"known keys: {', '.join(sorted(known))}")
    return table


def from_dict(data: dict[str, Any], source: str = "profile", base_dir: str | None = None) -> Profile:
    """Validate plain data (parsed TOML) into a Profile. Raises ProfileError on the first mistake.
    `base_dir` resolves relative paths in the file (`seccomp.import`)."""
    w = lambda key: f"{source}: {key}"  # noqa: E731 - names the place in every message
    _check_keys(data, _SECTIONS, source + ":")
    p = Profile()
    p.name = _expect(data.get("name", Path(source).stem), str, w("name"), "a string")
    p.description = _expect(data.get("description", ""), str, w("description"), "a string")

    proc = _check_keys(data.get("process", {}), {"hostname", "cwd", "env", "pass_env", "init"}, w("process"))
    p.hostname = _expect(proc.get("hostname", p.hostname), str, w("process.hostname"), "a string")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}", p.hostname):
        raise ProfileError(w("process.hostname"), f"{p.hostname!r} is not a valid hostname")
    p.cwd = _expect(proc.get("cwd", p.cwd), str, w("process.cwd"), "an absolute path")
    if not p.cwd.startswith("/"):
        raise ProfileError(w("process.cwd"), f"expected an absolute path, got {p.cwd!r}")
    env = _expect(proc.get("env", {}), dict, w("process.env"), "a table of strings")
    for k, v in env.items():
        _expect(v, str, w(f"process.env.{k}"), "a string")
    p.env = dict(env)
    p.pass_env = list(_expect(proc.get("pass_env", []), list, w("process.pass_env"), "a list of names"))
    for i, name in enumerate(p.pass_env):
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ProfileError(w(f"process.pass_env[{i}]"), f"expected a variable name, got {name!r}")
    for k in p.env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise ProfileError(w(f"process.env.{k}"), f"{k!r} is not a valid variable name")
    p.init = _expect(proc.get("init", True), bool, w("process.init"), "true or false")

    user = _check_keys(data.get("user", {}), {"uid", "gid", "host_uid", "host_gid"}, w("user"))
    for key in ("uid", "gid", "host_uid", "host_gid"):
        value = _expect(user.get(key, getattr(p, key)), int, w(f"user.{key}"), "a number")
        if not 0 <= value < 2**32 - 1:
            raise ProfileError(w(f"user.{key}"), f"{value} is not a valid id")
        setattr(p, key, value)

    ns = _check_keys(data.get("namespaces", {}), set(NAMESPACE_TYPES), w("namespaces"))
    for key, value in ns.items():
        p.namespaces[key] = _expect(value, bool, w(f"namespaces.{key}"), "true or false")

    fs = _check_keys(data.get("filesystem", {}), {"rootfs", "readonly_root", "tmp_size", "binds"}, w("filesystem"))
    p.rootfs = _expect(fs.get("rootfs", p.rootfs), str, w("filesystem.rootfs"), "a directory")
    p.readonly_root = _expect(fs.get("readonly_root", True), bool, w("filesystem.readonly_root"), "true or false")
    p.tmp_size = parse_size(fs.get("tmp_size", p.tmp_size), w("filesystem.tmp_size"))
    binds = _expect(fs.get("binds", []), list, w("filesystem.binds"), "a list")
    p.binds = [parse_bind(b, w(f"filesystem.binds[{i}]")) for i, b in enumerate(binds)]

    net = _check_keys(data.get("network", {}), {"mode"}, w("network"))
    p.net = _choice(net.get("mode", p.net), NET_MODES, w("network.mode"))

    caps = _check_keys(data.get("capabilities", {}), {"keep", "no_new_privs"}, w("capabilities"))
    p.cap_keep = [parse_capability(c, w("capabilities.keep")) for c in
                  _expect(caps.get("keep", []), list, w("capabilities.keep"), "a list of names")]
    p.no_new_privs = _expect(caps.get("no_new_privs", True), bool, w("capabilities.no_new_privs"), "true or false")

    limits = _check_keys(data.get("limits", {}), {"memory", "pids", "cpus"}, w("limits"))
    if "memory" in limits:
        p.memory = parse_size(limits["memory"], w("limits.memory"))
    if "pids" in limits:
        p.pids = parse_count(limits["pids"], w("limits.pids"))
    if "cpus" in limits:
        p.cpus = parse_cpus(limits["cpus"], w("limits.cpus"))

    rl = _check_keys(data.get("rlimits", {}), set(RLIMITS), w("rlimits"))
    for key, value in rl.items():
        value = _expect(value, int, w(f"rlimits.{key}"), "a number")
        if value < 0:
            raise ProfileError(w(f"rlimits.{key}"), f"must be >= 0, got {value}")
        p.rlimits[key] = value

    sc = _check_keys(data.get("seccomp", {}), {"mode", "action", "errno", "syscalls", "log",
                                               "deny_clone_newuser", "import"}, w("seccomp"))
    if "import" in sc:
        sc = _import_seccomp(sc, w("seccomp.import"), base_dir)
    s = p.seccomp
    s.mode = _choice(sc.get("mode", s.mode), SECCOMP_MODES, w("seccomp.mode"))
    s.action = _choice(sc.get("action", s.action), SECCOMP_ACTIONS, w("seccomp.action"))
    s.errno = parse_errno(sc.get("errno", s.errno), w("seccomp.errno"))
    names = _expect(sc.get("syscalls", []), list, w("seccomp.syscalls"), "a list of syscall names")
    s.syscalls = [syscalls.check_name(n, w("seccomp.syscalls")) for n in names]
    s.log = _expect(sc.get("log", True), bool, w("seccomp.log"), "true or false")
    s.deny_clone_newuser = _expect(sc.get("deny_clone_newuser", True), bool,
                                   w("seccomp.deny_clone_newuser"), "true or false")
    check_consistency(p, source)
    return p


def _import_seccomp(sc: dict, where: str, base_dir: str | None) -> dict:
    """A Docker/OCI seccomp JSON file as the seccomp table; keys given beside `import` win."""
    from workbench.sandbox.seccomp_json import load_docker

    path = _expect(sc["import"], str, where, "a path to a Docker/OCI seccomp JSON file")
    if not os.path.isabs(path) and base_dir:
        path = os.path.join(base_dir, path)
    if not os.path.isfile(path):
        raise ProfileError(where, f"{path} does not exist", "give the path of a Docker/OCI seccomp JSON file")
    table = load_docker(path)
    table.update({k: v for k, v in sc.items() if k != "import"})
    return table


def parse_count(value: Any, where: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    value = _expect(value, int, where, "a whole number")
    if value < 1 or value > 4_194_304:
        raise ProfileError(where, f"must be between 1 and 4194304, got {value}")
    return value


def parse_cpus(value: Any, where: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ProfileError(where, f"expected a number of CPUs like 0.5, got {value!r}") from None
    value = _expect(value, (int, float), where, "a number of CPUs like 0.5")
    if not 0.01 <= value <= 1024:
        raise ProfileError(where, f"must be between 0.01 and 1024, got {value}")
    return float(value)


def parse_errno(value: Any, where: str) -> str:
    import errno as errno_mod

    if isinstance(value, int) and not isinstance(value, bool) and value in errno_mod.errorcode:
        return errno_mod.errorcode[value]
    if isinstance(value, str) and hasattr(errno_mod, value.upper()) and value.upper().startswith("E"):
        return value.upper()
    raise ProfileError(where, f"unknown errno {value!r}", "use a name like EPERM or EACCES")


def parse_capability(value: Any, where: str) -> str:
    if isinstance(value, str):
        name = value.lower().removeprefix("cap_")
        if name in CAPABILITIES:
            return name
    raise ProfileError(where, f"unknown capability {value!r}", "use a name like net_bind_service")


def check_consistency(p: Profile, source: str) -> None:
    """Options that cannot hold together: name both in the message."""
    if p.net != "host" and not p.namespaces["net"]:
        raise ProfileError(source, f"network.mode = {p.net!r} needs namespaces.net = true",
                           "set network.mode = 'host' or enable the net namespace")
    if p.net == "host" and p.namespaces["net"]:
        raise ProfileError(source, "network.mode = 'host' conflicts with namespaces.net = true",
                           "set namespaces.net = false for host networking")
    if not p.namespaces["mnt"] and (p.binds or p.rootfs != "/" or p.readonly_root):
        raise ProfileError(source, "filesystem settings (binds, rootfs, readonly_root) conflict with "
                           "namespaces.mnt = false", "enable the mount namespace")
    if not p.namespaces["user"] and (p.uid, p.gid) != (0, 0):
        raise ProfileError(source, "user.uid/gid conflict with namespaces.user = false",
                           "enable the user namespace to map ids")
    if p.seccomp.mode == "allow" and not p.seccomp.syscalls:
        raise ProfileError(source, "seccomp.mode = 'allow' with an empty seccomp.syscalls refuses everything",
                           "list the syscalls to allow")
    if p.seccomp.action == "log" and p.seccomp.mode == "allow":
        pass  # a learning mode: everything runs, the unlisted calls are logged
    if p.seccomp.mode != "off" and not p.no_new_privs and "sys_admin" not in p.cap_keep:
        raise ProfileError(source, "seccomp.mode = " + repr(p.seccomp.mode) + " conflicts with "
                           "capabilities.no_new_privs = false", "the kernel only lets a process without "
                           "CAP_SYS_ADMIN load a filter under no_new_privs: set it to true")
    if p.memory is not None and p.memory < MIN_MEMORY:
        raise ProfileError(source, f"limits.memory = {p.memory} bytes is below the {MIN_MEMORY >> 20}M a sandbox "
                           "needs to start (its init is charged to it)", f"set limits.memory to {MIN_MEMORY >> 20}M or more")
    if p.pids is not None and p.init and p.pids < 2:
        raise ProfileError(source, f"limits.pids = {p.pids} leaves no room for the command beside the sandbox's init",
                           "set limits.pids to 2 or more (or process.init = false)")
    if not os.path.isabs(p.rootfs):
        raise ProfileError(source, f"filesystem.rootfs must be an absolute path, got {p.rootfs!r}")


# --- loading and overrides ---------------------------------------------------------------------


def bundled_names() -> list[str]:
    return sorted(f.stem for f in BUNDLED_DIR.glob("*.toml"))


def load(name_or_path: str) -> Profile:
    """A bundled profile by name, or a TOML file by path."""
    path = Path(name_or_path)
    if "/" not in name_or_path and not name_or_path.endswith(".toml"):
        path = BUNDLED_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise ProfileError("", f"no bundled profile {name_or_path!r}",
                               f"use one of {', '.join(bundled_names())} or a path to a .toml file")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(str(path), f"not valid TOML ({exc})") from None
    return from_dict(data, path.name, base_dir=str(path.resolve().parent))


def apply_overrides(base: Profile, *, memory: str | None = None, pids: str | None = None,
                    cpus: str | None = None, net: str | None = None, deny: list[str] | None = None,
                    allow: list[str] | None = None, binds: list[str] | None = None,
                    rootfs: str | None = None) -> Profile:
    """CLI options over a profile; each is validated like the profile key it replaces."""
    p = copy.deepcopy(base)
    if memory is not None:
        p.memory = parse_size(memory, "--memory")
    if pids is not None:
        p.pids = parse_count(pids, "--pids")
    if cpus is not None:
        p.cpus = parse_cpus(cpus, "--cpus")
    if net is not None:
        p.net = _choice(net, NET_MODES, "--net")
        if net == "host":
            p.namespaces["net"] = False
    for flag, names in (("--deny", deny), ("--allow", allow)):
        for name in names or ():
            syscalls.check_name(name, flag)
    if deny:
        _add_denied(p, deny)
    if allow:
        _add_allowed(p, allow)
    for spec in binds or ():
        p.binds.append(parse_bind(spec, "--bind"))
    if rootfs is not None:
        if not os.path.isdir(rootfs):
            raise ProfileError("--rootfs", f"{rootfs!r} is not a directory")
        p.rootfs = os.path.abspath(rootfs)
    check_consistency(p, "options")
    return p


def _add_denied(p: Profile, names: list[str]) -> None:
    s = p.seccomp
    if s.mode == "off":
        s.mode, s.syscalls = "deny", []
    if s.mode == "deny":
        s.syscalls += [n for n in names if n not in s.syscalls]
    else:  # allow-list: denying means taking out of the list
        s.syscalls = [n for n in s.syscalls if n not in names]


def _add_allowed(p: Profile, names: list[str]) -> None:
    s = p.seccomp
    if s.mode == "deny":
        s.syscalls = [n for n in s.syscalls if n not in names]
    elif s.mode == "allow":
        s.syscalls += [n for n in names if n not in s.syscalls]
