"""The one domain error type. The CLI turns it into a one-line message and an exit code."""

from __future__ import annotations

# Exit codes (documented in the README). 1 is left to unexpected crashes.
EXIT_USAGE = 2        # bad input: flags, paths, data
EXIT_NOT_FOUND = 3    # unknown job id, missing file
EXIT_STATE = 4        # the run is not in a state that allows this (still running, not collected...)
EXIT_BACKEND = 5      # Slurm / sacct / the local runner failed
EXIT_CHECK = 6        # a verification found problems (data check, artifact check)


class CrackopsError(Exception):
    """An error a user can act on: ``message`` says what is wrong, ``hint`` what to do."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(CrackopsError):
    exit_code = EXIT_USAGE


class NotFoundError(CrackopsError):
    exit_code = EXIT_NOT_FOUND


class StateError(CrackopsError):
    exit_code = EXIT_STATE


class BackendError(CrackopsError):
    exit_code = EXIT_BACKEND


class CheckError(CrackopsError):
    exit_code = EXIT_CHECK


class RegistryError(StateError):
    """The registry file cannot be used (not an SQLite database, truncated, malformed)."""
