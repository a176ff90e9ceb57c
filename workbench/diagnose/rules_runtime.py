"""Rules for what the process ran into: cgroup limits, the network it does not have, a binary or
interpreter it could not exec, a syscall gVisor's Sentry does not implement."""

from __future__ import annotations

import ipaddress
import os
import re

from workbench.core import events as ev
from workbench.diagnose.facts import Facts, sockaddr_of
from workbench.diagnose.fixes import size_text
from workbench.diagnose.rules import (EXEC_CALLS, FORK_CALLS, NET_ERRNOS, RESOLVE_ERRORS, SIGKILL, Candidate,
                                      _evidence, _fix_text, bind_fix)
from workbench.diagnose.view import SandboxView, read_interpreter, top_dir

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --- cgroups -----------------------------------------------------------------------------------


def memory_oom(f: Facts) -> list[Candidate]:
    limit = f.profile.get("memory") or (f.sample.memory_limit_bytes if f.sample else None)
    killed_by_9 = f.exited is not None and f.exited.signal == SIGKILL
    near_limit = bool(limit) and f.peak_memory >= 0.9 * limit
    if not (f.ooms or f.oom_kills or (killed_by_9 and near_limit)):
        return []
    lines = [f"{f.when(o.ts_ns)} the OOM killer chose pid {o.pid} ({o.comm})"
             + (f", {o.pages} pages of virtual memory" if o.pages else "") for o in f.ooms]
    if f.oom_kills and not f.ooms:
        lines.append(f"memory.events: oom_kill {f.oom_kills}")
    if limit:
        lines.append(f"memory peak {size_text(f.peak_memory) if f.peak_memory else '?'} of a {size_text(limit)} limit")
    if killed_by_9:
        lines.append(f"{f.when(f.exited.ts_ns)} the command was killed by SIGKILL")
    last = max([o.ts_ns for o in f.ooms] + ([f.exited.ts_ns] if f.exited else []) + [f.t0 or 0])
    if limit:
        # The peak is capped by the limit, so how much the app wants is unknown: propose room
        # for a typical runtime (doubling a small limit rarely is), and let --fix verify it.
        new = size_text(max(limit * 2, limit + (256 << 20)) >> 20 << 20)
        options, patch = ("--memory", new), {"limits": {"memory": new}}
        fix = _fix_text(options, patch, "raise the memory limit (what the app needs is unknown: "
                                        "--fix re-runs to check)")
    else:
        options, patch, fix = (), {}, "the host itself ran out of memory: free memory or set a limit"
    pid = f.ooms[-1].pid if f.ooms else None
    return [Candidate("cgroup-memory", "oom-kill",
                      f"the sandbox's memory cgroup ran out ({size_text(limit) if limit else 'no'} limit) and the "
                      f"kernel's OOM killer killed {f.ooms[-1].comm if f.ooms else 'a process'}",
                      3.0 if (f.ooms or f.oom_kills) else 2.0, _evidence(lines), last, fix=fix,
                      fix_options=options, fix_profile=patch, pid=pid, key="oom")]


def pids_limit(f: Facts) -> list[Candidate]:
    limit = f.profile.get("pids") or (f.sample.pids_limit if f.sample else None)
    calls = [sc for sc in f.failed if sc.name in FORK_CALLS and sc.errno == "EAGAIN" and not sc.denied]
    at_limit = bool(limit) and f.peak_pids >= limit
    if not calls and not (at_limit and f.failed_run and "fork" in f.stderr_text().lower()):
        return []
    lines = f.evidence(calls)
    if limit:
        lines.append(f"pids peak {f.peak_pids} of a limit of {limit}")
    last = max([sc.ts_ns for sc in calls] + [f.t0 or 0])
    if limit:
        new = str(limit * 2 + len(calls))
        options, patch = ("--pids", new), {"limits": {"pids": int(new)}}
        return [Candidate("cgroup-pids", "pids-limit",
                          f"fork/clone failed with EAGAIN: the sandbox "
                          f"reached its limit of {limit} processes and threads (pids cgroup)",
                          2.5, _evidence(lines), last, fix=_fix_text(options, patch, "raise the pids limit"),
                          fix_options=options, fix_profile=patch, pid=calls[-1].pid if calls else None, key="pids")]
    nproc = (f.profile.get("rlimits") or {}).get("nproc")
    why = f"rlimits.nproc = {nproc}" if nproc else "the host's own process limit"
    return [Candidate("cgroup-pids", "pids-limit", f"fork/clone failed with EAGAIN: {why}", 1.8, _evidence(lines),
                      last, fix="raise rlimits.nproc or the host's limit", key="pids")]


# --- network -----------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def network(f: Facts) -> list[Candidate]:
    mode = f.profile.get("net", "none")
    if mode == "host":
        return []
    groups: dict[tuple, list[ev.Syscall]] = {}
    resolver: list[ev.Syscall] = []
    for sc in f.failed:
        if sc.denied or sc.errno not in NET_ERRNOS or sc.name not in ("connect", "sendto", "sendmsg", "bind"):
            continue
        addr = sockaddr_of(sc)
        if addr is not None and addr[0].startswith(("/", "@")):
            continue  # unix sockets are files: the mount rules see them
        if addr is not None and addr[1] == 53:
            resolver.append(sc)
            continue
        loop = addr is not None and _is_loopback(addr[0])
        groups.setdefault((sc.errno, loop), []).append(sc)
    out = []
    for (errno, loop), calls in groups.items():
        target = sockaddr_of(calls[-1])
        where = f"{target[0]}:{target[1]}" if target and target[1] is not None else (target[0] if target else "an address")
        if loop and errno == "ECONNREFUSED":
            summary = (f"connect to {where} refused: the sandbox has its own loopback (network.mode = {mode!r}); "
                       "services on the host's 127.0.0.1 are not on it")
            options, extra = ("--net", "host"), "or run the service inside the sandbox (--net host shares the host's network)"
        elif loop:
            summary = f"{calls[-1].name} to {where} failed ({errno}): network.mode = {mode!r} has no loopback up"
            options, extra = ("--net", "loopback"), ""
        else:
            summary = (f"{calls[-1].name} to {where} failed ({errno}): network.mode = {mode!r} gives the sandbox "
                       f"no route there")
            options = ("--net", "veth") if mode != "veth" else ("--net", "host")
            extra = ("veth reaches the host side of a private link (no NAT)" if mode != "veth"
                     else "the veth link reaches only the host; share the host's network to go further")
        patch = {"network": {"mode": options[1]}, **({"namespaces": {"net": False}} if options[1] == "host" else {})}
        out.append(Candidate("network", "network-isolated", summary, 2.0,
                             f.evidence(calls), max(sc.ts_ns for sc in calls),
                             fix=_fix_text(options, {}, extra), fix_options=options, fix_profile=patch,
                             pid=calls[-1].pid, key=f"{errno}:{loop}"))
    text = f.stderr_text().lower()
    hint = next((phrase for phrase in RESOLVE_ERRORS if phrase in text), None)
    if (hint or resolver) and mode in ("none", "loopback"):
        lines = [f.describe(sc) for sc in resolver]
        if hint:
            lines.append(f"stderr: ...{hint}...")
        options = ("--net", "veth")
        out.append(Candidate("network", "name-resolution",
                             f"name resolution failed: network.mode = {mode!r}, so no DNS server is reachable",
                             2.0 if resolver else 1.6, _evidence(lines),
                             max([sc.ts_ns for sc in resolver] + [f.end_ns or f.t0 or 0]),
                             fix=_fix_text(options, {}, "give it a network with a resolver, or bind an /etc/hosts "
                                                        "that names the hosts it needs"),
                             fix_options=options, fix_profile={"network": {"mode": "veth"}}, key="dns"))
    return out


# --- exec --------------------------------------------------------------------------------------


def _find(view: SandboxView, name: str, path_var: str) -> tuple[str | None, str | None]:
    """(path inside the sandbox, path on the host) of a command, either None when not found there."""
    candidates = [name] if "/" in name else [os.path.join(d, name) for d in path_var.split(":") if d]
    inside = next((c for c in candidates if view.exists_inside(c)), None)
    host = next((c for c in candidates if os.path.exists(c)), None)
    return inside, host


def _exec_candidate(f: Facts, view: SandboxView, name: str, errno: str, calls: list[ev.Syscall],
                    main: bool, ts: int) -> Candidate | None:
    path_var = (f.profile.get("env") or {}).get("PATH", DEFAULT_PATH)
    inside, host = _find(view, name, path_var)
    lines = f.evidence(calls) or [f"{f.when(ts)} exec of {name!r} failed: {errno}"]
    strength = 3.0 if main else 2.4
    pid = calls[-1].pid if calls else f.main_pid
    if inside is None:
        if host is None:
            return Candidate("exec", "command-missing", f"{name}: no such command, in the sandbox or on the host",
                             strength - 0.5, _evidence(lines), ts, fix="check the command's name and PATH",
                             pid=pid, key=name)
        src = os.path.dirname(host)
        options, patch = bind_fix(f, view, src, short=True)
        where = view.origin(host)
        seen = "a fresh /tmp" if where.kind == "fresh" else f"the rootfs {view.rootfs}"
        words = f"bind {src} into the sandbox" if options else f"install it in the rootfs {view.rootfs}"
        return Candidate("exec", "binary-missing",
                         f"{name}: {host} exists on the host but not in the sandbox, which sees {seen} there",
                         strength, _evidence(lines), ts, fix=_fix_text(options, {}, words),
                         fix_options=options, fix_profile=patch, pid=pid, key=name)
    origin = view.origin(inside)
    if errno in ("ENOENT", "ELIBBAD") and origin.host_path:
        interp = read_interpreter(origin.host_path)
        if interp is not None and not view.exists_inside(interp[1]):
            kind = "interpreter" if interp[0] == "script" else "dynamic loader"
            if os.path.exists(interp[1]):
                src = os.path.dirname(interp[1]) if interp[1].startswith("/tmp/") else top_dir(interp[1])
                options, patch = bind_fix(f, view, src, short=True)
                fix = _fix_text(options, {}, f"bring {interp[1]} into the sandbox" if options else
                                f"install {interp[1]} (and what it loads) in the rootfs {view.rootfs}")
            else:
                options, patch, fix = (), {}, f"install {interp[1]} in the sandbox's root, or change the #! line"
            return Candidate("exec", "interpreter-missing",
                             f"{inside} exists but its {kind} {interp[1]} is missing in the sandbox, so exec says ENOENT",
                             strength, _evidence(lines), ts, fix=fix, fix_options=options, fix_profile=patch,
                             pid=pid, key=name)
    if errno == "EACCES":
        return Candidate("exec", "not-executable",
                         f"{inside} cannot be executed (EACCES): no execute permission, or a noexec mount",
                         strength, _evidence(lines), ts, fix=f"chmod +x {origin.host_path or inside}",
                         pid=pid, key=name)
    if errno == "ENOEXEC":
        return Candidate("exec", "bad-format", f"{inside} is not a format the kernel runs (no #! line?)",
                         strength, _evidence(lines), ts, fix="add a #! line, or run it through its interpreter",
                         pid=pid, key=name)
    return None


def exec_failures(f: Facts) -> list[Candidate]:
    view = f.view
    started = {os.path.basename(e.filename) for e in f.execs}
    groups: dict[str, list[ev.Syscall]] = {}
    for sc in f.failed:
        if sc.name in EXEC_CALLS and not sc.denied:
            paths = f.paths(sc)
            if paths and os.path.basename(paths[0]) not in started:  # a PATH search that found it later is fine
                groups.setdefault(paths[0], []).append(sc)
    out = []
    main_name = f.command[0] if f.command else None
    exec_error = f.exited.exec_error if f.exited else None
    by_name: dict[str, list[ev.Syscall]] = {}
    for path, calls in groups.items():
        by_name.setdefault(os.path.basename(path), []).extend(calls)
    for base, calls in by_name.items():
        tried = [p for sc in calls for p in f.paths(sc)]
        inside = next((p for p in tried if view.exists_inside(p)), None)
        if inside is not None:
            name = inside
        elif main_name and os.path.basename(main_name) == base:
            name = main_name  # searched along PATH: look it up the same way
        else:
            name = next((p for p in tried if os.path.exists(p)), tried[-1])
        errno = next((sc.errno for sc in calls if sc.errno != "ENOENT"), "ENOENT")
        is_main = bool(exec_error) and main_name is not None and os.path.basename(main_name) == base
        c = _exec_candidate(f, view, name, errno, calls, is_main, max(sc.ts_ns for sc in calls))
        if c is not None:
            out.append(c)
    if exec_error and main_name and not any(os.path.basename(main_name) == b for b in by_name):
        c = _exec_candidate(f, view, main_name, exec_error, [], True, f.exited.ts_ns)
        if c is not None:
            out.append(c)
    return out


# --- gVisor ------------------------------------------------------------------------------------


def gvisor_unsupported(f: Facts) -> list[Candidate]:
    if f.backend != "gvisor":
        return []
    groups: dict[str, list[ev.Syscall]] = {}
    for sc in f.failed:
        if sc.errno == "ENOSYS" and not sc.denied and not sc.decoded.get("gvisor_harmless"):
            groups.setdefault(sc.name, []).append(sc)  # (harmless: libc falls back, e.g. rseq, clone3)
    lines_by_name = {name: [f.describe(sc) for sc in calls] for name, calls in groups.items()}
    for n in f.notices:
        low = n.text.lower()
        if "unsupported" in low or "not implemented" in low or "not supported" in low:
            named = re.search(r"syscall (\w+)\(", n.text)
            key = named.group(1) if named and named.group(1) in lines_by_name else "(sentry)"
            lines_by_name.setdefault(key, []).append(f"{f.when(n.ts_ns)} {n.source}: {n.text}")
    out = []
    for name, lines in lines_by_name.items():
        calls = groups.get(name, [])
        what = f"syscall {name}" if calls else "a feature"
        options = ("--backend", "native")
        out.append(Candidate("gvisor", "gvisor-unsupported",
                             f"gVisor's Sentry does not implement {what} (ENOSYS): the app needs the host kernel",
                             2.3, _evidence(lines), max([sc.ts_ns for sc in calls] + [f.t0 or 0]),
                             fix=_fix_text(options, {}, "run it on the native or bwrap backend"),
                             fix_options=options, pid=calls[-1].pid if calls else None, key=name))
    return out
