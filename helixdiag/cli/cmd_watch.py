"""`helixdiag watch`: the path live — layer status changes and per-hop stream figures."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from datetime import datetime

import click
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from helixdiag.cli.cmd_run import CONFIG_KEYS, run_options
from helixdiag.cli.words import count
from helixdiag.config import resolve
from helixdiag.errors import ConfigError
from helixdiag.layers import LAYERS
from helixdiag.report.text import SYMBOL
from helixdiag.results import Status
from helixdiag.watch import FLOWING, STARTING, Event, Watcher


@click.command("watch")
@run_options
@click.option("--interval", type=click.FloatRange(0.5, 3600), default=3.0, show_default=True,
              help="Seconds between probe rounds.")
@click.option("--jsonl", "jsonl_path", metavar="PATH", help="Append each state change as a JSON line.")
@click.option("--rounds", type=click.IntRange(1, None), help="Stop after N rounds (default: until Ctrl-C).")
@click.pass_obj
def command(app, interval, jsonl_path, rounds, **flags) -> None:
    """Re-run the cheap probes every few seconds and keep a stream open on each hop.

    Shows when a layer goes from pass to fail and back, with timestamps, and the
    frames/s, latency and bytes/frame of each hop's stream as they change — the view to
    leave open while restarting the VM. Ctrl-C exits with a summary.
    """
    t = app.terminal
    cfg = resolve({k: flags.get(k) for k in CONFIG_KEYS})
    jsonl = None
    if jsonl_path:
        try:
            jsonl = open(jsonl_path, "a")  # noqa: SIM115 - closed in finally
        except OSError as exc:
            raise ConfigError(f"cannot write {jsonl_path}: {exc.strerror or exc}") from None
    watcher = Watcher(cfg, jsonl=jsonl)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    live = None
    try:
        if t.is_tty and not t.quiet:
            from rich.live import Live

            # The view is sized to the terminal; "crop" only matters on a tiny one.
            live = Live(console=t.human, refresh_per_second=4, transient=False, vertical_overflow="crop")
            live.start()
        while not stop.is_set():
            observed = watcher.round()
            if live is None:
                for ev in observed:
                    t.print(_event_line(ev), soft_wrap=True)
            deadline = time.monotonic() + interval
            while time.monotonic() < deadline and not stop.is_set():
                if live is not None:
                    live.update(_view(watcher, interval, t.human))
                stop.wait(0.25)
            if rounds is not None and watcher.rounds >= rounds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if live is not None:
            with contextlib.suppress(Exception):
                live.update(_view(watcher, interval, t.human))
            live.stop()
        watcher.stop()
        if jsonl is not None:
            jsonl.close()
    s = watcher.summary()
    t.print(f"watched {s['duration_s']:.0f} s, {count(s['rounds'], 'round')}, {count(s['changes'], 'change')}")
    for name, layer in s["layers"].items():
        if layer["failing_s"] or layer["status"] == "fail":
            t.print(f"  {name}: now {layer['status']}"
                    + (f" ({layer['failure_id']})" if layer["failure_id"] else "")
                    + f", failing for {layer['failing_s']:.0f} s in total")


def _event_line(ev: Event) -> Text:
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


def _view(watcher: Watcher, interval: float, console: Console) -> Group:
    """Fits the terminal: one line per layer and per stream, then as many of the latest
    changes as the height leaves room for."""
    width, height = console.size
    title = _one_line((f"helixdiag watch · round {watcher.rounds} · every {interval:g} s · Ctrl-C stops",
                       "bold"))

    layers = _table("layer", "status", "since")
    layers.add_column("what")  # the one column that gives way
    for layer in LAYERS:
        state = watcher.layers.get(layer.name)
        if state is None:
            continue
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
    recent = [_one_line(_event_line(ev)) for ev in watcher.events[-room:]]
    changes = Text("changes:", style="bold") if recent else Text("changes: none yet", style="bold")
    return Group(title, layers, Text(), streams, Text(), changes, *recent)
