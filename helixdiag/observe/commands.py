"""Running a tool for a fact: always with a timeout, never raising."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

COMMAND_TIMEOUT = 5.0


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    error: str | None = None  # "not installed", "timed out after 5 s", …

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0


def run_command(argv: list[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """Run a tool with a hard timeout; never raises (the error is in the result)."""
    if shutil.which(argv[0]) is None:
        return CommandResult(tuple(argv), None, "", "", f"{argv[0]} is not installed")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return CommandResult(tuple(argv), None, "", "", f"timed out after {timeout:g} s")
    except OSError as exc:
        return CommandResult(tuple(argv), None, "", "", str(exc))
    return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
