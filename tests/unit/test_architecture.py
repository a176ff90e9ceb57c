"""The wall between the core and the faces: floors 1-3 never import textual or rich."""

from __future__ import annotations

import subprocess
import sys

LOWER_FLOORS = ["workbench.core.events", "workbench.core.bus", "workbench.core.errors",
                "workbench.sandbox.native", "workbench.sandbox.zygote", "workbench.sandbox.profile",
                "workbench.tracing.tracer", "workbench.record", "workbench.diagnose", "workbench.session",
                "workbench.report", "workbench.doctor"]


def test_lower_floors_never_import_the_ui():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in LOWER_FLOORS) +
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_floors_import_only_below_themselves():
    """sandbox, tracing, record and diagnose know core only, never each other."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "workbench"
    rooms = ["sandbox", "tracing", "record", "diagnose"]
    offenders = []
    for room in rooms:
        for path in (root / room).rglob("*.py"):
            for line in path.read_text().splitlines():
                m = re.match(r"\s*(?:from|import) workbench\.(\w+)", line)
                if m and m.group(1) not in ("core", room):
                    offenders.append(f"{path.relative_to(root)}: {line.strip()}")
    assert offenders == []
