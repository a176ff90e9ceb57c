"""Lesson files: the bundled ones load and are complete; mistakes are one line naming file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench import lessons
from workbench.core.errors import UsageError
from workbench.lessons.model import CHECK_KINDS, PANES, LessonError, load_file

GOOD = '''
name = "tiny"
title = "Tiny"
layer = "pid"
summary = "s"
explanation = "e"
look = [{ pane = "output", what = "w" }]
[commands]
probe = ["true"]
[[steps]]
name = "on"
title = "on"
command = "probe"
[[steps.checks]]
what = "exits 0"
expect = { exit_code = 0 }
'''


def write(tmp_path: Path, text: str, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_bundled_lessons_are_complete():
    all_lessons = lessons.load_all()
    assert [lesson.order for lesson in all_lessons] == sorted(lesson.order for lesson in all_lessons)
    for lesson in all_lessons:
        assert lesson.explanation and lesson.summary and lesson.look, lesson.name
        assert {look.pane for look in lesson.look} <= set(PANES)
        assert [s.layer_on for s in lesson.steps][0] is True and not lesson.steps[-1].layer_on, lesson.name
        for step in lesson.steps:
            assert step.checks and all(c.kind in CHECK_KINDS for c in step.checks), (lesson.name, step.name)
            assert step.command and all(isinstance(a, str) for a in step.command)


def test_a_good_file_loads_with_shared_commands(tmp_path):
    lesson = load_file(write(tmp_path, GOOD))
    assert lesson.steps[0].command == ("true",)
    assert lesson.steps[0].checks[0].kind == "expect" and lesson.order == 99


@pytest.mark.parametrize("change, message", [
    (('pane = "output"', 'pane = "sidebar"'), "tiny.toml: look[0].pane: 'sidebar' is not a pane"),
    (('command = "probe"', 'command = "missing"'), "no command 'missing' in the lesson's [commands]"),
    (("expect = { exit_code = 0 }", 'expect = { exit_code = 0 }\nstdout_matches = "x"'),
     "expected exactly one of"),
    (("expect = { exit_code = 0 }", 'stdout_like = "x"'), "steps[0].checks[0].stdout_like: unknown key"),
    (('name = "tiny"', 'name = "other"'), "name 'other' differs from the file name"),
    (('title = "on"', 'title = "on"\noptions = { memroy = "1G" }'), "steps[0].options.memroy: unknown key"),
    (('title = "on"', 'title = "on"\nbackend = "docker"'), "'docker' is not a backend"),
    (("[commands]", "[commands"), "not valid TOML"),
])
def test_mistakes_are_one_line_naming_file_and_key(tmp_path, change, message):
    with pytest.raises(LessonError) as err:
        load_file(write(tmp_path, GOOD.replace(*change)))
    text = str(err.value)
    assert message in text and "\n" not in text
    assert isinstance(err.value, UsageError) and err.value.exit_status == 2


def test_unknown_lesson_names_the_known_ones():
    with pytest.raises(LessonError, match="no lesson 'pdi': choose one of capabilities, gvisor, .*, or all"):
        lessons.load("pdi")


def test_lessons_do_not_import_the_faces():
    code = ("import sys, workbench.lessons, workbench.lessons.engine; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich') "
            "or m.startswith(('workbench.tui', 'workbench.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


DOCS = Path(__file__).resolve().parents[2] / "docs" / "lessons"


def test_docs_follow_the_lesson_files():
    """docs/lessons/NAME.md is the same lesson readable on its own: it must not drift from the file."""
    index = (DOCS / "README.md").read_text()
    for lesson in lessons.load_all():
        assert f"[{lesson.name}]({lesson.name}.md)" in index
        page = (DOCS / f"{lesson.name}.md").read_text()
        assert page.startswith(f"# {lesson.title}\n")
        for step in lesson.steps:
            assert step.title in page, (lesson.name, step.name)
            for c in step.checks:
                assert f"- {c.what}\n" in page, (lesson.name, step.name, c.what)
