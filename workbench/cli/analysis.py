"""Commands over recordings: `explain`, `profile`, `whatif`, `export`. Nothing here runs a sandbox.

`register(subparsers)` adds them to the main parser; each handler returns an exit status. A bad
recording or profile raises a WorkbenchError, which cli/main.py prints as one line (exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import IO, Iterator

from workbench.core import events as ev
from workbench.core.errors import UsageError
from workbench.diagnose import diagnose
from workbench.diagnose.traced_profile import traced_profile, whatif
from workbench.record import open_recording
from workbench.record.export import FORMATS, export_chrome_trace, export_jsonl


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add explain, profile, whatif and export to `subparsers` (dest "cmd", handlers in `handler`)."""
    p = subparsers.add_parser("explain", help="diagnose a recorded session: which layer failed it, and the fix")
    p.add_argument("recording", metavar="RECORDING")
    p.add_argument("--json", action="store_true", help="findings as JSON")
    p.set_defaults(handler=cmd_explain)

    p = subparsers.add_parser("profile", help="the minimal seccomp allow-list a recorded run needed")
    p.add_argument("recording", metavar="RECORDING")
    p.add_argument("--format", choices=("docker", "oci", "toml"), default="toml",
                   help="Docker or OCI seccomp JSON, or a workbench profile (default)")
    p.add_argument("-o", "--output", metavar="FILE", help="write there instead of stdout")
    p.set_defaults(handler=cmd_profile)

    p = subparsers.add_parser("whatif", help="which recorded syscalls another profile would refuse (runs nothing)")
    p.add_argument("recording", metavar="RECORDING")
    p.add_argument("--profile", required=True, metavar="NAME|PATH", help="bundled name or a .toml file")
    p.set_defaults(handler=cmd_whatif)

    p = subparsers.add_parser("export", help="a recording as JSON lines or a Chrome/Perfetto trace")
    p.add_argument("recording", metavar="RECORDING")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("-o", "--output", metavar="FILE", help="write there instead of stdout")
    p.set_defaults(handler=cmd_export)


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path in (None, "-"):
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        fh = open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}", "choose another --output") from None
    with fh:
        yield fh


def _exit_words(meta: dict) -> str:
    e = meta.get("exit")
    if not isinstance(e, dict) or not e:
        return "did not finish (the recording has no exit)"
    if e.get("exec_error"):
        return f"could not start ({e['exec_error']}), exit {e.get('exit_code')}"
    if e.get("signal") is not None:
        return f"killed by signal {e['signal']}"
    return f"exit {e.get('exit_code')}"


def cmd_explain(args: argparse.Namespace) -> int:
    with open_recording(args.recording) as rec:
        meta = rec.meta
        profile = meta.get("profile") if isinstance(meta.get("profile"), dict) else None
        findings = diagnose(rec.events(), profile)
    if args.json:
        print(json.dumps([{"layer": f.layer, "summary": f.summary, "evidence": list(f.evidence), "fix": f.fix,
                           "fix_options": list(f.fix_options), "fix_profile": f.fix_profile, "rule": f.rule,
                           "score": f.score} for f in findings], indent=2))
        return 0
    command = meta.get("command")
    command = " ".join(map(str, command)) if isinstance(command, list) and command else "?"
    print(f"{command}: {_exit_words(meta)}")
    if not findings:
        print("no isolation layer explains a failure in this recording")
        return 0
    e = meta.get("exit")
    if isinstance(e, dict) and e.get("exit_code") == 0 and e.get("signal") is None:
        print("the command succeeded; the sandbox still got in its way here:")
    for i, f in enumerate(findings, 1):
        print(f"{i}. [{f.layer}] {f.summary}")
        for line in f.evidence:
            print(f"     {line}")
        if f.fix:
            print(f"   fix: {f.fix}")
    return 0


def _counts(rec) -> dict[str, int]:
    """The app's syscalls by name. Under gVisor only the Sentry's account of the app counts: the
    host probes (and their in-kernel stats) saw the Sentry itself."""
    gvisor = "gvisor" in rec.sources()
    raw = rec.syscall_counts(source="gvisor" if gvisor else None)
    # syscall_<nr> / sys_<nr> are numbers nobody could name (or nr -1 of an interrupted exec).
    counts = {k: v for k, v in raw.items() if not k.startswith(("syscall_", "sys_"))}
    if gvisor:
        return counts
    for stats in rec.events(kinds=(ev.SyscallStats,)):
        for s in stats.stats:  # exact in-kernel counts: they see what the stream dropped
            if s.count and not s.name.startswith("syscall_"):
                counts[s.name] = max(counts.get(s.name, 0), s.count)
    return counts


def cmd_profile(args: argparse.Namespace) -> int:
    with open_recording(args.recording) as rec:
        counts = _counts(rec)
        profile = rec.meta.get("profile") if isinstance(rec.meta.get("profile"), dict) else {}
    if not counts:
        raise UsageError(f"{args.recording}: the recording has no syscalls",
                         "record the run with tracing on (without --no-trace)")
    text = traced_profile(counts, profile, args.format, args.recording)
    with _output(args.output) as out:
        out.write(text)
    return 0


def cmd_whatif(args: argparse.Namespace) -> int:
    from workbench.sandbox.profile import load

    profile = load(args.profile).to_dict()
    with open_recording(args.recording) as rec:
        counts = _counts(rec)
        clones = list(rec.syscalls(("clone", "unshare")))
        peaks = {"memory": 0, "pids": 0, "connects": counts.get("connect", 0)}
        for s in rec.events(kinds=(ev.ResourceSample,)):
            peaks["memory"] = max(peaks["memory"], s.memory_peak_bytes, s.memory_bytes)
            peaks["pids"] = max(peaks["pids"], s.pids)
    verdicts, notes = whatif(counts, profile, clones, peaks)
    if not counts:
        print("the recording has no syscalls: record with tracing on to check seccomp")
    elif not verdicts:
        print(f"{args.profile}: would refuse none of the {len(counts)} syscalls this run made")
    else:
        total = sum(v.count for v in verdicts)
        print(f"{args.profile}: would refuse {len(verdicts)} of the {len(counts)} syscalls this run made "
              f"({total} calls):")
        width = max(len(v.syscall) for v in verdicts)
        for v in verdicts:
            print(f"  {v.syscall:<{width}}  {v.count:>7}  {v.outcome:<12}  {v.rule}")
    for note in notes:
        print(f"  also: {note}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with open_recording(args.recording) as rec, _output(args.output) as out:
        (export_jsonl if args.format == "jsonl" else export_chrome_trace)(rec, out)
    return 0
