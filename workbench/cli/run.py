"""`workbench run`: a headless session: the command's output passes through, the JSON report goes
where --report says, and a diagnosis is printed when the command fails."""

from __future__ import annotations

import json
import signal
import sys

from workbench.cleanup import sweep
from workbench.core.errors import WorkbenchError
from workbench.core.events import Notice


def print_diagnosis(report: dict) -> None:
    status = f"exit {report['exit_code']}" if report["signal"] is None else f"killed by {report['signal_name']}"
    lines = [f"workbench: the command failed ({status})."]
    for i, f in enumerate(report["diagnosis"][:3]):
        lines.append(f"  {'why' if i == 0 else 'also'} [{f['layer']}] {f['summary']}")
        for item in f["evidence"][:4]:
            lines.append(f"        {item}")
        if f["fix"]:
            lines.append(f"      fix: {f['fix']}")
    if not report["diagnosis"]:
        lines.append("  no isolation layer was found to blame: the command failed on its own terms.")
    print("\n".join(lines), file=sys.stderr)


def _dump_bpf(session) -> None:
    """--dump-bpf: the cflags, C source and instructions of what was loaded, before the output."""
    if session.tracer is None:
        print("workbench: --dump-bpf: no probes were loaded", file=sys.stderr)
        return
    print(session.tracer.dump_text, file=sys.stderr, flush=True)


def _print_notice(notice: Notice) -> None:
    """Warnings as they happen, one line each (a probe that is off, a recording that stopped).
    Launch failures are printed by run_once, with their exit status."""
    if notice.level in ("warning", "error") and notice.source != "sandbox":
        print(f"workbench: {notice.text}", file=sys.stderr, flush=True)


def write_report(report: dict, target: str | None) -> None:
    if not target:
        return
    text = json.dumps(report, indent=2, default=str)
    if target == "-":
        print(text)
        return
    try:
        with open(target, "w") as f:
            f.write(text + "\n")
    except OSError as exc:
        print(f"workbench: cannot write the report to {target}: {exc.strerror}", file=sys.stderr)


def run_once(args, options) -> tuple[int, dict]:
    from workbench.session import Session

    session = Session(options)
    session.bus.subscribe(_print_notice, Notice)
    interrupted = 0
    try:
        try:
            session.start()
            if options.dump_bpf:
                _dump_bpf(session)
        except WorkbenchError as exc:
            print(f"workbench: {exc}", file=sys.stderr)
            session.close()
            report = session.report()
            return exc.exit_status, report
        while True:
            try:
                exited = session.wait()
                break
            except KeyboardInterrupt:
                interrupted += 1  # first Ctrl-C: to the command, like a terminal would; then kill
                session.kill(signal.SIGINT if interrupted == 1 else signal.SIGKILL)
    finally:
        session.close()
    report = session.report()
    status = exited.exit_code if exited.signal is None else 128 + exited.signal
    return status, report


def _stdin_mode() -> str:
    """Our stdin goes to the command when there is one to give (CI runs have none)."""
    try:
        return "inherit" if sys.stdin is not None and not sys.stdin.closed and sys.stdin.fileno() == 0 else "null"
    except (OSError, ValueError):
        return "null"


def run_command(args) -> int:
    from workbench.cli.main import session_options

    sweep()
    options = session_options(args, stdin=_stdin_mode(), echo=True)
    status, report = run_once(args, options)
    failed = status != 0
    if failed and not args.quiet:
        print_diagnosis(report)
    if args.fix and failed:
        status, report = _verify_fix(args, report, status)
    write_report(report, args.report)
    return status


def _verify_fix(args, report: dict, status: int):
    """Apply the top finding's fix (as CLI options, or as a profile patch when no option says it),
    run again, and say whether the failure is gone."""
    from workbench.cli.main import session_options

    top = report["diagnosis"][0] if report["diagnosis"] else None
    if top is None or not (top.get("fix_options") or top.get("fix_profile")):
        print("workbench: --fix: no finding with a fix to apply", file=sys.stderr)
        return status, report
    if top.get("fix_options"):
        applied = list(top["fix_options"])
        options = session_options(_apply_options(args, applied), stdin="null", echo=True)
    else:
        from workbench.diagnose import apply_fix
        from workbench.sandbox.profile import from_dict

        applied = [f"profile patch {top['fix_profile']}"]
        options = session_options(args, stdin="null", echo=True)
        finding = _finding_from(top)
        options.profile = from_dict(apply_fix(options.profile.to_dict(), finding), "fix")
    print(f"workbench: --fix: re-running with {' '.join(applied)}", file=sys.stderr)
    new_status, new_report = run_once(args, options)
    verdict = "the failure is gone" if new_status == 0 else f"still failing (exit {new_status})"
    print(f"workbench: --fix: {verdict}", file=sys.stderr)
    new_report["fix"] = {"applied": applied, "before_exit": status, "after_exit": new_status,
                         "verified": new_status == 0}
    return new_status, new_report


def _finding_from(entry: dict):
    from workbench.core.events import Finding

    return Finding(ts_ns=0, layer=entry["layer"], summary=entry["summary"], fix_profile=entry["fix_profile"],
                   fix_options=tuple(entry.get("fix_options", ())), rule=entry.get("rule", ""))


def _apply_options(args, extra: list[str]):
    """The user's options plus the fix's, parsed by the same parser users get."""
    import copy

    from workbench.cli.main import build_parser

    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    fixed, _ = run.parse_known_args(extra + ["--"])
    args2 = copy.copy(args)
    for key in ("memory", "pids", "cpus", "net", "rootfs"):
        if getattr(fixed, key) is not None:
            setattr(args2, key, getattr(fixed, key))
    for key in ("deny", "allow", "bind"):
        setattr(args2, key, list(getattr(args, key)) + list(getattr(fixed, key)))
    if "--profile" in extra:
        args2.profile = fixed.profile
    if "--backend" in extra:
        args2.backend = fixed.backend
    return args2
