"""Runs a sandbox that shares the caller's terminal (stdin = "terminal", as the TUI's shell does),
in a new session whose controlling terminal is the pty slave named in argv[1]. The sandboxed
command is argv[2:]. Exits with the sandbox's shell status."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from workbench.sandbox import profile as prof  # noqa: E402
from workbench.session import Session, SessionOptions  # noqa: E402

os.setsid()
fd = os.open(sys.argv[1], os.O_RDWR)  # first terminal opened by a session leader: its ctty
for target in (0, 1, 2):
    os.dup2(fd, target)
profile = prof.load(os.environ.get("TTY_PROFILE", "default"))
session = Session(SessionOptions(profile=profile, command=sys.argv[2:], stdin="terminal", trace=False))
try:
    session.start()
    exited = session.wait(timeout=60)
finally:
    session.close()
sys.exit(exited.exit_code if exited and exited.signal is None else 99)
