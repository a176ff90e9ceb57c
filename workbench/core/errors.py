"""Errors meant for people: one line naming the cause and the fix, and an exit status.

Every failure a user can cause (a bad profile, an unknown syscall, a missing kernel feature, a
command not found) is raised as a `WorkbenchError` subclass; the CLI prints `str(err)` on one line
and exits with `err.exit_status`. Anything else is a bug and may show a traceback.
"""

from __future__ import annotations

# Exit statuses from the CLI contract in shared/DESIGN.md.
EXIT_USAGE = 2
EXIT_SANDBOX = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class WorkbenchError(Exception):
    """A failure with a cause and a fix that a person can act on."""

    exit_status = 1

    def __init__(self, cause: str, fix: str | None = None):
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause}: {fix}" if fix else cause)


class UsageError(WorkbenchError):
    """Bad command line or profile: exit 2, nothing was created."""

    exit_status = EXIT_USAGE


class ProfileError(UsageError):
    """A profile that does not validate. `where` names the file and key."""

    def __init__(self, where: str, cause: str, fix: str | None = None):
        self.where = where
        super().__init__(f"{where}: {cause}" if where else cause, fix)


class SandboxError(WorkbenchError):
    """The sandbox could not be created (missing kernel feature, permission): exit 125."""

    exit_status = EXIT_SANDBOX


class CommandNotFound(WorkbenchError):
    """The command does not exist inside the sandbox: exit 127."""

    exit_status = EXIT_NOT_FOUND


class CommandNotExecutable(WorkbenchError):
    """The command exists but cannot be executed inside the sandbox: exit 126."""

    exit_status = EXIT_NOT_EXECUTABLE


class TracingUnavailable(WorkbenchError):
    """eBPF tracing cannot run on this host; the sandbox still can."""


class RecordingError(WorkbenchError):
    """A recording is truncated, foreign or cannot be written."""

    exit_status = EXIT_USAGE
