"""Sandboxes we did not start: find them (`scan`) and say what `attach` should watch (`resolve`).
Imports only workbench.core; reads /proc and cgroupfs, never writes."""

from workbench.discover.sandboxes import Sandbox, Target, resolve, scan

__all__ = ["Sandbox", "Target", "resolve", "scan"]
