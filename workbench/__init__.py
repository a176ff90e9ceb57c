"""workbench: launch, inspect and debug Linux sandboxes."""

__version__ = "0.1.0"
