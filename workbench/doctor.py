"""`workbench doctor`: what this host supports, what is missing, and the exact fix for each."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass

from workbench.sandbox import cgroups

SETUP = "run scripts/setup.sh as root"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    needed_for: str = ""


def _uname() -> str:
    return os.uname().release


def _check_root() -> Check:
    ok = os.geteuid() == 0
    return Check("root", ok, "running as root" if ok else f"running as uid {os.geteuid()}",
                 "" if ok else "run workbench as root (sudo): sandboxes write uid maps and cgroups",
                 "everything")


def _check_namespace(name: str) -> Check:
    ok = os.path.exists(f"/proc/self/ns/{name}")
    return Check(f"namespace:{name}", ok, "available" if ok else "the kernel lacks it",
                 "" if ok else f"use a kernel built with CONFIG_{name.upper()}_NS", "native backend")


def _check_userns() -> Check:
    path = "/proc/sys/user/max_user_namespaces"
    try:
        value = int(open(path).read())
    except OSError:
        return Check("user namespaces", True, "no limit file", "", "native backend")
    ok = value > 0
    return Check("user namespaces", ok, f"max_user_namespaces = {value}",
                 "" if ok else "sysctl -w user.max_user_namespaces=15000", "native backend")


def _check_cgroups() -> list[Check]:
    layout = cgroups.detect_layout()
    v2 = cgroups.v2_root()
    out = [Check("cgroup layout", layout != "none",
                 {"unified": "cgroup v2 with controllers at /sys/fs/cgroup",
                  "hybrid": "cgroup v1 controllers, plus a cgroup2 hierarchy for ids",
                  "none": "no cgroup hierarchy mounted"}[layout],
                 "" if layout != "none" else "mount -t cgroup2 none /sys/fs/cgroup", "limits")]
    out.append(Check("cgroup v2 ids", v2 is not None, f"v2 hierarchy at {v2}" if v2 else "no cgroup2 mounted",
                     "" if v2 else "mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified",
                     "probes filtered by cgroup (else a pid-tree filter is used)"))
    if layout == "hybrid":
        for ctl in ("memory", "pids", "cpu", "cpuacct"):
            ok = os.path.isdir(f"{cgroups.ROOT}/{ctl}")
            out.append(Check(f"cgroup v1 {ctl}", ok, "mounted" if ok else "not mounted",
                             "" if ok else f"mount -t cgroup -o {ctl} none {cgroups.ROOT}/{ctl}", "limits"))
    return out


def _check_seccomp() -> list[Check]:
    try:
        import seccomp  # noqa: F401
        ok, detail = True, "libseccomp bindings importable"
    except ImportError:
        ok, detail = False, "python3-seccomp missing"
    out = [Check("seccomp", ok, detail, "" if ok else "apt-get install python3-seccomp", "seccomp layer")]
    actions = open("/proc/sys/kernel/seccomp/actions_avail").read().split() if os.path.exists(
        "/proc/sys/kernel/seccomp/actions_avail") else []
    ok = "log" in actions
    out.append(Check("seccomp log flag", ok, f"actions: {' '.join(actions) or 'unknown'}",
                     "" if ok else "a kernel with SECCOMP_FILTER_FLAG_LOG (4.14+)", "audit fallback for denials"))
    return out


def _check_bcc() -> list[Check]:
    out = []
    try:
        import bcc  # noqa: F401
        out.append(Check("bcc", True, "python3-bpfcc importable", "", "eBPF probes"))
    except ImportError:
        out.append(Check("bcc", False, "bcc is not importable by this interpreter",
                         "apt-get install python3-bpfcc and use a venv made from /usr/bin/python3 "
                         f"with --system-site-packages ({SETUP})", "eBPF probes"))
    build = f"/lib/modules/{_uname()}/build"
    ok = os.path.exists(f"{build}/include")
    out.append(Check("kernel headers", ok, f"{build} -> {os.path.realpath(build)}" if ok else f"{build} missing",
                     "" if ok else "apt-get install linux-headers-amd64, then link "
                     f"{build} and /source to /usr/src/linux-headers-*-amd64 and -common ({SETUP})",
                     "eBPF probes"))
    ok = os.path.exists("/sys/kernel/tracing/events/raw_syscalls")
    out.append(Check("tracefs", ok, "mounted at /sys/kernel/tracing" if ok else "not mounted",
                     "" if ok else "mount -t tracefs tracefs /sys/kernel/tracing", "eBPF probes"))
    ok = os.path.exists("/sys/kernel/btf/vmlinux")
    out.append(Check("BTF", ok, "/sys/kernel/btf/vmlinux present" if ok else "no kernel BTF",
                     "" if ok else "a kernel with CONFIG_DEBUG_INFO_BTF (per-task syscall state, exit codes, SIGSYS)",
                     "eBPF probes"))
    out.append(_check_bpf_types())
    events = "/sys/kernel/tracing/events"
    for tp in ("raw_syscalls/sys_enter", "raw_syscalls/sys_exit", "sched/sched_process_fork",
               "sched/sched_process_exec", "sched/sched_process_exit", "task/task_newtask",
               "signal/signal_generate", "signal/signal_deliver", "oom/mark_victim", "sched/sched_switch",
               "cgroup/cgroup_attach_task", "timer/hrtimer_expire_entry"):
        ok = os.path.isdir(f"{events}/{tp}")
        out.append(Check(f"tracepoint {tp.replace('/', ':')}", ok, "present" if ok else "missing",
                         "" if ok else "mount tracefs, or use a kernel with this tracepoint",
                         "eBPF probes"))
    try:
        from workbench.tracing.loader import check_host

        check_host()
        out.append(Check("probes can load", True, "every requirement of the bcc probes is met", "", "eBPF probes"))
    except Exception as exc:  # noqa: BLE001 - TracingUnavailable carries the cause and fix
        out.append(Check("probes can load", False, getattr(exc, "cause", str(exc)),
                         getattr(exc, "fix", "") or "", "eBPF probes"))
    return out


def _check_bpf_types() -> Check:
    """Ask the kernel which program types load, with a two-instruction program (no bcc needed)."""
    libc = ctypes.CDLL(None, use_errno=True)
    prog = (ctypes.c_uint64 * 2)(0x00000000000000B7, 0x0000000000000095)  # r0 = 0; exit
    license_ = ctypes.create_string_buffer(b"GPL")
    results = {}
    for name, ptype in (("tracepoint", 5), ("raw_tracepoint", 17), ("perf_event", 7)):
        attr = (ctypes.c_uint8 * 128)()
        ctypes.memmove(attr, ctypes.byref(ctypes.c_uint32(ptype)), 4)
        ctypes.memmove(ctypes.addressof(attr) + 4, ctypes.byref(ctypes.c_uint32(2)), 4)
        ctypes.memmove(ctypes.addressof(attr) + 8, ctypes.byref(ctypes.c_uint64(ctypes.addressof(prog))), 8)
        ctypes.memmove(ctypes.addressof(attr) + 16, ctypes.byref(ctypes.c_uint64(ctypes.addressof(license_))), 8)
        fd = libc.syscall(321, 5, attr, 128)  # bpf(BPF_PROG_LOAD)
        results[name] = fd >= 0
        if fd >= 0:
            os.close(fd)
    ok = results["tracepoint"] and results["raw_tracepoint"]
    # kprobe programs load even where they cannot attach; the kernel's kprobe_events file tells.
    results["kprobes"] = os.path.exists("/sys/kernel/tracing/kprobe_events")
    detail = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in results.items())
    return Check("BPF program types", ok, detail,
                 "" if ok else "run as root on a kernel with CONFIG_BPF_SYSCALL and tracepoints",
                 "eBPF probes (kprobes are not needed)")


def _check_tool(name: str, package: str, needed_for: str, version_args: list[str]) -> Check:
    path = shutil.which(name)
    if not path:
        return Check(name, False, "not installed", f"apt-get install {package}", needed_for)
    try:
        out = subprocess.run([path, *version_args], capture_output=True, text=True, timeout=5)
        version = (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    return Check(name, True, f"{path} {version}".strip(), "", needed_for)


def run_checks() -> list[Check]:
    checks = [_check_root(), _check_userns()]
    checks += [_check_namespace(n) for n in ("user", "pid", "mnt", "net", "uts", "ipc", "cgroup")]
    checks += _check_cgroups()
    checks += _check_seccomp()
    checks += _check_bcc()
    checks.append(_check_tool("bwrap", "bubblewrap", "bwrap backend", ["--version"]))
    checks.append(_check_tool("runsc", "runsc", "gvisor backend", ["--version"]))
    return checks


def as_dict(checks: list[Check]) -> dict:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}
