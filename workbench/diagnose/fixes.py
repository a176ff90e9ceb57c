"""Fixes as data: patches in the profile file's shape, applied to a profile and written as TOML.

Findings carry `fix_profile`, a patch shaped like a profile file ({"limits": {"memory": "512M"}}).
The diagnosis only sees a profile as the flat dict of `Profile.to_dict()`; `to_file_shape` turns
that into the file's shape so a patch can be merged and the result fed back to
`workbench.sandbox.profile.from_dict`:

    from_dict(apply_fix(profile.to_dict(), finding))   # the profile with the fix applied
"""

from __future__ import annotations

import copy
import json
from typing import Any

_PROCESS = ("hostname", "cwd", "env", "pass_env", "init")
_USER = ("uid", "gid", "host_uid", "host_gid")
_FILESYSTEM = ("rootfs", "readonly_root", "tmp_size")
_LIMITS = ("memory", "pids", "cpus")
_FLAT_ONLY = ("rootfs", "binds", "readonly_root", "cap_keep", "net", "uid", "host_uid", "memory", "pids")


def to_file_shape(profile: dict[str, Any]) -> dict[str, Any]:
    """A flat `Profile.to_dict()` as the tables of a profile file (already-shaped dicts pass)."""
    if not any(k in profile for k in _FLAT_ONLY):
        return copy.deepcopy(profile)  # already in the file's shape
    p = profile
    out: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in p:
            out[key] = p[key]
    out["process"] = {k: copy.deepcopy(p[k]) for k in _PROCESS if k in p}
    out["user"] = {k: p[k] for k in _USER if k in p}
    if "namespaces" in p:
        out["namespaces"] = dict(p["namespaces"])
    fs = {k: p[k] for k in _FILESYSTEM if k in p}
    if isinstance(fs.get("tmp_size"), int):
        fs["tmp_size"] = size_text(fs["tmp_size"])  # "256M" reads better than 268435456
    fs["binds"] = [{"src": b["src"], "dst": b["dst"], "mode": "ro" if b.get("readonly", True) else "rw"}
                   for b in p.get("binds", [])]
    out["filesystem"] = fs
    if "net" in p:
        out["network"] = {"mode": p["net"]}
    out["capabilities"] = {"keep": list(p.get("cap_keep", [])), "no_new_privs": p.get("no_new_privs", True)}
    out["limits"] = {k: p[k] for k in _LIMITS if p.get(k) is not None}
    if isinstance(out["limits"].get("memory"), int):
        out["limits"]["memory"] = size_text(out["limits"]["memory"])
    if p.get("rlimits"):
        out["rlimits"] = dict(p["rlimits"])
    if "seccomp" in p:
        out["seccomp"] = copy.deepcopy(p["seccomp"])
    return out


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value (lists included) replaces."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_fix(profile: dict[str, Any], finding: Any) -> dict[str, Any]:
    """The profile (flat or file-shaped) with `finding.fix_profile` applied, in the file's shape."""
    patch = finding.fix_profile if hasattr(finding, "fix_profile") else finding
    return merge(to_file_shape(profile), patch or {})


def size_text(n: int) -> str:
    """Bytes as the shortest exact profile size: 536870912 -> '512M'."""
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


# --- seccomp list edits ------------------------------------------------------------------------


def allow_syscall(seccomp: dict[str, Any], name: str) -> dict[str, Any]:
    """The seccomp table with `name` allowed (taken out of a deny-list, added to an allow-list)."""
    names = list(seccomp.get("syscalls", []))
    if seccomp.get("mode") == "allow":
        names = names + [name] if name not in names else names
    else:
        names = [n for n in names if n != name]
    return {"syscalls": names}


# --- TOML --------------------------------------------------------------------------------------


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _long_list(values: list[Any], indent: str = "  ", width: int = 96) -> str:
    lines, line = [], indent
    for v in values:
        item = _value(v) + ", "
        if len(line) + len(item) > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += item
    if line.strip():
        lines.append(line.rstrip())
    return "[\n" + "\n".join(lines) + "\n]"


def to_toml(data: dict[str, Any], header: str = "") -> str:
    """A file-shaped profile as TOML: scalars first, then one [table] per section."""
    out = [f"# {line}" for line in header.splitlines()] + ([""] if header else [])
    for k, v in data.items():
        if not isinstance(v, dict):
            out.append(f"{_key(k)} = {_value(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            out += ["", f"[{_key(k)}]"]
            for kk, vv in v.items():
                if isinstance(vv, list) and len(vv) > 6 and all(isinstance(x, str) for x in vv):
                    out.append(f"{_key(kk)} = {_long_list(vv)}")
                else:
                    out.append(f"{_key(kk)} = {_value(vv)}")
    return "\n".join(out) + "\n"


def patch_lines(patch: dict[str, Any]) -> str:
    """A patch as the profile lines a person would write: '[limits] memory = "512M"'."""
    parts = []
    for table, values in patch.items():
        if isinstance(values, dict):
            parts += [f"[{table}] {k} = {_value(v)}" for k, v in values.items()]
        else:
            parts.append(f"{table} = {_value(values)}")
    return "; ".join(parts)
