"""Running a tool for a fact: always with a timeout, never raising."""

from __future__ import annotations

import shutil
import subprocess
import threading
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


class Transcript:
    """The commands a run ran and what they printed (bounded), for the bug-ticket bundle: the
    raw output behind each fact, so a report from a real Mac can check the parsers."""

    MAX_COMMANDS = 64
    MAX_CHARS = 64 * 1024  # of each command's stdout and stderr

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.results: list[CommandResult] = []

    def add(self, result: CommandResult) -> None:
        with self._lock:
            if len(self.results) < self.MAX_COMMANDS:
                self.results.append(CommandResult(result.argv, result.returncode, result.stdout[:self.MAX_CHARS],
                                                  result.stderr[:self.MAX_CHARS], result.error))

    def text(self) -> str:
        with self._lock:
            if not self.results:
                return "(no command was run: the facts came from the process table and /proc)\n"
            return "".join(f"$ {' '.join(r.argv)}\n# exit {r.returncode}" + (f", {r.error}" if r.error else "")
                           + f"\n{r.stdout}" + (f"# stderr:\n{r.stderr}" if r.stderr else "") + "\n"
                           for r in self.results)


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
