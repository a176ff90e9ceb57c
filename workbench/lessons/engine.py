"""Running a lesson: each step is an ordinary session (recordable, replayable, explainable), its
events and report are gathered into `Facts`, and the step's checks are evaluated over them.

    lesson file ─▶ step ─▶ profile + patch + options ─▶ Session ─▶ bus ─▶ Collector ─▶ Facts
                                                                                       ─▶ checks

The TUI's lesson screen uses the same pieces (`step_options`, `Collector`, `snapshot_host`) around
the sessions it shows, so a lesson checks the same things in both faces.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import tempfile
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.core import events as ev
from workbench.core.bus import Bus
from workbench.core.errors import ProfileError, WorkbenchError
from workbench.lessons.checks import CheckResult, Facts, evaluate_all
from workbench.lessons.model import Lesson, Step
from workbench.sandbox import profile as prof

STEP_DEADLINE_S = 60.0
"""A lesson's command that runs longer than this is killed: every lesson ends in a second or two."""
SCRATCH_PARENT = "/tmp"
"""Where scratch directories go: under the host's /tmp, so that the mount lesson can show a host
file in /tmp that the sandbox's private /tmp hides (and that uid 65534 can reach with no layer)."""


# --- scratch directory ---------------------------------------------------------------------------


class Scratch:
    """A lesson's directory on the host (`{scratch}`), world-writable so that root-in-a-user-namespace
    (uid 65534 outside) can write through a read-write bind; removed on every path."""

    def __init__(self, lesson: Lesson, parent: str | None = None) -> None:
        self.lesson = lesson
        self.parent = parent or SCRATCH_PARENT
        self.path = ""

    def __enter__(self) -> str:
        self.path = tempfile.mkdtemp(prefix=f"workbench-lesson-{self.lesson.name}-", dir=self.parent)
        os.chmod(self.path, 0o777)
        self.reset()
        return self.path

    def reset(self) -> None:
        """Back to the lesson's files only, before each step: a step must not see what another
        left (steps run in any order in the TUI, and again)."""
        for entry in os.scandir(self.path):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        for name, text in self.lesson.files.items():
            Path(self.path, name).write_text(text)

    def __exit__(self, *exc) -> None:
        if self.path:
            shutil.rmtree(self.path, ignore_errors=True)


# --- building a step's session -----------------------------------------------------------------


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _fill(value: Any, scratch: str) -> Any:
    if isinstance(value, str):
        return value.replace("{scratch}", scratch)
    if isinstance(value, list):
        return [_fill(v, scratch) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, scratch) for k, v in value.items()}
    return value


def step_profile(lesson: Lesson, step: Step, scratch: str) -> prof.Profile:
    """The step's profile: the named profile's file, the step's patch over it, then its options —
    validated exactly like a user's profile and `workbench run` options."""
    path = prof.BUNDLED_DIR / f"{step.profile}.toml"
    if not path.is_file():
        raise ProfileError(f"{Path(lesson.path).name}: step {step.name}", f"no bundled profile {step.profile!r}",
                           f"use one of {', '.join(prof.bundled_names())}")
    data = _merge(tomllib.loads(path.read_text()), _fill(step.set, scratch))
    data["name"] = f"{step.profile}+lesson-{lesson.name}-{step.name}" if step.set else step.profile
    p = prof.from_dict(data, f"lesson {lesson.name}, step {step.name}")
    o = _fill(step.options, scratch)
    as_text = lambda v: None if v is None else str(v)  # noqa: E731 - CLI overrides are strings
    return prof.apply_overrides(p, memory=as_text(o.get("memory")), pids=as_text(o.get("pids")),
                                cpus=as_text(o.get("cpus")), net=o.get("net"), deny=o.get("deny"),
                                allow=o.get("allow"), binds=o.get("binds"))


def step_options(lesson: Lesson, step: Step, scratch: str, record: str | None = None, stdin: str = "null"):
    """SessionOptions for one step (the TUI launches these too)."""
    from workbench.session import SessionOptions

    return SessionOptions(profile=step_profile(lesson, step, scratch), command=_fill(list(step.command), scratch),
                          backend=step.backend, trace=step.trace, stream=step.trace, record=record,
                          stdin=stdin, profile_name=f"{step.profile} (lesson {lesson.name}: {step.name})")


def backend_unavailable(backend: str) -> str | None:
    """Why a backend cannot be used here, or None. Checked before a session is built, so that a
    missing backend is one failed check, not a traceback."""
    if backend == "native":
        return None
    if importlib.util.find_spec(f"workbench.sandbox.{backend}") is None:
        label = {"gvisor": "gVisor", "bwrap": "bubblewrap"}.get(backend, backend)
        return f"{label} backend not available: workbench/sandbox/{backend}.py is not part of this install"
    return None


# --- gathering facts ---------------------------------------------------------------------------


class Collector:
    """Subscribes to a session's bus and keeps what checks look at (not the syscall stream: the
    report holds its exact counts)."""

    def __init__(self, bus: Bus, scratch: str = "") -> None:
        self.facts = Facts(scratch=scratch)
        self._lock = threading.Lock()
        self._out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self._unsubscribe = bus.subscribe(self)

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, (ev.SyscallBatch, ev.Syscall)):
            self._count(e.syscalls if isinstance(e, ev.SyscallBatch) else (e,))
            return
        if isinstance(e, ev.SyscallStats):
            return
        with self._lock:
            if isinstance(e, ev.Output):
                self._out[e.stream].append(e.data)
                return
            self.facts.events.append(e)
            if isinstance(e, ev.SessionEnded):
                self.facts.ended = True

    def _count(self, syscalls) -> None:
        with self._lock:
            for s in syscalls:
                entry = self.facts.stream.setdefault(s.source, {}).setdefault(s.name, {"count": 0, "errors": {}})
                entry["count"] += 1
                if s.errno:
                    entry["errors"][s.errno] = entry["errors"].get(s.errno, 0) + 1

    def snapshot(self, report: dict[str, Any], host_paths: list[str] = (), ended: bool | None = None) -> Facts:
        """The facts as of now (a copy: checks may run on it while events keep coming)."""
        with self._lock:
            f = Facts(report=report, stdout=_text(self._out["stdout"]), stderr=_text(self._out["stderr"]),
                      events=list(self.facts.events), scratch=self.facts.scratch,
                      stream=copy.deepcopy(self.facts.stream),
                      ended=self.facts.ended if ended is None else ended)
        f.host = snapshot_host([p.replace("{scratch}", f.scratch) for p in host_paths])
        return f

    def close(self) -> None:
        self._unsubscribe()


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", "replace")


def snapshot_host(paths: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            out[path] = {"exists": False}
            continue
        out[path] = {"exists": True, "uid": st.st_uid, "gid": st.st_gid, "mode": st.st_mode & 0o7777}
    return out


# --- running -----------------------------------------------------------------------------------


@dataclass
class StepRun:
    step: Step
    facts: Facts
    results: list[CheckResult]
    record: str | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


@dataclass
class LessonRun:
    lesson: Lesson
    steps: list[StepRun] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.passed for s in self.steps)

    @property
    def counts(self) -> tuple[int, int]:
        results = [r for s in self.steps for r in s.results]
        return sum(1 for r in results if r.passed), len(results)


def run_step(lesson: Lesson, step: Step, scratch: str, record: str | None = None) -> StepRun:
    """Run one step as a headless session and evaluate its checks on what this run produced."""
    why = backend_unavailable(step.backend)
    if why:
        facts = Facts(scratch=scratch, unavailable=why, ended=True)
        return StepRun(step, facts, evaluate_all(step.checks, facts), None)
    from workbench.session import Session

    session = Session(step_options(lesson, step, scratch, record))
    collector = Collector(session.bus, scratch)
    failed = None
    try:
        try:
            session.start()
            if session.wait(timeout=STEP_DEADLINE_S) is None:
                session.kill()
        except WorkbenchError as exc:
            # Nothing ran, so every check would fail on empty output: say why once, in each.
            failed = f"the sandbox could not be created: {exc}"
    finally:
        session.close()
        collector.close()
    facts = collector.snapshot(session.report(), lesson.host_paths(), ended=True)
    facts.unavailable = failed
    return StepRun(step, facts, evaluate_all(step.checks, facts), record)


def run_lesson(lesson: Lesson, record_dir: str | None = None, scratch_parent: str | None = None,
               on_step: Callable[[StepRun], None] | None = None) -> LessonRun:
    """Every step in order, with the layer on then off, sharing one scratch directory."""
    run = LessonRun(lesson)
    box = Scratch(lesson, scratch_parent)
    with box as scratch:
        for step in lesson.steps:
            box.reset()
            record = None
            if record_dir:
                os.makedirs(record_dir, exist_ok=True)
                record = os.path.join(record_dir, f"{lesson.name}-{step.name}.sqlite")
                if os.path.exists(record):
                    os.unlink(record)  # a recording is one run: the previous one is replaced
            step_run = run_step(lesson, step, scratch, record)
            run.steps.append(step_run)
            if on_step is not None:
                on_step(step_run)
    return run
