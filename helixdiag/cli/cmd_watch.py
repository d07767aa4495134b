"""`helixdiag watch`: the path live — layer status changes and per-hop stream figures."""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import click
from rich.live import Live

from helixdiag.cli import watch_view
from helixdiag.cli.options import CONFIG_KEYS, FloatRange, IntRange, output_file, run_options
from helixdiag.config import resolve
from helixdiag.errors import ConfigError
from helixdiag.watch import Watcher


@click.command("watch")
@run_options
@click.option("--interval", type=FloatRange(0.5, 3600), default=3.0, show_default=True,
              help="Seconds between probe rounds.")
@click.option("--jsonl", "jsonl_path", metavar="PATH", callback=output_file,
              help="Append each state change as a JSON line.")
@click.option("--rounds", type=IntRange(1, None), help="Stop after N rounds (default: until Ctrl-C).")
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
        if t.interactive:
            # The view is sized to the terminal; "crop" only matters on a tiny one.
            live = Live(console=t.human, refresh_per_second=4, transient=False, vertical_overflow="crop")
            live.start()
        while not stop.is_set():
            observed = watcher.round()
            if live is None:
                for ev in observed:
                    t.print(watch_view.event_line(ev), soft_wrap=True)
            deadline = time.monotonic() + interval
            while time.monotonic() < deadline and not stop.is_set():
                if live is not None:
                    live.update(watch_view.view(watcher, interval, t.human))
                stop.wait(0.25)
            if rounds is not None and watcher.rounds >= rounds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if live is not None:
            with contextlib.suppress(Exception):
                live.update(watch_view.view(watcher, interval, t.human))
            live.stop()
        watcher.stop()
        if jsonl is not None:
            jsonl.close()
    watch_view.summary(t, watcher.summary())
