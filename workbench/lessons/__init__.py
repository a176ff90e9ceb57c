"""Guided lessons: one per isolation layer, each an experiment run live with the layer on, then
off, and checks that the expected observation really happened in this run.

Lessons are data (`workbench/lessons/*.toml`, format in docs/lessons/README.md); this package reads
them (`model`), evaluates checks over a run's events and report (`checks`), and runs steps as
ordinary sessions (`engine`). Floor 3, like workbench/session.py: no textual, no rich.
"""

from workbench.lessons.checks import CheckResult, Facts, evaluate, evaluate_all
from workbench.lessons.engine import (Collector, LessonRun, Scratch, StepRun, backend_unavailable, run_lesson,
                                      run_step, step_options)
from workbench.lessons.model import Check, Lesson, LessonError, Look, Step, load, load_all, names

__all__ = [
    "Check", "CheckResult", "Collector", "Facts", "Lesson", "LessonError", "LessonRun", "Look", "Scratch", "Step",
    "StepRun", "backend_unavailable", "evaluate", "evaluate_all", "load", "load_all", "names", "run_lesson",
    "run_step", "step_options",
]
