"""Lessons as data: the TOML files next to this module, read and validated into plain dataclasses.

A lesson file holds text (an explanation, what to look at in which pane), the experiment's steps
(a profile, a patch over it, CLI-style options and a command, each run as an ordinary session) and
each step's checks. The format is documented in docs/lessons/README.md. Every mistake in a file is
one `LessonError` line naming the file and the key, like a profile error.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.errors import UsageError

LESSON_DIR = Path(__file__).resolve().parent
PANES = ("processes", "layers", "stream", "denials", "top", "output", "resources")
"""Pane ids of the TUI's session screen a lesson may point at."""
CHECK_KINDS = ("expect", "stdout_matches", "stderr_matches", "output_matches", "stdout_lacks",
               "stderr_lacks", "stdout_value", "report", "denial", "no_denial", "finding", "syscall",
               "event", "host_file")
OPTION_KEYS = ("memory", "pids", "cpus", "net", "deny", "allow", "binds")
"""The CLI overrides a step may give (`apply_overrides` keywords)."""


class LessonError(UsageError):
    """A lesson file that does not validate, or a lesson that does not exist: exit 2."""


@dataclass(frozen=True)
class Look:
    """Where to look while a step runs: a pane of the session screen and what it will show."""

    pane: str
    what: str


@dataclass(frozen=True)
class Check:
    """One expected observation. `kind` is one of CHECK_KINDS, `spec` its value from the file."""

    what: str
    """The observation in words, as the learner reads it ("the command sees itself as pid 2")."""
    kind: str
    spec: Any


@dataclass(frozen=True)
class Step:
    """One run of the experiment: the same idea with the layer on, or off."""

    name: str
    title: str
    command: tuple[str, ...]
    profile: str = "default"
    set: dict[str, Any] = field(default_factory=dict)
    """A patch over the profile file, in its shape (TOML tables merge key by key)."""
    options: dict[str, Any] = field(default_factory=dict)
    """CLI-style overrides (memory, pids, net, deny, allow, binds), as `workbench run` takes them."""
    backend: str = "native"
    trace: bool = False
    """eBPF probes on: only where a check needs syscalls or denials (they cost a compile)."""
    layer_on: bool = True
    explain: str = ""
    """What to expect, in words, shown before the run."""
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    layer: str
    """Which isolation layer it teaches (a `layer` of the report where there is one)."""
    order: int
    summary: str
    explanation: str
    look: tuple[Look, ...]
    steps: tuple[Step, ...]
    files: dict[str, str] = field(default_factory=dict)
    """Files written into the lesson's scratch directory on the host before the first step."""
    path: str = ""

    def host_paths(self) -> list[str]:
        """Host paths that `host_file` checks look at (with `{scratch}` still in them)."""
        return sorted({c.spec["path"] for s in self.steps for c in s.checks if c.kind == "host_file"})


# --- loading -----------------------------------------------------------------------------------


def names() -> list[str]:
    """Lesson names in teaching order."""
    return [lesson.name for lesson in load_all()]


def load_all() -> list[Lesson]:
    lessons = [load_file(p) for p in LESSON_DIR.glob("*.toml")]
    return sorted(lessons, key=lambda lesson: (lesson.order, lesson.name))


def load(name: str) -> Lesson:
    """A bundled lesson by name, or a lesson file by path (a teacher's own)."""
    if "/" in name or name.endswith(".toml"):
        if not Path(name).is_file():
            raise LessonError(f"no lesson file {name!r}", "give a path to a .toml lesson file or a bundled name")
        return load_file(Path(name))
    path = LESSON_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(LESSON_DIR.glob("*.toml")))
        raise LessonError(f"no lesson {name!r}", f"choose one of {known}, or all")
    return load_file(path)


def load_file(path: Path) -> Lesson:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise LessonError(f"{path.name}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LessonError(f"{path.name}: not valid TOML ({exc})") from None
    return from_dict(data, path.name, str(path))


def _get(table: dict, key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise LessonError(f"{where}.{key}: missing", "every lesson, step and check needs it")
        return default
    value = table[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise LessonError(f"{where}.{key}: unexpected value {value!r}")
    return value


def _known(table: Any, keys: set[str], where: str) -> dict:
    if not isinstance(table, dict):
        raise LessonError(f"{where}: expected a table, got {table!r}")
    for key in table:
        if key not in keys:
            raise LessonError(f"{where}.{key}: unknown key", f"known keys: {', '.join(sorted(keys))}")
    return table


def from_dict(data: dict[str, Any], source: str, path: str = "") -> Lesson:
    w = source
    _known(data, {"name", "title", "layer", "order", "summary", "explanation", "look", "steps", "files",
                  "commands"}, w)
    name = _get(data, "name", str, w)
    if source.endswith(".toml") and name != Path(source).stem:
        raise LessonError(f"{w}: name {name!r} differs from the file name", "rename one of them")
    look = []
    for i, item in enumerate(_get(data, "look", list, w, [])):
        at = f"{w}: look[{i}]"
        _known(item, {"pane", "what"}, at)
        pane = _get(item, "pane", str, at)
        if pane not in PANES:
            raise LessonError(f"{at}.pane: {pane!r} is not a pane", f"use one of {', '.join(PANES)}")
        look.append(Look(pane, _get(item, "what", str, at)))
    commands = _get(data, "commands", dict, w, {})
    for key, value in commands.items():
        if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
            raise LessonError(f"{w}: commands.{key}: expected a list of strings, argv style")
    steps = tuple(_step(s, f"{w}: steps[{i}]", commands) for i, s in enumerate(_get(data, "steps", list, w)))
    if not steps:
        raise LessonError(f"{w}: steps: empty", "a lesson needs at least one step")
    files = _get(data, "files", dict, w, {})
    for key, value in files.items():
        if not isinstance(value, str) or "/" in key:
            raise LessonError(f"{w}: files.{key}: expected a file name and its text")
    return Lesson(name=name, title=_get(data, "title", str, w), layer=_get(data, "layer", str, w),
                  order=_get(data, "order", int, w, 99), summary=_get(data, "summary", str, w),
                  explanation=_get(data, "explanation", str, w).strip(), look=tuple(look), steps=steps,
                  files=dict(files), path=path)


def _step(data: Any, w: str, commands: dict[str, list[str]]) -> Step:
    _known(data, {"name", "title", "command", "profile", "set", "options", "backend", "trace", "layer_on",
                  "explain", "checks"}, w)
    command = _get(data, "command", (list, str), w)
    if isinstance(command, str):  # the name of a command shared by the lesson's steps
        if command not in commands:
            raise LessonError(f"{w}.command: no command {command!r} in the lesson's [commands]",
                              f"define it there, or give an argv list (known: {', '.join(commands) or 'none'})")
        command = commands[command]
    if not command or not all(isinstance(a, str) for a in command):
        raise LessonError(f"{w}.command: expected a list of strings, argv style")
    options = _get(data, "options", dict, w, {})
    _known(options, set(OPTION_KEYS), f"{w}.options")
    backend = _get(data, "backend", str, w, "native")
    if backend not in ("native", "bwrap", "gvisor"):
        raise LessonError(f"{w}.backend: {backend!r} is not a backend", "use native, bwrap or gvisor")
    checks = tuple(_check(c, f"{w}.checks[{i}]") for i, c in enumerate(_get(data, "checks", list, w)))
    return Step(name=_get(data, "name", str, w), title=_get(data, "title", str, w), command=tuple(command),
                profile=_get(data, "profile", str, w, "default"), set=_get(data, "set", dict, w, {}),
                options=dict(options), backend=backend, trace=_get(data, "trace", bool, w, False),
                layer_on=_get(data, "layer_on", bool, w, True), explain=_get(data, "explain", str, w, "").strip(),
                checks=checks)


def _check(data: Any, w: str) -> Check:
    _known(data, {"what", *CHECK_KINDS}, w)
    kinds = [k for k in data if k != "what"]
    if len(kinds) != 1:
        raise LessonError(f"{w}: expected exactly one of {', '.join(CHECK_KINDS)}, got {kinds or 'none'}")
    kind = kinds[0]
    spec = data[kind]
    if kind == "host_file" and (not isinstance(spec, dict) or "path" not in spec):
        raise LessonError(f"{w}.host_file: expected {{ path = ..., uid = ... }}")
    if kind == "stdout_value" and (not isinstance(spec, dict) or "pattern" not in spec):
        raise LessonError(f"{w}.stdout_value: expected {{ pattern = '...(\\d+)', min = N }}")
    return Check(what=_get(data, "what", str, w), kind=kind, spec=spec)
