"""The one object that owns all terminal output.

Commands never print directly: they ask the `Terminal` (set up once from the global
options) so that colour, verbosity and "JSON only on stdout" are decided in one place.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.theme import Theme

THEME = Theme(
    {
        "pass": "bold green",
        "warn": "bold yellow",
        "fail": "bold red",
        "skip": "dim",
        "blocked": "magenta",
        "error": "bold red reverse",
        "id": "cyan",
        "hint": "italic",
        "muted": "dim",
    }
)


def color_disabled(no_color_flag: bool) -> bool:
    """`--no-color`, or NO_COLOR set to anything non-empty (https://no-color.org)."""
    return no_color_flag or bool(os.environ.get("NO_COLOR"))


class Terminal:
    """Human output goes to stderr when stdout is reserved for machine output (`--json -`)."""

    def __init__(self, *, verbosity: int = 0, no_color: bool = False) -> None:
        self.verbosity = verbosity
        self.no_color = color_disabled(no_color)
        self._stdout_reserved = False
        self._make_consoles()

    def _make_consoles(self) -> None:
        kwargs: dict[str, Any] = {"theme": THEME, "highlight": False}
        if self.no_color:
            kwargs["no_color"] = True
        self.out = Console(file=sys.stdout, **kwargs)
        self.err = Console(file=sys.stderr, stderr=True, **kwargs)

    def reserve_stdout(self) -> None:
        """From now on stdout carries only machine output; human text goes to stderr."""
        self._stdout_reserved = True

    @property
    def human(self) -> Console:
        return self.err if self._stdout_reserved else self.out

    @property
    def quiet(self) -> bool:
        return self.verbosity < 0

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not self.quiet:
            self.human.print(*objects, **kwargs)

    def detail(self, *objects: Any, **kwargs: Any) -> None:
        """Shown only with -v."""
        if self.verbosity > 0:
            self.human.print(*objects, **kwargs)

    def error(self, message: str, hint: str | None = None) -> None:
        """Errors are always shown, on stderr, one line (plus an optional hint)."""
        self.err.print(f"[fail]error:[/fail] {_escape(message)}", soft_wrap=True)
        if hint:
            self.err.print(f"[hint]hint:[/hint] {_escape(hint)}", soft_wrap=True)

    def finding(self, finding: Any, *, where: str | None = None, remedy: bool = True, indent: str = "  ") -> None:
        """One finding, the same everywhere (send, lint, logs): severity, id, message, then
        where it was seen, the remedy and the `explain` pointer."""
        style = "fail" if finding.severity == "fail" else "warn"
        times = f" (×{finding.count})" if getattr(finding, "count", 1) > 1 else ""
        self.print(f"[{style}]{finding.severity.upper()}[/{style}] [id]{finding.failure_id}[/id]{times}: "
                   f"{_escape(finding.message)}", soft_wrap=True)
        if where:
            self.print(f"{indent}[muted]{_escape(where)}[/muted]", soft_wrap=True)
        if remedy:
            self.print(f"{indent}[hint]remedy:[/hint] {_escape(finding.remedy)}")
        self.print(f"{indent}[muted]more: helixdiag explain {finding.failure_id}[/muted]")

    def write_machine(self, text: str) -> None:
        """Raw machine output (JSON) to stdout, untouched by rich."""
        sys.stdout.write(text)
        if not text.endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()

    @property
    def is_tty(self) -> bool:
        return self.human.is_terminal


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
