"""Screens of the workbench TUI: launch, session, replay, dialogs (and the lessons)."""
