"""The sweep: remove what a workbench killed with SIGKILL left behind. Normally the launcher
cleans up when the workbench's socket closes; this catches the rest (the launcher killed too)."""

from __future__ import annotations

from workbench.sandbox import cgroups, network


def sweep() -> list[str]:
    """Remove stale sandboxes' cgroups and veths; returns one line per object removed."""
    removed = [f"cgroup {name}" for name in cgroups.sweep()]
    try:
        for link in network.stale_links(cgroups.owner_alive):
            network.delete_link(link)
            removed.append(f"veth {link}")
    except Exception:  # noqa: BLE001 - netlink trouble must not stop a launch
        pass
    return removed
