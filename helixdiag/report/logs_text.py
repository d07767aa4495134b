"""The terminal view of a log scan: per file what it is, its key facts, every finding and
note; then one verdict line for all files (all that -q leaves besides errors)."""

from __future__ import annotations

from rich.markup import escape

from helixdiag import logscan
from helixdiag.terminal import count

_LABEL = 9  # width of the fact labels


def _row(t, label: str, text: str) -> None:
    t.print(f"  [muted]{label:<{_LABEL}}[/muted] {text}", soft_wrap=True)


def render(term, summary: logscan.LogSummary) -> None:
    """One file: what it is, its key facts, then every finding and note."""
    src = escape(summary.source or "?")
    if isinstance(summary, logscan.GstLogSummary):
        _render_gst(term, src, summary)
    elif isinstance(summary, logscan.QemuLogSummary):
        _render_qemu(term, src, summary)
    elif isinstance(summary, logscan.BridgeLogSummary | logscan.DrmLogSummary):
        what = "desktop-bridge log" if summary.kind == "bridge" else "helix-drm-manager log"
        term.print(f"[bold]{src}[/bold]  {what} · {summary.lines} lines", soft_wrap=True)
        _row(term, summary.kind, escape(summary.headline()))
    else:
        term.print(f"[bold]{src}[/bold]  not a log of a kind this tool knows (vsockenc, QEMU, "
                   "desktop-bridge, helix-drm-manager)")
    _lines_row(term, summary)
    if summary.long_lines or summary.binary_lines:
        _row(term, "input", f"{summary.long_lines} lines cut at {logscan.MAX_LINE_CHARS // 1024} KiB · "
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


def _lines_row(t, s: logscan.LogSummary) -> None:
    """What was read and what of it was recognised (the kinds of line only with -v)."""
    read = f"{s.lines} read"
    if not s.recognised_lines:
        if isinstance(s, logscan.GstLogSummary):
            why = (f"{s.gst_lines} in GST_DEBUG shape, none from vsockenc (GST_DEBUG=vsockenc:5?)"
                   if s.gst_lines else "no GST_DEBUG line at all")
        elif isinstance(s, logscan.QemuLogSummary):
            why = "no [HELIX] line this tool knows"
        elif isinstance(s, logscan.BridgeLogSummary | logscan.DrmLogSummary):
            why = f"no {s.kind} line this tool knows"
        else:
            why = ""  # the note says what was looked for
        t.labelled(f"{'lines':<{_LABEL}}", f"{read} · none recognised" + (f": {why}" if why else ""),
                   style="muted")
        return
    kinds = s.recognised_kinds
    unknown = s.lines - s.recognised_lines
    text = (f"{read} · {s.recognised_lines} recognised, {count(len(kinds), 'kind')}"
            + (f" · {unknown} not recognised" if unknown else ""))
    if t.verbosity > 0:
        text += ": " + ", ".join(f"{k} ×{n}" for k, n in kinds.items())
    t.labelled(f"{'lines':<{_LABEL}}", text, style="muted")


def _render_gst(t, src: str, s: logscan.GstLogSummary) -> None:
    element = f" · element {escape(s.element)}" if s.element else ""
    t.print(f"[bold]{src}[/bold]  vsockenc GST_DEBUG log · {s.lines} lines{element}",
                       soft_wrap=True)
    if s.video_mode:
        _row(t, "mode", f"desktop-bridge uses {s.video_mode}")
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
        _row(t, "frames", " · ".join(parts))
    if s.pixel_bytes:
        _row(t, "pixels", f"{s.pixel_bytes} bytes/frame · {s.frame_size} · {s.pixel_format or '?'}")
    if s.connects or s.connect_failures:
        targets = ", ".join(s.connect_targets) or "-"
        _row(t, "connect", escape(f"{targets} · {s.connects} connected · "
                                    f"{s.connect_failures} failed"))
    elif s.tcp_port is not None:
        _row(t, "connect", escape(f"tcp {s.tcp_host}:{s.tcp_port}"))


def _render_qemu(t, src: str, s: logscan.QemuLogSummary) -> None:
    bits = []
    if s.generation:
        bits.append(s.generation)
    if s.version:
        bits.append(f"VERSION {s.version}")
    head = " · ".join([f"{s.lines} lines", *bits])
    t.print(f"[bold]{src}[/bold]  QEMU host log · {escape(head)}", soft_wrap=True)
    if not s.has_helix:
        _row(t, "helix", "no [HELIX] line at all")
        return
    if s.steps:
        ladder = " → ".join(s.steps_reached)
        _row(t, "steps", f"{ladder} (last: {s.last_step})")
    if s.listen:
        ln = s.listen
        if ln.get("transport") == "tcp":
            text = f"tcp {ln['host']}:{ln['port']} (guest {ln['guest_host']}:{ln['guest_port']})"
        else:
            text = f"unix {ln.get('path')} (proxy port {ln.get('port')})"
        _row(t, "listen", escape(text))
    elif s.init_port is not None:
        _row(t, "listen", f"nothing (init for port {s.init_port})")
    if s.clients_connected or s.clients_rejected:
        _row(t, "clients", f"{s.clients_connected} connected · {s.clients_disconnected} "
                             f"disconnected · {s.clients_rejected} rejected · "
                             f"{s.clients_open_at_end} open at the end")
    if s.frame_requests or s.replies_sent:
        _row(t, "requests", f"{s.frame_requests} frame requests · {s.replies_sent} replies sent")
    if s.subscribes or s.encodes or s.frames_captured:
        _row(t, "scanout", f"{s.subscribes} subscribes · {s.frames_captured} frames captured · "
                             f"{s.frames_encoded} encoded · {s.encode_errors} encode errors · "
                             f"{s.frames_dropped} frames dropped")
    if s.runs > 1:
        _row(t, "runs", f"{s.runs} QEMU runs in this log; the last one is shown")


def verdict(terminal, summaries: list[logscan.LogSummary], status: str,
            errors: list[dict[str, str]]) -> None:
    """The last line (all that -q leaves besides errors). PASS only when every file was read
    and something in each was recognised."""
    if not summaries:
        return  # nothing was scanned: the error lines say it all
    n = len(summaries)
    files = count(n, "file")
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
        line = (f"[warn]NOTHING RECOGNISED[/warn] in {files}: {count(read, 'line')} "
                f"read, none of them a vsockenc, QEMU [HELIX], desktop-bridge or helix-drm-manager line "
                f"this tool knows{tail}")
    elif blind or errors:
        some = f"{n - len(blind)} of {files}" if n > 1 else files
        line = f"[warn]INCOMPLETE[/warn] no known failure signature in {some}{tail}"
    else:
        line = f"[pass]PASS[/pass] no known failure signature in {files}"
    terminal.verdict(line, soft_wrap=True)
