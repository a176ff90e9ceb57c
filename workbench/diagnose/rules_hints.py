"""Without probes (`--no-trace`, or a host where eBPF cannot run) there are no syscalls to read;
the command's own error messages still point at a layer. Weak evidence, ranked below any rule
that saw the kernel say it, and only used when no syscall was seen at all."""

from __future__ import annotations

from workbench.diagnose.facts import Facts
from workbench.diagnose.rules import Candidate

# (phrase in stderr, layer, what it means, what to try)
HINTS = (
    ("read-only file system", "readonly-fs", "a write hit the read-only root or a read-only bind",
     "write under /tmp, or bind a directory writable with --bind SRC:DST:rw"),
    ("bad system call", "seccomp", "seccomp killed a process",
     "run with tracing on to see which syscall, then --allow it"),
    ("network is unreachable", "network", "the sandbox has no route (network.mode)",
     "--net loopback or --net veth"),
    ("temporary failure in name resolution", "network", "no DNS server is reachable",
     "--net veth with a resolver, or bind an /etc/hosts"),
    ("cannot fork", "cgroup-pids", "fork failed: the pids limit is likely reached", "raise --pids"),
    ("resource temporarily unavailable", "cgroup-pids", "fork failed: the pids limit is likely reached",
     "raise --pids"),
    ("operation not permitted", "capabilities", "a privileged operation or a seccomp rule refused it",
     "run with tracing on to tell seccomp from a missing capability"),
)


def stderr_hints(f: Facts) -> list[Candidate]:
    if f.saw_syscalls or not f.failed_run:
        return []
    text = f.stderr_text().lower()
    out = []
    for phrase, layer, meaning, fix in HINTS:
        if phrase in text:
            line = next(l for l in f.stderr_text().splitlines() if phrase in l.lower())
            out.append(Candidate(layer, "stderr-hint", f"{meaning} (from the command's error message; no probes ran)",
                                 1.2, [f"stderr: {line.strip()[:200]}"], f.end_ns or f.t0 or 0, fix=fix,
                                 key=phrase))
    return out
