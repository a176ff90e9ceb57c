"""Test launcher: wait at a start gate (a pipe), optionally install a seccomp filter, then exec.

    gate.py FD [--errno-mkdir] [--kill-rmdir] [--trap-rmdir] [--errno-execve] [--kill-execve] -- CMD ARG...

The syscalls it makes before exec are the launcher's, not the app's: the tracer drops them.
"""

import errno
import os
import sys

fd = int(sys.argv[1])
sep = sys.argv.index("--")
flags, cmd = sys.argv[2:sep], sys.argv[sep + 1:]
os.read(fd, 1)  # the start gate
if flags:
    import seccomp

    f = seccomp.SyscallFilter(seccomp.ALLOW)
    if "--errno-mkdir" in flags:
        f.add_rule(seccomp.ERRNO(errno.EPERM), "mkdir")
    if "--kill-rmdir" in flags:
        f.add_rule(seccomp.KILL_PROCESS, "rmdir")
    if "--trap-rmdir" in flags:
        f.add_rule(seccomp.TRAP, "rmdir")
    if "--errno-execve" in flags:
        f.add_rule(seccomp.ERRNO(errno.EPERM), "execve")
    if "--kill-execve" in flags:
        f.add_rule(seccomp.KILL_PROCESS, "execve")
    f.set_attr(seccomp.Attr.CTL_LOG, 1)
    f.load()
try:
    os.execv(cmd[0], cmd)
except PermissionError:
    os._exit(126)
