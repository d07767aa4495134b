"""A real terminal for tests: a tmux session of a given size, read back with capture-pane."""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid

from conftest import REPO, require_tool


def wait_for(predicate, timeout: float, step: float = 0.25):
    """The first truthy value of predicate() within timeout seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


class Tmux:
    """`command` (a shell line) in a detached tmux session of width × height, run from the
    repository with NO_COLOR=1. COLUMNS/LINES of whoever started the tmux server would
    override the pane's size, so they are unset. Without a command: an interactive bash."""

    def __init__(self, width: int, height: int, command: str | None = None) -> None:
        require_tool("tmux")
        self.name = f"hxd-{uuid.uuid4().hex[:12]}"
        inner = command or "exec bash --norc --noprofile -i"
        line = f"cd {shlex.quote(str(REPO))} && export NO_COLOR=1 PS1='$ ' && unset COLUMNS LINES && {inner}"
        self._tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), line)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name)

    def type(self, line: str) -> None:
        """Type a line into the pane and press Enter."""
        self._tmux("send-keys", "-t", self.name, "-l", line)
        self._tmux("send-keys", "-t", self.name, "Enter")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def wait(self, predicate, timeout: float) -> str | None:
        """The screen, once predicate(screen) holds (None after timeout)."""
        return wait_for(lambda: (s := self.screen()) and predicate(s) and s, timeout)

    def close(self) -> None:
        self._tmux("kill-session", "-t", self.name)

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
