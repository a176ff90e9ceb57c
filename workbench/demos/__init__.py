"""Bundled demos: small apps that fail inside a sandbox for one isolation layer's reason.

Each `<name>.toml` names a profile, CLI-style overrides and a command; the demos directory is bound
read-only at /tmp/demo inside the sandbox, so the apps are visible whatever the checkout's path.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import UsageError

DEMO_DIR = Path(__file__).resolve().parent
MOUNT_POINT = "/tmp/demo"


@dataclass
class Demo:
    name: str
    description: str
    profile: str
    command: list[str]
    options: dict


def names() -> list[str]:
    return sorted(p.stem for p in DEMO_DIR.glob("*.toml"))


def load(name: str) -> Demo:
    path = DEMO_DIR / f"{name}.toml"
    if not path.exists():
        raise UsageError(f"no demo {name!r}", f"choose one of {', '.join(names())}")
    data = tomllib.loads(path.read_text())
    options = dict(data.get("options", {}))
    options["binds"] = list(options.get("binds", [])) + [f"{DEMO_DIR}:{MOUNT_POINT}:ro"]
    return Demo(name=data["name"], description=data["description"], profile=data.get("profile", "default"),
                command=list(data["command"]), options=options)


def session_options(name: str, **kwargs):
    """SessionOptions for a demo (the same path users take through the CLI)."""
    from workbench.sandbox import profile as prof
    from workbench.session import SessionOptions

    demo = load(name)
    p = prof.apply_overrides(prof.load(demo.profile), **demo.options)
    return SessionOptions(profile=p, command=demo.command, profile_name=f"{demo.profile} (demo {name})", **kwargs)
