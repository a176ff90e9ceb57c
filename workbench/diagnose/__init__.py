"""Diagnosis: which isolation layer made a command fail, the evidence, and the fix.

Floor 2: imports only workbench.core. Rules (rules*.py) turn a session's facts into candidates,
the engine ranks them into `Finding` events.

    findings = diagnose(events, profile.to_dict())      # over a finished session or a recording
    live = LiveDiagnoser(bus, profile.to_dict())        # publishes Findings as evidence arrives
    ...; live.finish()                                  # final ranked list
    from_dict(apply_fix(profile.to_dict(), findings[0]))  # the profile with the top fix applied
"""

from workbench.diagnose.engine import LiveDiagnoser, diagnose, rank
from workbench.diagnose.fixes import apply_fix, to_file_shape, to_toml

__all__ = ["LiveDiagnoser", "apply_fix", "diagnose", "rank", "to_file_shape", "to_toml"]
