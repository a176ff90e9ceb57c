"""discover/ knows only core; the new backends and discover never pull in the UI or each other."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2] / "workbench"


def test_discover_imports_only_core():
    offenders = []
    for path in (ROOT / "discover").rglob("*.py"):
        for line in path.read_text().splitlines():
            m = re.match(r"\s*(?:from|import) workbench\.(\w+)", line)
            if m and m.group(1) not in ("core", "discover"):
                offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []


def test_backends_and_discover_load_without_ui_tracing_or_session():
    code = ("import sys\nimport workbench.sandbox.bwrap, workbench.sandbox.gvisor, workbench.discover\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'bcc')\n"
            "             or m.startswith(('workbench.tracing', 'workbench.session', 'workbench.tui')))\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
