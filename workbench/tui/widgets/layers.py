"""Isolation layers: each one on or off, with its settings, from the effective profile (and, once
the sandbox exists, the namespaces it really got). The launch screen previews a profile with it."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from workbench.sandbox.profile import CAPABILITIES
from workbench.tui.state import format_bytes

_ON = Text("on", style="bold green")
_OFF = Text("off", style="bold yellow")


def capability_names(mask: int) -> list[str]:
    return [name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1]


def layers_table(profile: dict[str, Any], namespaces: dict[str, dict] | None = None) -> Table:
    """Rows: layer, on/off, settings. `profile` is `Profile.to_dict()` (or SessionStarted.profile)."""
    table = Table(box=None, expand=True, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("layer", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("settings", ratio=1)
    ns_on = profile.get("namespaces", {})
    real = namespaces or {}

    def ns_row(kind: str, settings: str) -> None:
        on = ns_on.get(kind, False)
        got = real.get(kind)
        if got is not None:
            on = bool(got.get("isolated"))
            settings += f" (inode {got.get('inode')})" if got.get("inode") else ""
        table.add_row(f"{kind} ns", _ON if on else _OFF, settings)

    ns_row("user", f"uid {profile.get('uid', 0)} → host {profile.get('host_uid', '?')}, "
                   f"gid {profile.get('gid', 0)} → host {profile.get('host_gid', '?')}")
    ns_row("pid", "own pid 1 (init)" if profile.get("init", True) else "own pids")
    binds = profile.get("binds", [])
    bind_text = ", ".join(f"{b['src']}→{b['dst']}:{'ro' if b.get('readonly', True) else 'rw'}"
                          for b in binds) or "no binds"
    ns_row("mnt", f"root {profile.get('rootfs', '/')} {'read-only' if profile.get('readonly_root') else 'writable'}"
                  f", /tmp tmpfs {format_bytes(profile.get('tmp_size'))}, {bind_text}")
    ns_row("net", f"network {profile.get('net', 'none')}")
    ns_row("uts", f"hostname {profile.get('hostname', '')}")
    ns_row("ipc", "own SysV IPC and POSIX queues")
    ns_row("cgroup", "own cgroup root view")
    mem, pids, cpus = profile.get("memory"), profile.get("pids"), profile.get("cpus")
    limited = any(v is not None for v in (mem, pids, cpus))
    table.add_row("cgroup limits", _ON if limited else _OFF,
                  f"memory {format_bytes(mem)}, pids {pids or 'none'}, cpus {cpus or 'none'}")
    keep = profile.get("cap_keep", [])
    table.add_row("capabilities", _ON, ("keeps " + ", ".join(keep)) if keep else "all dropped")
    table.add_row("no_new_privs", _ON if profile.get("no_new_privs", True) else _OFF, "")
    sc = profile.get("seccomp", {})
    mode = sc.get("mode", "off")
    listed = sc.get("syscalls", [])
    what = {"deny": "refuses", "allow": "allows only"}.get(mode, "")
    detail = "" if mode == "off" else (
        f"{what} {len(listed)} syscalls ({', '.join(listed[:6])}{', …' if len(listed) > 6 else ''}); "
        f"action {sc.get('action')} {sc.get('errno') if sc.get('action') == 'errno' else ''}")
    table.add_row("seccomp", _OFF if mode == "off" else _ON, detail)
    rl = profile.get("rlimits", {})
    table.add_row("rlimits", _ON if rl else _OFF, ", ".join(f"{k}={v}" for k, v in rl.items()))
    return table


class Layers(Static, can_focus=True):
    """The layers of the running sandbox."""

    ALLOW_MAXIMIZE = True  # `z` zooms a pane to the whole screen

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.border_title = "Layers"

    def show(self, profile: dict[str, Any], namespaces: dict[str, dict] | None) -> None:
        if profile:
            self.update(layers_table(profile, namespaces))
