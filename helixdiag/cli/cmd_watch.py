"""`helixdiag watch`: the path live — layer status changes and per-hop stream figures."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from datetime import datetime

import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from helixdiag.cli.cmd_run import CONFIG_KEYS, run_options
from helixdiag.config import resolve
from helixdiag.errors import ConfigError
from helixdiag.layers import LAYERS
from helixdiag.probes import Status
from helixdiag.report.text import SYMBOL
from helixdiag.watch import Watcher


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

            live = Live(console=t.human, refresh_per_second=4, transient=False)
            live.start()
        while not stop.is_set():
            changes = watcher.round()
            if live is None:
                for ev in changes:
                    t.print(_event_line(ev), markup=True)
            deadline = time.monotonic() + interval
            while time.monotonic() < deadline and not stop.is_set():
                if live is not None:
                    live.update(_view(watcher, interval))
                stop.wait(0.25)
            if rounds is not None and watcher.rounds >= rounds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if live is not None:
            with contextlib.suppress(Exception):
                live.update(_view(watcher, interval))
            live.stop()
        watcher.stop()
        if jsonl is not None:
            jsonl.close()
    s = watcher.summary()
    t.print(f"watched {s['duration_s']:.0f} s, {s['rounds']} rounds, {s['changes']} changes")
    for name, layer in s["layers"].items():
        if layer["failing_s"] or layer["status"] == "fail":
            t.print(f"  {name}: now {layer['status']}"
                    + (f" ({layer['failure_id']})" if layer["failure_id"] else "")
                    + f", failing for {layer['failing_s']:.0f} s in total")


def _event_line(ev) -> str:
    at = datetime.fromtimestamp(ev.at).strftime("%H:%M:%S")
    before = ev.before or "—"
    fid = f" [id]{ev.failure_id}[/id]" if ev.failure_id else ""
    return f"[muted]{at}[/muted] {ev.layer}: {before} → [{ev.after}]{ev.after}[/{ev.after}]{fid}"


def _view(watcher: Watcher, interval: float):
    table = Table(title=f"helixdiag watch · round {watcher.rounds} · every {interval:g} s · Ctrl-C stops",
                  title_justify="left")
    for col in ("layer", "status", "since", "what"):
        table.add_column(col)
    for layer in LAYERS:
        state = watcher.layers.get(layer.name)
        if state is None:
            continue
        status = Status(state.status)
        since = datetime.fromtimestamp(state.since).strftime("%H:%M:%S")
        what = (f"[id]{state.failure_id}[/id] " if state.failure_id else "") + Text(state.summary).plain[:90]
        table.add_row(layer.name, f"[{status}]{SYMBOL[status]} {status}[/{status}]", since, what)
    streams = Table(title="streams", title_justify="left")
    for col in ("hop", "endpoint", "frames/s", "latency p50/p95", "bytes/frame"):
        streams.add_column(col)
    for st in watcher.stream_stats():
        if st["ok"]:
            streams.add_row(st["hop"], st["endpoint"], f"{st['fps']:.1f}",
                            f"{st['latency_p50_ms']:.1f} / {st['latency_p95_ms']:.1f} ms", f"{st['bytes_per_frame']}")
        else:
            streams.add_row(st["hop"], st["endpoint"], "[fail]0[/fail]", f"[fail]{st['error'][:60]}[/fail]", "—")
    recent = [_event_line(ev) for ev in watcher.events[-8:]]
    return Group(table, streams, Text.from_markup("changes:\n" + "\n".join(recent) if recent else "changes: none yet"))
