"""`workbench learn`: guided lessons, one per isolation layer.

    workbench learn                     list the lessons
    workbench learn NAME                read one: explanation, steps, panes to look at, checks
    workbench learn [NAME] --tui        open it (or the list) in the TUI: run each step, watch the
                                        checks live
    workbench learn --check NAME|all    run headless (NAME may be a lesson file path), print every
                                        check passed/FAILED with what was seen; exit 0 only when
                                        all pass
        --record DIR                    record each step (DIR/<lesson>-<step>.sqlite): replay it,
                                        `workbench explain` it
        --json                          the results as JSON on stdout

`register(subparsers)` adds the command; a lesson that does not exist is one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

EXIT_CHECKS_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("learn", help="guided lessons: each isolation layer shown live, on then off, and checked",
                              description="Guided lessons, one per isolation layer. Each runs an experiment with "
                                          "the layer on, then off, and checks that what it should show really "
                                          "happened in this run.")
    p.add_argument("name", nargs="?", help="a lesson to read (see the list)")
    p.add_argument("--check", metavar="NAME|all", help="run the lesson(s) headless and check every observation "
                   "(NAME may also be the path of a lesson file)")
    p.add_argument("--record", metavar="DIR", help="with --check: record each step's session in DIR")
    p.add_argument("--json", action="store_true", help="with --check: print the results as JSON")
    p.add_argument("--tui", action="store_true", help="open the lesson NAME (or the list) in the TUI")
    p.set_defaults(handler=cmd_learn)


def cmd_learn(args: argparse.Namespace) -> int:
    from workbench import lessons
    from workbench.core.errors import UsageError

    if args.check:
        if args.name:
            raise UsageError("give the lesson either as NAME or to --check, not both",
                             f"workbench learn --check {args.check}")
        return check(args.check, args.record, args.json)
    if args.record or args.json:
        raise UsageError("--record and --json go with --check", "workbench learn --check NAME --record DIR")
    if args.tui:
        return open_tui(lessons.load(args.name) if args.name else None, getattr(args, "theme", "dark"))
    if args.name:
        print(describe(lessons.load(args.name)))
        return 0
    print(listing(lessons.load_all()))
    return 0


# --- reading -----------------------------------------------------------------------------------


def listing(all_lessons) -> str:
    width = max(len(lesson.name) for lesson in all_lessons)
    lines = ["Lessons (workbench learn NAME to read one, NAME --tui to run it on screen, --check NAME to run",
             "and check it headless):", ""]
    for lesson in all_lessons:
        lines.append(f"  {lesson.name:<{width}}  {lesson.title}")
        lines += textwrap.wrap(lesson.summary, 96, initial_indent=" " * (width + 4),
                               subsequent_indent=" " * (width + 4))
    return "\n".join(lines)


def describe(lesson) -> str:
    lines = [lesson.title, "=" * len(lesson.title), ""]
    for paragraph in lesson.explanation.split("\n\n"):
        lines += textwrap.wrap(" ".join(paragraph.split()), 96) + [""]
    lines.append("Where to look:")
    for look in lesson.look:
        lines += textwrap.wrap(look.what, 96, initial_indent=f"  {look.pane:<10} ", subsequent_indent=" " * 13)
    for i, step in enumerate(lesson.steps, 1):
        lines += ["", f"Step {i} ({'layer on' if step.layer_on else 'layer off'}): {step.title}"]
        if step.explain:
            lines += textwrap.wrap(step.explain, 96, initial_indent="  ", subsequent_indent="  ")
        lines.append("  checks:")
        lines += [f"    - {c.what}" for c in step.checks]
    lines += ["", f"Run it: workbench learn --check {lesson.name}"
                  f"    (or in the TUI: workbench learn {lesson.name} --tui)"]
    return "\n".join(lines)


# --- checking ----------------------------------------------------------------------------------


def check(which: str, record_dir: str | None, as_json: bool) -> int:
    from workbench import lessons
    from workbench.cleanup import sweep

    chosen = lessons.load_all() if which == "all" else [lessons.load(which)]
    sweep()
    runs = []
    for lesson in chosen:
        if not as_json:
            print(f"lesson {lesson.name} — {lesson.title}", flush=True)
        on_step = None if as_json else _print_step
        runs.append(lessons.run_lesson(lesson, record_dir=record_dir, on_step=on_step))
        if not as_json:
            passed, total = runs[-1].counts
            print(f"{lesson.name}: {passed}/{total} checks passed\n", flush=True)
    if as_json:
        print(json.dumps([_as_dict(run) for run in runs], indent=2, default=str))
    elif len(runs) > 1:
        print("summary:")
        for run in runs:
            passed, total = run.counts
            print(f"  {'passed' if run.passed else 'FAILED':6}  {run.lesson.name:<13} {passed}/{total}")
    return 0 if all(run.passed for run in runs) else EXIT_CHECKS_FAILED


def _outcome(report: dict) -> str:
    if report.get("signal"):
        return f"killed by {report.get('signal_name')}"
    if report.get("exit_code") is None:
        return "did not run"
    return f"exit {report['exit_code']}"


def _print_step(step_run) -> None:
    step, facts = step_run.step, step_run.facts
    state = "layer on" if step.layer_on else "layer off"
    outcome = "not run" if facts.unavailable else _outcome(facts.report)
    print(f"  step {step.name} ({state}): {step.title} — {outcome}")
    if step_run.record:
        print(f"    recorded: {step_run.record}")
    for r in step_run.results:
        print(f"    {r.mark:6}  {r.check.what}")
        print(f"            seen: {r.seen}")
    sys.stdout.flush()


def _as_dict(run) -> dict:
    passed, total = run.counts
    return {"lesson": run.lesson.name, "title": run.lesson.title, "passed": run.passed, "checks_passed": passed,
            "checks": total,
            "steps": [{"step": s.step.name, "layer_on": s.step.layer_on, "title": s.step.title,
                       "outcome": s.facts.unavailable or _outcome(s.facts.report), "record": s.record,
                       "passed": s.passed,
                       "checks": [{"what": r.check.what, "kind": r.check.kind, "passed": r.passed, "seen": r.seen}
                                  for r in s.results]}
                      for s in run.steps]}


# --- the TUI -----------------------------------------------------------------------------------


def open_tui(lesson, theme: str) -> int:
    from workbench.cleanup import sweep

    sweep()
    try:
        from workbench.tui.screens.lessons import build_lesson_app
    except ImportError as exc:
        print(f"workbench: the TUI is not available ({exc})", file=sys.stderr)
        return 1
    app = build_lesson_app(lesson, theme=theme)
    app.run()
    return getattr(app, "return_code", 0) or 0
