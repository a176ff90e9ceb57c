"""Runs INSIDE a sandbox: tries every way out the hostile suite knows, and prints one JSON object
{attempt: {"escaped": bool, "errno": name-or-None, "detail": ...}} on stdout.

Each attempt is a plain syscall through libc (ctypes), not a tool, so that what the kernel
answered is exactly what is reported. Parameters come as one JSON argument from the test.
"""

import ctypes
import errno
import json
import os
import socket
import subprocess
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
P = json.loads(sys.argv[1])
results = {}

SYS = {"ptrace": 101, "mount": 165, "fsopen": 430, "open_tree": 428, "unshare": 272, "clone": 56,
       "clone3": 435, "bpf": 321, "perf_event_open": 298, "keyctl": 250, "add_key": 248,
       "sethostname": 170, "open_by_handle_at": 304, "init_module": 175, "chroot": 161,
       "setns": 308, "pivot_root": 155, "io_uring_setup": 425}
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x00020000, 17
MS_REMOUNT, MS_BIND = 32, 4096


def arg(a):
    if isinstance(a, bytes):
        return ctypes.c_char_p(a)
    return ctypes.c_long(a)


def syscall(name, *args):
    """(return value, errno name or None)."""
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(SYS[name]), *[arg(a) for a in args])
    if r == 0 and name == "clone":  # the child of a clone that went through: leave at once
        os._exit(0)
    e = ctypes.get_errno()
    return r, (errno.errorcode.get(e) if r == -1 else None)


def refused(name, *args):
    r, e = syscall(name, *args)
    return {"escaped": r != -1, "errno": e}


def attempt(name):
    def wrap(fn):
        try:
            results[name] = fn()
        except OSError as exc:
            results[name] = {"escaped": False, "errno": errno.errorcode.get(exc.errno), "detail": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a broken attempt is reported, not hidden
            results[name] = {"escaped": None, "errno": None, "detail": repr(exc)}
        return fn
    return wrap


@attempt("ptrace_host_process")
def _():
    return refused("ptrace", 16, P["host_pid"], 0, 0)  # PTRACE_ATTACH


@attempt("ptrace_sandbox_init")
def _():
    return refused("ptrace", 16, 1, 0, 0)


@attempt("kill_host_pid")
def _():
    os.kill(P["host_pid"], 9)
    return {"escaped": True, "errno": None}


@attempt("kill_everything_visible")
def _():
    os.kill(-1, 9)  # everything in the pid namespace but us and init: nothing on the host
    return {"escaped": False, "errno": None, "detail": "sent"}


@attempt("mount_tmpfs")
def _():
    return refused("mount", b"none", b"/tmp", b"tmpfs", 0, 0)


@attempt("remount_root_rw")
def _():
    return refused("mount", 0, b"/", 0, MS_REMOUNT | MS_BIND, 0)


@attempt("fsopen_new_mount_api")
def _():
    return refused("fsopen", b"tmpfs", 0)


@attempt("open_tree_clone")
def _():
    return refused("open_tree", -100, b"/", 1)  # OPEN_TREE_CLONE


@attempt("pivot_root")
def _():
    return refused("pivot_root", b"/tmp", b"/tmp")


@attempt("chroot")
def _():
    return refused("chroot", b"/tmp")


@attempt("proc_pid_root_and_cwd")
def _():
    seen = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for link in ("root", "cwd"):
            target = f"/proc/{pid}/{link}{P['host_marker']}"
            try:
                with open(target) as f:
                    seen.append((pid, link, f.read()))
            except OSError:
                pass
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    return {"escaped": bool(seen) or P["host_pid"] in pids, "errno": None, "detail": {"seen": seen, "pids": pids}}


@attempt("unshare_user_namespace")
def _():
    return refused("unshare", CLONE_NEWUSER)


@attempt("unshare_mount_namespace")
def _():
    return refused("unshare", CLONE_NEWNS)


@attempt("clone_new_user_namespace")
def _():
    return refused("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)


@attempt("clone3")
def _():
    return refused("clone3", 0, 0)


@attempt("setns_host")
def _():
    fd = os.open("/proc/self/ns/user", os.O_RDONLY)
    try:
        return refused("setns", fd, 0)
    finally:
        os.close(fd)


@attempt("raw_socket")
def _():
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    return {"escaped": True, "errno": None}


@attempt("packet_socket")
def _():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    return {"escaped": True, "errno": None}


@attempt("bpf")
def _():
    return refused("bpf", 5, 0, 0)  # BPF_PROG_LOAD


@attempt("perf_event_open")
def _():
    return refused("perf_event_open", 0, 0, -1, -1, 0)


@attempt("keyctl")
def _():
    return refused("keyctl", 0, -3, 0, 0, 0)  # KEYCTL_GET_KEYRING_ID, user session keyring


@attempt("add_key")
def _():
    return refused("add_key", b"user", b"wb", b"x", 1, -3)


@attempt("open_by_handle_at")
def _():
    return refused("open_by_handle_at", -100, 0, 0)


@attempt("io_uring_setup")
def _():
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    return refused("io_uring_setup", 8, ctypes.addressof(params))


@attempt("init_module")
def _():
    return refused("init_module", 0, 0, b"")


def _write(path, data=b"1"):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return {"escaped": True, "errno": None}


@attempt("write_sysrq_trigger")
def _():
    return _write("/proc/sysrq-trigger", b"h")


@attempt("write_core_pattern")
def _():
    return _write("/proc/sys/kernel/core_pattern", b"|/tmp/evil")


@attempt("write_sys_cgroup")
def _():
    return _write(P["host_cgroup_procs"], str(os.getpid()).encode())


@attempt("write_sys_kernel")
def _():
    return _write("/sys/kernel/mm/transparent_hugepage/enabled", b"never")


@attempt("sethostname")
def _():
    return refused("sethostname", b"evil", 4)


@attempt("write_proc_hostname")
def _():
    return _write("/proc/sys/kernel/hostname", b"evil")


@attempt("loopback_tcp_to_host_port")
def _():
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", P["port"]))
        return {"escaped": True, "errno": None}
    finally:
        s.close()


@attempt("abstract_unix_socket")
def _():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect("\0" + P["abstract"])
        return {"escaped": True, "errno": None}
    finally:
        s.close()


@attempt("symlink_out_of_bind_absolute")
def _():
    return _write(P["bind"] + "/absolute-link", b"escaped")


@attempt("symlink_out_of_bind_relative")
def _():
    fd = os.open(P["bind"] + "/relative-link", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"escaped")
    os.close(fd)
    return {"escaped": False, "errno": None, "detail": "wrote inside the sandbox's own view"}


@attempt("symlink_planted_now")
def _():
    # The sandbox plants its own link to the host path and writes through it.
    link = P["bind"] + "/planted"
    os.symlink(P["victim"], link)
    fd = os.open(link, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"escaped")
    os.close(fd)
    return {"escaped": False, "errno": None, "detail": "wrote inside the sandbox's own view"}


@attempt("dotdot_out_of_bind")
def _():
    return _write(P["bind"] + "/../" + os.path.basename(os.path.dirname(P["victim"])) + "/victim", b"escaped")


@attempt("setuid_root_binary")
def _():
    out = subprocess.run([P["bind"] + "/setuid-probe", P["bind"] + "/setuid-wrote"], capture_output=True, text=True)
    return {"escaped": None, "errno": None, "detail": out.stdout.strip() + out.stderr.strip()}


@attempt("file_capability_binary")
def _():
    out = subprocess.run([P["bind"] + "/filecap-probe", P["bind"] + "/filecap-wrote"], capture_output=True, text=True)
    return {"escaped": None, "errno": None, "detail": out.stdout.strip() + out.stderr.strip()}


@attempt("i386_syscall_abi")
def _():
    out = subprocess.run([P["bind"] + "/other-abis", "i386"], capture_output=True, text=True)
    return {"escaped": out.returncode == 0, "errno": None, "detail": [out.returncode, out.stdout.strip()]}


@attempt("x32_syscall_abi")
def _():
    out = subprocess.run([P["bind"] + "/other-abis", "x32"], capture_output=True, text=True)
    return {"escaped": out.returncode == 0, "errno": None, "detail": [out.returncode, out.stdout.strip()]}


@attempt("overwrite_own_executable")
def _():
    return _write("/proc/self/exe", b"\x7fELF")


@attempt("host_terminals")
def _():
    # The host's ptys (a user's shell) live in the host's devpts; the sandbox has its own instance.
    others = sorted(n for n in os.listdir("/dev/pts") if n != "ptmx")
    return {"escaped": bool(others), "errno": None, "detail": others}


@attempt("controlling_terminal")
def _():
    os.close(os.open("/dev/tty", os.O_RDWR))  # no controlling terminal after setsid(): ENXIO
    return {"escaped": True, "errno": None}


@attempt("kernel_log_and_memory")
def _():
    opened = []
    for path in ("/dev/kmsg", "/dev/mem", "/dev/core", "/dev/console", "/proc/kcore"):
        try:
            os.close(os.open(path, os.O_RDONLY))
            opened.append(path)
        except OSError as exc:
            opened.append(errno.errorcode[exc.errno])
    return {"escaped": any(o.startswith("/") for o in opened), "errno": None, "detail": opened}


@attempt("mknod_block_device")
def _():
    os.mknod("/tmp/disk", 0o600 | 0o060000, os.makedev(254, 0))
    return {"escaped": True, "errno": None}


@attempt("host_block_device")
def _():
    fd = os.open("/dev/vda", os.O_RDONLY)
    os.close(fd)
    return {"escaped": True, "errno": None}


print(json.dumps(results))
