"""Recordings: a session's events in one SQLite file (docs/recordings.md), read back, replayed.

Floor 2: imports only workbench.core.
"""

from workbench.record.reader import Recording, open_recording
from workbench.record.recorder import Recorder

__all__ = ["Recorder", "Recording", "open_recording"]
