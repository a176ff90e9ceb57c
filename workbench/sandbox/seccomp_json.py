"""Docker / OCI seccomp JSON imported as the seccomp table of a profile (`seccomp.import`).
The other direction, writing one from a traced run, is workbench/diagnose/seccomp_json.py.

Our seccomp table is one list and one action (`mode = "allow"|"deny"`); Docker's format can say
more (per-rule actions, argument conditions, rules that only apply with some capability or on
some architecture). Importing keeps the meaning where it can and stays on the safe side where it
cannot: a rule gated on a capability the sandbox would have to be given is left out, rules for
other architectures are left out, and names libseccomp does not know on x86-64 are dropped.
"""

from __future__ import annotations

import collections
import errno as errno_mod
import json
from typing import Any

from workbench.core.errors import ProfileError
from workbench.core import syscalls

ALLOWS = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
_ACTIONS = {"SCMP_ACT_ERRNO": "errno", "SCMP_ACT_KILL": "kill", "SCMP_ACT_KILL_PROCESS": "kill",
            "SCMP_ACT_KILL_THREAD": "kill", "SCMP_ACT_TRAP": "trap", "SCMP_ACT_LOG": "log",
            "SCMP_ACT_TRACE": "errno", "SCMP_ACT_NOTIFY": "errno"}
_OUR_ARCHES = {"SCMP_ARCH_X86_64", "amd64", "x86_64"}


def known_syscall(name: str) -> bool:
    """Whether libseccomp knows `name` on x86-64 (profiles only accept those)."""
    return syscalls.number_of(name) is not None


def _applies(rule: dict[str, Any]) -> bool:
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    if includes.get("caps"):
        return False  # only for containers given that capability: not ours by default
    arches = includes.get("arches")
    if arches and not set(arches) & _OUR_ARCHES:
        return False
    if set(excludes.get("arches") or ()) & _OUR_ARCHES:
        return False
    return True


class _Checker:
    """Type checks that name the place in the file: 'seccomp.json: syscalls[2].names: expected ...'."""

    def __init__(self, path: str):
        self.path = str(path)

    def fail(self, where: str, what: str) -> ProfileError:
        return ProfileError(f"{self.path}: {where}" if where else self.path, what,
                            "give a Docker or OCI seccomp JSON profile")

    def strings(self, value: Any, where: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, f"expected a list of strings, got {json.dumps(value)[:60]}")
        return value

    def number(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value not in errno_mod.errorcode:
            raise self.fail(where, f"expected an errno number, got {json.dumps(value)[:60]}")
        return value

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {json.dumps(value)[:60]}")
        for key in ("caps", "arches"):
            self.strings(value.get(key), f"{where}.{key}")
        return value


def load_docker(path: str) -> dict[str, Any]:
    """A Docker or OCI seccomp JSON file as a profile's `seccomp` table (plain data for
    `workbench.sandbox.profile.from_dict`). ProfileError (one line) when it cannot be used."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ProfileError(str(path), f"cannot read the seccomp profile ({exc.strerror})") from None
    except ValueError as exc:
        raise ProfileError(str(path), f"not valid JSON ({exc})", "give a Docker or OCI seccomp profile") from None
    check = _Checker(path)
    if isinstance(data, dict) and isinstance(data.get("linux"), dict):  # a whole OCI config.json
        data = data["linux"].get("seccomp") or {}
    if not isinstance(data, dict) or "defaultAction" not in data:
        raise ProfileError(str(path), "not a seccomp profile (no defaultAction)",
                           "give a Docker or OCI seccomp JSON profile")
    default = data["defaultAction"]
    if not isinstance(default, str) or (default not in ALLOWS and default not in _ACTIONS):
        raise check.fail("defaultAction", f"unknown action {json.dumps(default)[:60]}")
    allow_by_default = default in ALLOWS
    rules = data.get("syscalls")
    if rules is not None and not isinstance(rules, list):
        raise check.fail("syscalls", "expected a list of rules")
    listed: dict[str, None] = {}
    actions: collections.Counter[str] = collections.Counter()
    errnos: collections.Counter[int] = collections.Counter()
    for i, rule in enumerate(rules or []):
        where = f"syscalls[{i}]"
        if not isinstance(rule, dict):
            raise check.fail(where, "expected an object")
        names = list(check.strings(rule.get("names"), f"{where}.names"))
        if rule.get("name") is not None:
            if not isinstance(rule["name"], str):
                raise check.fail(f"{where}.name", "expected a string")
            names.append(rule["name"])
        action = rule.get("action")
        if not isinstance(action, str) or (action not in ALLOWS and action not in _ACTIONS):
            raise check.fail(f"{where}.action", f"unknown action {json.dumps(action)[:60]}")
        check.table(rule.get("includes"), f"{where}.includes")
        check.table(rule.get("excludes"), f"{where}.excludes")
        errno_ret = check.number(rule["errnoRet"], f"{where}.errnoRet") if "errnoRet" in rule else None
        if not _applies(rule):
            continue
        allows = action in ALLOWS
        if allows == allow_by_default:
            continue  # same as the default: nothing to list
        # An allow with argument conditions (Docker's clone, personality...) is allowed outright:
        # our table has no conditions, and refusing would break what the profile means to allow.
        for name in names:
            if known_syscall(name):
                listed[name] = None
        if not allows:
            actions[_ACTIONS[action]] += len(names)
            if errno_ret is not None:
                errnos[errno_ret] += len(names)
    default_errno = check.number(data.get("defaultErrnoRet", errno_mod.EPERM), "defaultErrnoRet")
    if not allow_by_default and "clone3" not in listed and known_syscall("clone3"):
        # Docker answers clone3 with ENOSYS so libc falls back to clone; an allow-list would answer
        # EPERM, on which glibc does not fall back and every fork fails. Allow it instead.
        listed["clone3"] = None
    if allow_by_default:
        mode = "deny"
        action = actions.most_common(1)[0][0] if actions else "errno"
        errno_value = errnos.most_common(1)[0][0] if errnos else default_errno
    else:
        mode = "allow"
        action = _ACTIONS[default]
        errno_value = default_errno
    if mode == "allow" and not listed:
        raise ProfileError(str(path), "the profile allows no syscall this machine knows",
                           "check its architectures and names")
    return {"mode": mode, "action": action, "errno": errno_mod.errorcode[errno_value],
            "syscalls": list(listed), "deny_clone_newuser": mode == "deny"}
