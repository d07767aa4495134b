"""`helixdiag logs FILE...`: scan GST_DEBUG (vsockenc) and QEMU `[HELIX]` logs for known signatures.

Each file is scanned in bounded memory (`helixdiag.logscan`); its kind is detected from the
content unless `--kind` says. Every file says how many lines were read and recognised; a
file with nothing recognised is never called healthy. Exit codes: 0 no failure (warnings
allowed), 1 a finding of severity fail, 2 a file could not be read or is not a text log
(the others are still scanned and reported).
"""

from __future__ import annotations

import io
import os
import sys

import click
from rich.markup import escape

from helixdiag import logscan
from helixdiag.cli.options import output_file, write_json
from helixdiag.errors import EXIT_FAILURE, EXIT_USAGE, ConfigError
from helixdiag.findings import worst_status

SCHEMA = "helixdiag.logs/v1"
_LABEL = 9  # width of the fact labels


@click.command("logs")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--kind", type=click.Choice(["auto", "gst", "qemu"]), default="auto", show_default=True,
              help="Log kind: vsockenc GST_DEBUG (gst) or QEMU stderr / helix-debug.log (qemu); "
                   "auto detects it from the content.")
@click.option("--json", "json_dest", metavar="PATH|-", callback=output_file,
              help="Write the results as JSON ('-' = stdout only).")
@click.pass_obj
def command(app, files: tuple[str, ...], kind: str, json_dest: str | None) -> None:
    """Scan vsockenc GST_DEBUG logs and QEMU [HELIX] logs for known failure signatures.

    FILE may be plain text or gzip; '-' reads standard input. Every finding names its
    failure id; `helixdiag explain ID` tells what it means and how to fix it.

    \b
    Examples:
      docker logs ubuntu-external-1 2>&1 | helixdiag logs -
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
            summary = _scan(name, kind)
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
        render(app, summary)
    findings = [f for s in summaries for f in s.findings]
    status = worst_status(findings)
    if json_dest:
        write_json(app, json_dest, {
            "schema": SCHEMA,
            "status": status,
            "findings": sorted({f.failure_id for f in findings}),
            "files": [s.to_dict() for s in summaries],
            "errors": errors,
        })
    _verdict(app, summaries, status, errors)
    if errors:
        raise click.exceptions.Exit(EXIT_USAGE)
    if status == "fail":
        raise click.exceptions.Exit(EXIT_FAILURE)


def _scan(name: str, kind: str) -> logscan.LogSummary:
    if name != "-":
        if not os.path.lexists(name):
            raise ConfigError(f"no such file: {name}")
        if os.path.isdir(name):
            raise ConfigError(f"{name} is a directory, not a log file")
    if name == "-":
        raw = getattr(sys.stdin, "buffer", None)
        if raw is None:  # stdin replaced by a text-only stream
            return logscan.scan_stream(sys.stdin, kind, "<stdin>")
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
        try:
            return logscan.scan_stream(text, kind, "<stdin>")
        finally:
            text.detach()  # leave stdin itself open
    return logscan.scan_file(name, kind)


def _row(app, label: str, text: str) -> None:
    app.terminal.print(f"  [muted]{label:<{_LABEL}}[/muted] {text}", soft_wrap=True)


def render(app, summary: logscan.LogSummary) -> None:
    """One file: what it is, its key facts, then every finding and note."""
    term = app.terminal
    src = escape(summary.source or "?")
    if isinstance(summary, logscan.GstLogSummary):
        _render_gst(app, src, summary)
    elif isinstance(summary, logscan.QemuLogSummary):
        _render_qemu(app, src, summary)
    else:
        term.print(f"[bold]{src}[/bold]  not a vsockenc GST_DEBUG log nor a QEMU host log")
    _lines_row(app, summary)
    if summary.long_lines or summary.binary_lines:
        _row(app, "input", f"{summary.long_lines} lines cut at {logscan.MAX_LINE_CHARS // 1024} KiB · "
                           f"{summary.binary_lines} lines with binary or undecodable bytes")
    for finding in summary.findings:
        ev = finding.evidence
        where = None
        if ev.get("line"):
            where = (f"line {ev['line_no']}: " if ev.get("line_no") else "") + str(ev["line"])
        term.finding(finding, where=where, remedy=False, indent="       ")
    for note in summary.notes:
        see = f" [muted](helixdiag explain {note.related})[/muted]" if note.related else ""
        term.print(f"  [muted]note:[/muted] {escape(note.message)}{see}", soft_wrap=True)


def _lines_row(app, s: logscan.LogSummary) -> None:
    """What was read and what of it was recognised (the kinds of line only with -v)."""
    read = f"{s.lines} read"
    if not s.recognised_lines:
        if isinstance(s, logscan.GstLogSummary):
            why = (f"{s.gst_lines} in GST_DEBUG shape, none from vsockenc (GST_DEBUG=vsockenc:5?)"
                   if s.gst_lines else "no GST_DEBUG line at all")
        elif isinstance(s, logscan.QemuLogSummary):
            why = "no [HELIX] line this tool knows"
        else:
            why = ""  # the note says what was looked for
        app.terminal.labelled(f"{'lines':<{_LABEL}}", f"{read} · none recognised" + (f": {why}" if why else ""),
                              style="muted")
        return
    kinds = s.recognised_kinds
    unknown = s.lines - s.recognised_lines
    text = (f"{read} · {s.recognised_lines} recognised, {len(kinds)} kind{'s' if len(kinds) != 1 else ''}"
            + (f" · {unknown} not recognised" if unknown else ""))
    if app.terminal.verbosity > 0:
        text += ": " + ", ".join(f"{k} ×{n}" for k, n in kinds.items())
    app.terminal.labelled(f"{'lines':<{_LABEL}}", text, style="muted")


def _render_gst(app, src: str, s: logscan.GstLogSummary) -> None:
    element = f" · element {escape(s.element)}" if s.element else ""
    app.terminal.print(f"[bold]{src}[/bold]  vsockenc GST_DEBUG log · {s.lines} lines{element}",
                       soft_wrap=True)
    if s.video_mode:
        _row(app, "mode", f"desktop-bridge uses {s.video_mode}")
    if s.frames_sent or s.frames_finished or s.frames_failed:
        parts = [f"{s.frames_sent} sent", f"{s.frames_finished} finished"]
        if s.frames_failed:
            parts.append(f"{s.frames_failed} failed")
        if s.last_sent:
            parts.append(f"last sent #{s.last_sent['frame']} at {s.last_sent['ts'] or '?'}")
        if s.last_finished:
            frame = s.last_finished["frame"]
            parts.append(f"last finished {'#' + str(frame) if frame is not None else '?'} at "
                         f"{s.last_finished['ts'] or '?'}")
        _row(app, "frames", " · ".join(parts))
    if s.pixel_bytes:
        _row(app, "pixels", f"{s.pixel_bytes} bytes/frame · {s.frame_size} · {s.pixel_format or '?'}")
    if s.connects or s.connect_failures:
        targets = ", ".join(s.connect_targets) or "-"
        _row(app, "connect", escape(f"{targets} · {s.connects} connected · "
                                    f"{s.connect_failures} failed"))
    elif s.tcp_port is not None:
        _row(app, "connect", escape(f"tcp {s.tcp_host}:{s.tcp_port}"))


def _render_qemu(app, src: str, s: logscan.QemuLogSummary) -> None:
    bits = []
    if s.generation:
        bits.append(s.generation)
    if s.version:
        bits.append(f"VERSION {s.version}")
    head = " · ".join([f"{s.lines} lines", *bits])
    app.terminal.print(f"[bold]{src}[/bold]  QEMU host log · {escape(head)}", soft_wrap=True)
    if not s.has_helix:
        _row(app, "helix", "no [HELIX] line at all")
        return
    if s.steps:
        ladder = " → ".join(s.steps_reached)
        _row(app, "steps", f"{ladder} (last: {s.last_step})")
    if s.listen:
        ln = s.listen
        if ln.get("transport") == "tcp":
            text = f"tcp {ln['host']}:{ln['port']} (guest {ln['guest_host']}:{ln['guest_port']})"
        else:
            text = f"unix {ln.get('path')} (proxy port {ln.get('port')})"
        _row(app, "listen", escape(text))
    elif s.init_port is not None:
        _row(app, "listen", f"nothing (init for port {s.init_port})")
    if s.clients_connected or s.clients_rejected:
        _row(app, "clients", f"{s.clients_connected} connected · {s.clients_disconnected} "
                             f"disconnected · {s.clients_rejected} rejected · "
                             f"{s.clients_open_at_end} open at the end")
    if s.frame_requests or s.replies_sent:
        _row(app, "requests", f"{s.frame_requests} frame requests · {s.replies_sent} replies sent")
    if s.subscribes or s.encodes:
        _row(app, "scanout", f"{s.subscribes} subscribes · {s.encodes} encodes · "
                             f"{s.frames_dropped} frames dropped")
    if s.runs > 1:
        _row(app, "runs", f"{s.runs} QEMU runs in this log; the last one is shown")


def _verdict(app, summaries: list[logscan.LogSummary], status: str,
             errors: list[dict[str, str]]) -> None:
    """The last line (all that -q leaves besides errors). PASS only when every file was read
    and something in each was recognised."""
    if not summaries:
        return  # nothing was scanned: the error lines say it all
    n = len(summaries)
    files = f"{n} file{'s' if n != 1 else ''}"
    blind = [s for s in summaries if not s.recognised_lines]
    tail = ""
    if blind and len(blind) < n:
        tail += "; nothing recognised in " + ", ".join(escape(s.source or "?") for s in blind)
    if errors:
        tail += f"; {len(errors)} could not be read"
    if status in ("fail", "warn"):
        ids = sorted({f.failure_id for s in summaries for f in s.findings if f.severity == status})
        label = "FAIL" if status == "fail" else "WARN"
        line = f"[{status}]{label}[/{status}] {', '.join(ids)} in {files}{tail}"
    elif len(blind) == n:
        read = sum(s.lines for s in blind)
        line = (f"[warn]NOTHING RECOGNISED[/warn] in {files}: {read} line{'s' if read != 1 else ''} "
                f"read, none of them a vsockenc or QEMU [HELIX] line this tool knows{tail}")
    elif blind or errors:
        some = f"{n - len(blind)} of {files}" if n > 1 else files
        line = f"[warn]INCOMPLETE[/warn] no known failure signature in {some}{tail}"
    else:
        line = f"[pass]PASS[/pass] no known failure signature in {files}"
    app.terminal.verdict(line, soft_wrap=True)
