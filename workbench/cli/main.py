"""The `workbench` command: argument parsing and dispatch. User mistakes end here as one line on
stderr and the exit status of the CLI contract (shared/DESIGN.md); only bugs show tracebacks."""

from __future__ import annotations

import argparse
import json
import sys

from workbench.core.errors import EXIT_USAGE, WorkbenchError

RUN_EPILOG = "Exit status: the command's own; 128+N if signal N killed it; 2 usage or profile error; " \
             "125 sandbox could not be created; 126 not executable; 127 command not found."


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for profile errors
        self.exit(EXIT_USAGE, f"workbench: {message} (see workbench {self.prog.split()[-1]} --help)\n")


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="default", help="bundled name (default, strict, permissive) or a .toml path")
    p.add_argument("--backend", default="native", choices=["native", "bwrap", "gvisor"])
    p.add_argument("--memory", help="memory limit, e.g. 256M")
    p.add_argument("--pids", help="maximum number of processes")
    p.add_argument("--cpus", help="CPU bandwidth, e.g. 0.5")
    p.add_argument("--net", choices=["none", "loopback", "veth", "host"])
    p.add_argument("--deny", action="append", default=[], metavar="SYSCALL[,...]",
                   help="refuse these syscalls (added to the profile's seccomp policy)")
    p.add_argument("--allow", action="append", default=[], metavar="SYSCALL[,...]",
                   help="allow these syscalls (added to the profile's seccomp policy)")
    p.add_argument("--bind", action="append", default=[], metavar="SRC[:DST[:ro|rw]]")
    p.add_argument("--rootfs", metavar="DIR")
    p.add_argument("--report", metavar="FILE", help="write the JSON report ('-' = stdout)")
    p.add_argument("--record", metavar="FILE", help="write the session recording (SQLite)")
    p.add_argument("--no-trace", action="store_true", help="no eBPF probes")
    p.add_argument("--aggregate-only", action="store_true",
                   help="exact in-kernel syscall counts only, no per-event stream (lowest overhead)")
    p.add_argument("--dump-bpf", action="store_true", help="print the BPF programs that are loaded")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")


def session_options(args: argparse.Namespace, stdin: str = "pipe", echo: bool = False):
    """Profile + CLI overrides -> SessionOptions; every mistake is a ProfileError/UsageError."""
    from workbench.core.errors import UsageError
    from workbench.sandbox import profile as prof
    from workbench.session import SessionOptions

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command given", "put it after --, e.g. workbench run -- ls /")
    split = lambda items: [n.strip() for item in items for n in item.split(",") if n.strip()]  # noqa: E731
    base = prof.load(args.profile)
    p = prof.apply_overrides(base, memory=args.memory, pids=args.pids, cpus=args.cpus, net=args.net,
                             deny=split(args.deny), allow=split(args.allow), binds=args.bind, rootfs=args.rootfs)
    return SessionOptions(profile=p, command=command, backend=args.backend, trace=not args.no_trace,
                          stream=not args.aggregate_only, record=args.record, stdin=stdin,
                          profile_name=args.profile, dump_bpf=args.dump_bpf, echo_output=echo)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description="Launch, inspect and debug Linux sandboxes.")
    parser.add_argument("--theme", default="dark", help="TUI theme: dark, light, high-contrast")
    sub = parser.add_subparsers(dest="cmd", parser_class=_Parser)
    run = sub.add_parser("run", help="headless: launch, trace, print a diagnosis when CMD fails", epilog=RUN_EPILOG)
    add_run_options(run)
    run.add_argument("--fix", action="store_true", help="apply the top finding's fix, re-run, say if it worked")
    run.add_argument("--quiet", action="store_true", help="no diagnosis on stderr")
    tui = sub.add_parser("tui", help="open the TUI and launch CMD at once")
    add_run_options(tui)
    tui.add_argument("--theme", dest="tui_theme", default=None)
    doc = sub.add_parser("doctor", help="what this host supports, what is missing, how to fix it")
    doc.add_argument("--json", action="store_true")
    rep = sub.add_parser("replay", help="open a recording in the TUI")
    rep.add_argument("file")
    demo = sub.add_parser("demo", help="open the workbench on a bundled demo (a sandboxed app that fails)")
    demo.add_argument("name", nargs="?", default="cache", help="cache (default) or memory")
    demo.add_argument("--headless", action="store_true", help="no TUI: run, print the diagnosis")
    demo.add_argument("--report", metavar="FILE", help="with --headless: write the JSON report")
    demo.add_argument("--record", metavar="FILE", help="write the session recording")
    sub.add_parser("sweep", help="remove what a killed workbench left behind (cgroups, veths)")
    try:
        from workbench.cli import analysis
    except ImportError:
        analysis = None
    if analysis is not None:
        analysis.register(sub)
    from workbench.cli import learn

    learn.register(sub)
    from workbench.cli import backends

    backends.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args)
    except WorkbenchError as exc:
        print(f"workbench: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.cmd == "run":
        from workbench.cli.run import run_command

        return run_command(args)
    if args.cmd == "doctor":
        return _doctor(args.json)
    if args.cmd == "demo":
        return _demo(args)
    if args.cmd == "sweep":
        from workbench.cleanup import sweep

        for line in sweep():
            print(line)
        return 0
    if args.cmd in (None, "tui", "replay"):
        return _tui(args)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return handler(args)
    parser.print_help()
    return EXIT_USAGE


def _tui(args: argparse.Namespace) -> int:
    from workbench.cleanup import sweep

    sweep()
    try:
        from workbench.tui.app import build_app
    except ImportError as exc:
        print(f"workbench: the TUI is not available ({exc})", file=sys.stderr)
        return 1
    options = session_options(args) if args.cmd == "tui" else None
    theme = getattr(args, "tui_theme", None) or args.theme
    app = build_app(options=options, replay=getattr(args, "file", None), theme=theme)
    app.run()
    return getattr(app, "return_code", 0) or 0


def _demo(args: argparse.Namespace) -> int:
    from workbench import demos

    if args.headless:
        from workbench.cli.run import print_diagnosis, run_once, write_report

        options = demos.session_options(args.name, record=args.record, stdin="null", echo_output=True)
        status, report = run_once(args, options)
        if status != 0:
            print_diagnosis(report)
        write_report(report, args.report)
        return status
    from workbench.cleanup import sweep

    sweep()
    from workbench.tui.app import build_app

    app = build_app(options=demos.session_options(args.name, record=args.record), theme=args.theme)
    app.run()
    return getattr(app, "return_code", 0) or 0


def _doctor(as_json: bool) -> int:
    from workbench.doctor import as_dict, run_checks

    checks = run_checks()
    if as_json:
        print(json.dumps(as_dict(checks), indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark = "ok " if c.ok else "MISSING"
            line = f"{mark:7} {c.name:<{width}}  {c.detail}"
            if not c.ok:
                line += f"\n{'':7} {'':<{width}}  fix: {c.fix}   (needed for: {c.needed_for})"
            print(line)
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
