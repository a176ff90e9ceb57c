"""The process tree: forks, execs, exits, OOM kills; and, for the highlighted process, where it
stands in each namespace (isolated or shared with the host), its uid map, capabilities and seccomp."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from workbench.tui.state import ProcessInfo
from workbench.tui.widgets.layers import capability_names

_SECCOMP_MODES = {0: "off", 1: "strict", 2: "filter"}


def process_label(p: ProcessInfo) -> Text:
    """pid, then what happened to it (before the name: a narrow pane must not cut it), then argv."""
    text = Text(f"{p.pid} ", style="dim")
    if p.oom_killed:
        text.append("OOM-killed ", style="bold red")
    if p.exited:
        if p.signal is not None:
            text.append(f"signal {p.signal} ", style="red")
        else:
            text.append(f"exit {p.exit_code} ", style="green" if p.exit_code == 0 else "red")
    elif p.fatal_signal is not None:
        text.append(f"dying (signal {p.fatal_signal}) ", style="red")
    text.append(" ".join(p.argv)[:60] if p.argv else p.comm or "?", style="" if p.exited else "bold")
    return text


def membership_text(p: ProcessInfo, sandbox_ns: dict[str, dict] | None = None) -> Text:
    m = p.membership
    text = Text(f"pid {p.pid}  ppid {p.ppid}  {p.comm}\n", style="bold")
    if m is None:
        # Too short-lived for the 4 Hz sampler: show the namespaces the sandbox was built with.
        text.append("not sampled (too short-lived); the sandbox's namespaces:\n" if sandbox_ns
                    else "no namespace sample yet", style="dim")
        for kind, info in sorted((sandbox_ns or {}).items()):
            isolated = info.get("isolated")
            text.append(f"{kind:<7}", style="bold")
            text.append("isolated" if isolated else "shared with host", style="green" if isolated else "yellow")
            text.append(f"  {info.get('inode', '')}\n", style="dim")
        return text
    for kind, info in sorted(m.namespaces.items()):
        isolated = info.get("isolated")
        text.append(f"{kind:<7}", style="bold")
        text.append("isolated" if isolated else "shared with host", style="green" if isolated else "yellow")
        text.append(f"  {info.get('inode', '')}\n", style="dim")
    text.append(f"uid map {m.uid_map.strip() or '-'}; gid map {m.gid_map.strip() or '-'}\n")
    caps = capability_names(m.cap_eff)
    text.append(f"caps {', '.join(caps) if caps else 'none'}\n")
    text.append(f"seccomp {_SECCOMP_MODES.get(m.seccomp_mode, m.seccomp_mode)}, "
                f"no_new_privs {'yes' if m.no_new_privs else 'no'}")
    return text


class ProcessTree(Vertical):
    """The tree, updated in place (nodes are added and relabelled, never rebuilt)."""

    ALLOW_MAXIMIZE = True  # `z` zooms a pane to the whole screen

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "Processes"
        self._tree_nodes: dict[int, TreeNode] = {}
        self._processes: dict[int, ProcessInfo] = {}
        self._main_pid: int | None = None
        self._sandbox_ns: dict[str, dict] | None = None

    def compose(self):
        tree: Tree[int] = Tree("sandbox", id="proc-tree")
        tree.show_root = False
        tree.root.expand()
        yield tree
        yield Static("", id="proc-detail")

    def show(self, processes: dict[int, ProcessInfo], main_pid: int | None = None,
             sandbox_ns: dict[str, dict] | None = None) -> None:
        """`main_pid` (the command's process) is described until the user highlights another;
        `sandbox_ns` (from SandboxReady) stands in for processes too short-lived to be sampled."""
        self._processes = processes
        self._main_pid = main_pid
        self._sandbox_ns = sandbox_ns
        tree = self.query_one(Tree)
        for pid in sorted(processes):
            p = processes[pid]
            node = self._tree_nodes.get(pid)
            if node is None:
                parent = self._tree_nodes.get(p.ppid, tree.root)
                node = self._tree_nodes[pid] = parent.add(process_label(p), data=pid, expand=True)
            else:
                node.set_label(process_label(p))
        self._show_detail(tree.cursor_node.data if tree.cursor_node else None)

    def _show_detail(self, pid: int | None) -> None:
        if pid is None and self._processes:
            pid = self._main_pid if self._main_pid in self._processes else min(self._processes)
        p = self._processes.get(pid) if pid is not None else None
        self.query_one("#proc-detail", Static).update(membership_text(p, self._sandbox_ns) if p else "")

    def on_tree_node_highlighted(self, message: Tree.NodeHighlighted) -> None:
        message.stop()
        self._show_detail(message.node.data)
