"""Rules for who the process is: capabilities it lacks, ids its user namespace does not map."""

from __future__ import annotations

import os
import stat

from workbench.core import events as ev
from workbench.diagnose.facts import Facts, sockaddr_of
from workbench.diagnose.rules import (CAP_BY_SYSCALL, CHOWN_CALLS, GLOBAL_CAPS, SETID_CALLS, Candidate,
                                      _evidence, _fix_text, _writes)

_NO_ID = (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)  # -1: "leave unchanged"
SOCK_RAW = 3
AF_PACKET = 17


def _needed_capability(sc: ev.Syscall) -> str | None:
    """The capability whose absence explains this failure, or None."""
    if sc.denied:
        return None
    if sc.name == "socket" and sc.errno == "EPERM" and len(sc.args) > 1:
        if sc.args[1] & 0xF == SOCK_RAW or sc.args[0] == AF_PACKET:
            return "net_raw"
        return None
    if sc.name == "bind" and sc.errno == "EACCES":
        addr = sockaddr_of(sc)
        if addr is not None and addr[0].startswith(("/", "@")):
            return None  # a unix socket path: file permissions, not a port
        if addr is None or addr[1] is None or addr[1] < 1024:
            return "net_bind_service"
        return None
    if sc.errno == "EPERM":
        return CAP_BY_SYSCALL.get(sc.name)
    return None


def capabilities(f: Facts) -> list[Candidate]:
    keep = list(f.profile.get("cap_keep", []))
    groups: dict[str, list[ev.Syscall]] = {}
    for sc in f.failed:
        cap = _needed_capability(sc)
        if cap is not None:
            groups.setdefault(cap, []).append(sc)
    out = []
    for cap, calls in groups.items():
        names = sorted({sc.name for sc in calls})
        what = f"{', '.join(names)} failed with {calls[-1].errno}"
        lines = f.evidence(calls)
        if cap in keep or cap in GLOBAL_CAPS:
            reason = ("it is kept, but the object belongs to the host's user namespace" if cap in keep else
                      "no user namespace can grant it: it acts on the whole machine")
            out.append(Candidate("user-namespace" if cap in keep else "capabilities", "capability-out-of-reach",
                                 f"{what}: it needs CAP_{cap.upper()}, and {reason}", 1.8, _evidence(lines),
                                 max(sc.ts_ns for sc in calls),
                                 fix="not fixable inside a sandbox: do this on the host, or drop the need for it",
                                 pid=calls[-1].pid, key=cap))
            continue
        patch = {"capabilities": {"keep": keep + [cap]}}
        out.append(Candidate(
            "capabilities", "missing-capability",
            f"{what} and seccomp did not refuse it: the sandbox has no CAP_{cap.upper()} "
            f"(capabilities.keep = {keep})", 2.0, _evidence(lines), max(sc.ts_ns for sc in calls),
            fix=_fix_text((), patch, f"keep {cap} (it only acts inside the sandbox's own namespaces)"),
            fix_profile=patch, pid=calls[-1].pid, key=cap))
    return out


def _unmapped_target(sc: ev.Syscall, uid: int, gid: int) -> tuple[int | None, int | None] | None:
    """(uid, gid) a chown/setuid asked for that the namespace does not map, or None."""
    if sc.errno != "EINVAL" or sc.denied:
        return None
    if sc.name in CHOWN_CALLS:
        i = CHOWN_CALLS[sc.name]
        want_uid, want_gid = sc.args[i], sc.args[i + 1]
    elif sc.name in SETID_CALLS:
        ids = [a for a in sc.args[:3 if "res" in sc.name else 2 if "re" in sc.name else 1] if a not in _NO_ID]
        is_gid = "gid" in sc.name
        want_uid, want_gid = (None, ids[0]) if is_gid and ids else (ids[0] if ids else None, None)
    else:
        return None
    bad_uid = want_uid if want_uid is not None and want_uid not in _NO_ID and want_uid != uid else None
    bad_gid = want_gid if want_gid is not None and want_gid not in _NO_ID and want_gid != gid else None
    return (bad_uid, bad_gid) if bad_uid is not None or bad_gid is not None else None


def user_namespace(f: Facts) -> list[Candidate]:
    p = f.profile
    uid, gid = p.get("uid", 0), p.get("gid", 0)
    host_uid, host_gid = p.get("host_uid", 65534), p.get("host_gid", 65534)
    if not (p.get("namespaces") or {}).get("user", True):
        return []
    out = []
    ids: dict[tuple, list[ev.Syscall]] = {}
    for sc in f.failed:
        target = _unmapped_target(sc, uid, gid)
        if target is not None:
            ids.setdefault(target, []).append(sc)
    for (want_uid, want_gid), calls in ids.items():
        asked = " and ".join(x for x in (f"uid {want_uid}" if want_uid is not None else "",
                                         f"gid {want_gid}" if want_gid is not None else "") if x)
        patch = {"user": {**({"uid": want_uid} if want_uid is not None else {}),
                          **({"gid": want_gid} if want_gid is not None else {})}}
        out.append(Candidate(
            "user-namespace", "unmapped-id",
            f"{calls[-1].name} to {asked} failed (EINVAL): the sandbox's user namespace maps only "
            f"uid {uid} and gid {gid} (host {host_uid}:{host_gid}); other ids do not exist inside",
            2.2, f.evidence(calls), max(sc.ts_ns for sc in calls),
            fix=_fix_text((), patch, "run the sandbox as that id so it is the mapped one"),
            fix_profile=patch, pid=calls[-1].pid, key=f"id:{want_uid}:{want_gid}"))
    out += _foreign_owner(f, host_uid, host_gid)
    return out


def _foreign_owner(f: Facts, host_uid: int, host_gid: int) -> list[Candidate]:
    """EACCES on a host file whose owner the namespace does not map (it shows as nobody inside)."""
    view = f.view
    groups: dict[tuple, list[ev.Syscall]] = {}
    for sc in f.failed:
        if sc.errno not in ("EACCES", "EPERM") or sc.denied or sc.name in CAP_BY_SYSCALL:
            continue  # privileged operations: the capability rule speaks for them
        # (bind/connect reach here with a path only for unix sockets: file permissions apply)
        for path in f.paths(sc):
            origin = view.origin(path)
            if origin.host_path is None:
                continue
            target = origin.host_path
            writes = _writes(sc)
            if not os.path.lexists(target):
                target = os.path.dirname(target)  # creating: the directory decides
                writes = True
            try:
                st = os.stat(target)
            except OSError:
                continue
            if st.st_uid == host_uid:
                continue  # the sandbox owns it: a mode problem, not a mapping one
            need = stat.S_IWOTH if writes else stat.S_IROTH
            if st.st_mode & need:
                continue
            groups.setdefault((target, st.st_uid, st.st_gid), []).append(sc)
    out = []
    for (target, owner, group), calls in groups.items():
        patch = {"user": {"host_uid": owner, "host_gid": group}}
        out.append(Candidate(
            "user-namespace", "unmapped-owner",
            f"{calls[-1].name} on {target} failed ({calls[-1].errno}): it belongs to host uid {owner}, which "
            f"the sandbox does not map (it shows as nobody); the sandbox's uid is host uid {host_uid}",
            2.0, f.evidence(calls), max(sc.ts_ns for sc in calls),
            fix=_fix_text((), patch, f"map the sandbox's user to the owner, or on the host: "
                                     f"chown {host_uid}:{host_gid} {target}"),
            fix_profile=patch, pid=calls[-1].pid, key=f"owner:{target}"))
    return out
