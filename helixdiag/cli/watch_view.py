"""The terminal view of `watch`: the live view (one line per layer and per stream, then the
latest changes, fitted to the terminal), one line per change when there is no terminal, and
the summary at the end (what -q keeps). It lives in cli/, not report/, because it reads
`watch`'s state and report/ sits below watch."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from helixdiag.layers import LAYERS, VideoPath
from helixdiag.report.text import SYMBOL
from helixdiag.results import Status
from helixdiag.terminal import count
from helixdiag.watch import FLOWING, STARTING, Event, Watcher


def summary(t, s: dict) -> None:
    """Rounds, changes, and how long each layer was failing (`Watcher.summary()`)."""
    t.verdict(f"watched {s['duration_s']:.0f} s, {count(s['rounds'], 'round')}, {count(s['changes'], 'change')}")
    for name, layer in s["layers"].items():
        if layer["failing_s"] or layer["status"] == "fail":
            t.verdict(f"  {name}: now {layer['status']}"
                      + (f" ({layer['failure_id']})" if layer["failure_id"] else "")
                      + f", failing for {layer['failing_s']:.0f} s in total")


def event_line(ev: Event) -> Text:
    """One line: `12:00:03 unix-socket: pass → fail socket-missing`, a stream's with the
    detail of what broke it; a first observation says `initially`. Plain text, never markup
    (summaries quote peers and exceptions)."""
    at = datetime.fromtimestamp(ev.at).strftime("%H:%M:%S")
    line = Text.assemble((at, "muted"), " ", f"{ev.layer} {ev.hop}" if ev.hop else ev.layer, ": ")
    if ev.before is None:
        line.append("initially ")
    else:
        line.append(f"{ev.before} → ")
    line.append(ev.after, style=_style(ev.after))
    if ev.failure_id:
        line.append(f" {ev.failure_id}", style="id")
    if ev.hop and ev.summary and ev.after != FLOWING:
        line.append(f" ({ev.summary})", style="muted")
    return line


def _style(state: str) -> str:
    """A layer status is styled as itself; a stream's word is `pass` when flowing, else `fail`."""
    if state in tuple(Status):
        return state
    return "pass" if state == FLOWING else "fail"


def _one_line(*parts: str | Text | tuple[str, str]) -> Text:
    """A cell that never wraps: cut with an ellipsis where the column ends."""
    return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")


def _tail(text: str, width: int) -> str:
    """The end of `text` in `width` cells (an endpoint's port or socket name is at its end)."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in columns:
        table.add_column(col, no_wrap=True)
    return table


def view(watcher: Watcher, interval: float, console: Console) -> Group:
    """Fits the terminal: one line per layer and per stream, then as many of the latest
    changes as the height leaves room for."""
    width, height = console.size
    title = _one_line((f"helixdiag watch · round {watcher.rounds} · every {interval:g} s · Ctrl-C stops",
                       "bold"))

    layers = _table("layer", "status", "since")
    layers.add_column("what")  # the one column that gives way
    for layer in LAYERS:
        state = watcher.layers.get(layer.name)
        if state is None or (layer.path == VideoPath.SCANOUT and state.status == Status.SKIP):
            continue  # the scanout path's guest layers, not judged here, would cost three rows for nothing
        status = Status(state.status)
        since = datetime.fromtimestamp(state.since).strftime("%H:%M:%S")
        what = _one_line((f"{state.failure_id} ", "id") if state.failure_id else "", state.summary.replace("\n", " "))
        layers.add_row(layer.name, Text(f"{SYMBOL[status]} {status}", style=str(status)), since, what)

    streams = _table("stream", "fps", "latency p50/p95", "bytes/frame", "endpoint")
    rows = []
    for st in watcher.stream_stats():
        if st["ok"]:
            rows.append((st["hop"], f"{st['fps']:.1f}", f"{st['latency_p50_ms']:.1f} / {st['latency_p95_ms']:.1f} ms",
                         str(st["bytes_per_frame"]), st["endpoint"]))
        else:  # a word for what broke it; the detail is in the change log
            style = "muted" if st["state"] == STARTING else "fail"
            rows.append((st["hop"], "—", Text(st["state"], style=style), "—", st["endpoint"]))
    # The endpoint gets what the other columns leave, cut at its start: the port and the
    # socket's name are at its end.
    others = sum(max(len(col.header), *(len(str(row[i])) for row in rows)) + 2
                 for i, col in enumerate(streams.columns[:-1])) if rows else 0
    for row in rows:
        streams.add_row(*row[:-1], _tail(row[-1], max(12, width - others)))

    # title, layers and their header, blank, streams and their header, blank, "changes:"
    used = 1 + (1 + len(layers.rows)) + 1 + (1 + len(streams.rows)) + 1 + 1
    room = max(1, height - 1 - used)  # the last line stays free for the cursor
    recent = [_one_line(event_line(ev)) for ev in watcher.events[-room:]]
    changes = Text("changes:", style="bold") if recent else Text("changes: none yet", style="bold")
    return Group(title, layers, Text(), streams, Text(), changes, *recent)
