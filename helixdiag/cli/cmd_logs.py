"""`helixdiag logs FILE...`: scan vsockenc GST_DEBUG logs, QEMU `[HELIX]` logs, desktop-bridge's
output and helix-drm-manager's journal for known signatures.

Each file is scanned in bounded memory (`helixdiag.logscan`); its kind is detected from the
content unless `--kind` says. Every file says how many lines were read and recognised; a
file with nothing recognised is never called healthy. Exit codes: 0 no failure (warnings
allowed), 1 a finding of severity fail, 2 a file could not be read or is not a text log
(the others are still scanned and reported).
"""

from __future__ import annotations

from functools import partial

import click

from helixdiag import logscan
from helixdiag.cli import log_input, progress
from helixdiag.cli.options import output_file
from helixdiag.cli.reporting import finish
from helixdiag.errors import EXIT_FAILURE, EXIT_USAGE, ConfigError
from helixdiag.findings import worst_status
from helixdiag.report import logs_text

SCHEMA = "helixdiag.logs/v1"


@click.command("logs")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--kind", type=click.Choice(["auto", *logscan.KINDS]), default="auto", show_default=True,
              help="Log kind: vsockenc GST_DEBUG (gst), QEMU stderr / helix-debug.log (qemu), "
                   "desktop-bridge's output (bridge: docker logs DESKTOP) or helix-drm-manager's "
                   "journal (drm: journalctl -u helix-drm-manager); auto detects it from the content.")
@click.option("--json", "json_dest", metavar="PATH|-", callback=output_file,
              help="Write the results as JSON ('-' = stdout only).")
@click.pass_obj
def command(app, files: tuple[str, ...], kind: str, json_dest: str | None) -> None:
    """Scan vsockenc, QEMU, desktop-bridge and helix-drm-manager logs for known failure signatures.

    FILE may be plain text or gzip; '-' reads standard input. Every finding names its
    failure id; `helixdiag explain ID` tells what it means and how to fix it.

    \b
    Examples:
      docker logs ubuntu-external-1 2>&1 | helixdiag logs -
      journalctl -u helix-drm-manager --no-pager | helixdiag logs --kind drm -
      helixdiag logs qemu-stderr.log gst.log
      helixdiag logs --kind qemu helix-debug.log --json report.json
    """
    term = app.terminal
    if json_dest == "-":
        term.reserve_stdout()
    summaries: list[logscan.LogSummary] = []
    errors: list[dict[str, str]] = []
    for name in files:
        try:
            summary = _scan(term, name, kind)
        except ConfigError as exc:
            term.error(exc.message)
            errors.append({"path": name, "error": exc.message})
            continue
        if summary.looks_binary:
            message = (f"{summary.source or name}: not a text log ({summary.binary_lines} of "
                       f"{summary.lines} lines hold binary or undecodable bytes)")
            term.error(message)
            errors.append({"path": name, "error": message})
            continue
        summaries.append(summary)
        logs_text.render(term, summary)
    status = worst_status([f for s in summaries for f in s.findings])
    code = EXIT_USAGE if errors else EXIT_FAILURE if status == "fail" else 0
    finish(app, code, json_dest=json_dest, document=partial(_document, summaries, status, errors),
           show=partial(logs_text.verdict, term, summaries, status, errors))


def _document(summaries: list[logscan.LogSummary], status: str, errors: list[dict[str, str]]) -> dict:
    return {
        "schema": SCHEMA,
        "status": status,
        "findings": sorted({f.failure_id for s in summaries for f in s.findings}),
        "files": [s.to_dict() for s in summaries],
        "errors": errors,
    }


def _scan(term, name: str, kind: str) -> logscan.LogSummary:
    """One log, its bytes shown as they are scanned."""
    with progress.scanning(term, log_input.source_name(name), log_input.size_of(name)) as read:
        return log_input.scan(name, kind, read)
