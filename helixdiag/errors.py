"""The tool's own error vocabulary, mapped onto the exit codes of docs/run.md.

Exit codes: 0 no failure, 1 at least one failure, 2 usage or configuration error,
3 the tool itself crashed. Anything raised as a `HelixdiagError` is shown as one line
(no traceback); anything else is a crash.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CRASH = 3


class HelixdiagError(Exception):
    """An expected problem with a one-line explanation for the user."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(HelixdiagError):
    """Bad options or arguments."""


class ConfigError(HelixdiagError):
    """A bad profile, environment value or path given to the tool."""

