"""How a command hands over its result: output files (JSON, JUnit, HTML, a bundle) and the
ending every reporting command shares — the JSON if asked, the human view, the exit code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from helixdiag.errors import ConfigError
from helixdiag.report import bundle, html, junit


def finish(app, code: int, *, show: Callable[[], object], json_dest: str | None = None,
           document: Callable[[], Any] | None = None) -> None:
    """Write `document()` as JSON when --json asked for it ('-': stdout, nothing else there),
    then `show()` the human view, then end with `code` (0 no failure, 1 a failure, …)."""
    if json_dest and document is not None:
        write_json(app, json_dest, document())
    show()
    if code:
        raise click.exceptions.Exit(code)


def write_report_files(report, *, junit_dest: str | None = None, html_dest: str | None = None,
                       bundle_dest: str | None = None) -> None:
    """A run's report as the files asked for, besides its JSON (see `finish`)."""
    if bundle_dest:
        try:
            bundle.write(report, bundle_dest)
        except OSError as exc:
            raise ConfigError(f"cannot write {bundle_dest}: {exc.strerror or exc}") from None
    if junit_dest:
        write_file(junit_dest, junit.render(report))
    if html_dest:
        write_file(html_dest, html.render(report))


def write_file(path: str, content: str | bytes) -> int:
    """Write an output file; returns the bytes written. A failure is one line, exit 2."""
    data = content.encode() if isinstance(content, str) else content
    try:
        Path(path).expanduser().write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(data)


def write_json(app, destination: str, document: Any) -> None:
    """`-` → stdout (and nothing else there), else a file."""
    text = json.dumps(document, indent=2, default=str)
    if destination == "-":
        app.terminal.write_machine(text)
        return
    write_file(destination, text + "\n")
