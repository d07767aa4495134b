"""The one object that owns all terminal output.

Commands never print directly: they ask the `Terminal` (set up from the global options,
wherever on the command line they were given) so that colour, verbosity and "JSON only on
stdout" are decided in one place. `-q` keeps errors and the one verdict line (`verdict()`).

Live displays (a progress bar, a spinner that says what is being waited on) are drawn only
for a person at a terminal (`interactive`): never into a pipe or a file, never under `-q`,
and they vanish when the work is done, so the output that stays is the same everywhere.

`guard_output()` makes a reader that goes away (`helixdiag … | head -1`) a non-event: the
rest of the output is discarded and the command ends with its own exit code.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn
from rich.table import Column
from rich.text import Text
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
        self._stdout_reserved = False
        self.configure(verbosity=verbosity, no_color=no_color)

    def configure(self, *, verbosity: int, no_color: bool) -> None:
        """(Re)apply the global options: they may come after the subcommand too."""
        self.verbosity = verbosity
        self.no_color = color_disabled(no_color)
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

    def verdict(self, *objects: Any, **kwargs: Any) -> None:
        """The command's final verdict line: shown even with -q."""
        self.human.print(*objects, **kwargs)

    def labelled(self, label: str, text: str | Text, *, indent: str = "  ", style: str = "hint") -> None:
        """`indent + label + text`, the text's continuation lines hanging under its first
        character instead of falling back to column 0. `text` is plain (never markup)."""
        if not self.quiet:
            self.human.print(hanging(indent + label, text, style=style))

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
            self.labelled("remedy:", finding.remedy, indent=indent)
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

    @property
    def interactive(self) -> bool:
        """A person watches a terminal: live displays are drawn. Not into a pipe or a file
        (FORCE_COLOR only colours those), not with TERM=dumb or TTY_INTERACTIVE=0, not under -q."""
        console = self.human
        try:
            tty = console.file.isatty()
        except (AttributeError, ValueError):  # no isatty, or already closed
            tty = False
        return tty and console.is_interactive and not self.quiet

    def progress(self, *columns: str | ProgressColumn) -> Progress:
        """A rich progress display with these columns, drawn only when `interactive` (else it
        takes the same calls and shows nothing), and erased when it stops. Use it as a context
        manager: the work inside runs the same either way."""
        return Progress(*columns, console=self.human, transient=True, disable=not self.interactive,
                        redirect_stdout=False, redirect_stderr=False, expand=True)

    @contextlib.contextmanager
    def busy(self, text: str) -> Iterator[Callable[[str], None]]:
        """A spinner with `text` while the body runs (only when `interactive`); yields a
        function that changes the text."""
        with self.progress(SpinnerColumn(), text_column()) as display:
            task = display.add_task(text, total=None)
            yield lambda new: display.update(task, description=new)


def text_column(template: str = "{task.description}") -> TextColumn:
    """A progress display's text (plain, never markup): it takes the width the other columns
    leave and stays on one line, cut with an ellipsis on a narrow terminal."""
    return TextColumn(template, markup=False,
                      table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"))


def count(n: int, noun: str) -> str:
    """`1 client`, `2 clients`, `0 changes` (nouns with a plain plural `s`)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def hanging(label: str, text: str | Text, *, style: str = "hint", text_style: str = "") -> Hanging:
    """`label` (plain, in `style`) then `text`, wrapped with a hanging indent."""
    head = Text(label, style=style) + (Text(" ") if label.strip() else Text())
    body = text if isinstance(text, Text) else Text(text, style=text_style)
    return Hanging(head, body)


class Hanging:
    """A renderable: head + body, the body word-wrapped to the width it is given (a terminal
    line or a table cell) with its continuation lines under the body's first character."""

    def __init__(self, head: Text, body: Text) -> None:
        self.head, self.body = head, body

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(10, options.max_width - self.head.cell_len)
        lines = list(self.body.wrap(console, width)) if self.body.plain else [Text()]
        pad = Text(" " * self.head.cell_len)
        for i, line in enumerate(lines):
            line.rstrip()
            out = (self.head if i == 0 else pad) + line
            out.no_wrap = True
            yield out

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest_word = max((len(w) for w in self.body.plain.split()), default=0)
        head = self.head.cell_len
        return Measurement(head + min(longest_word, 20), head + self.body.cell_len).clamp(
            max_width=options.max_width)


class PipeSafeStream:
    """sys.stdout (or stderr), except that a reader that went away (EPIPE) is not an error:
    from then on the output goes to /dev/null, so neither rich, nor a later write, nor the
    interpreter's flush at exit sees a BrokenPipeError ("Exception ignored …")."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard()
            with contextlib.suppress(OSError, ValueError):  # what was buffered: to /dev/null
                self._stream.flush()

    def _discard(self) -> None:
        self.reader_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_output() -> tuple[Any, Any]:
    """Wrap stdout and stderr in `PipeSafeStream` before any console is made (`2>&1 | head`
    closes both); returns the streams it wrapped, for `restore_output`."""
    original = (sys.stdout, sys.stderr)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, PipeSafeStream):
            setattr(sys, name, PipeSafeStream(stream))
    return original


def finish_output(original: tuple[Any, Any]) -> None:
    """Flush at the very end (a reader that is gone by now is not an error either), then put
    the original streams back."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            (stream if isinstance(stream, PipeSafeStream) else PipeSafeStream(stream)).flush()
    sys.stdout, sys.stderr = original


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
