"""`helixdiag serve`: the reference host encoder/server (a stand-in for QEMU)."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime

import click
from rich.markup import escape

from helixdiag import net
from helixdiag.cli.options import SIZE, FloatRange, IntRange, output_file
from helixdiag.cli.reporting import write_json
from helixdiag.errors import ConfigError
from helixdiag.faults import FAULT_KINDS, MANAGER_FAULT_KINDS, parse_fault, parse_manager_fault
from helixdiag.protocol import DEFAULT_MAX_PAYLOAD
from helixdiag.server import FrameServer, ServerConfig
from helixdiag.server.drm_manager import DrmManager, ManagerConfig
from helixdiag.server.generations import GENERATIONS, default_listeners, generation, parse_picture
from helixdiag.terminal import count

FAULT_HELP = "; ".join(f"{k.name}{'[=S]' if k.default is not None else '=N' if k.takes_value else ''}: "
                       f"{k.description}" for k in FAULT_KINDS.values())


@click.command("serve")
@click.option("--tcp", "tcp", multiple=True, metavar="HOST:PORT",
              help="Listen on TCP (repeatable). A bare PORT binds 127.0.0.1. Port 0 picks a free one.")
@click.option("--unix", "unix", multiple=True, metavar="PATH",
              help="Listen on a Unix socket (repeatable). Only an absent path or a stale socket is taken.")
@click.option("--encoder", type=click.Choice(["auto", "x264", "videotoolbox"]), default="auto",
              show_default=True, help="auto = VideoToolbox on macOS when it opens, else libx264.")
@click.option("--bitrate", type=IntRange(10_000, 500_000_000), default=8_000_000, show_default=True,
              help="Bits per second (CONFIG_REQ changes it at run time).")
@click.option("--gop", type=IntRange(1, 100_000), default=None,
              help="Keyframe interval (default: the generation's, 120 for reference, 60 for h1-h5).")
@click.option("--fps", type=IntRange(1, 240), default=60, show_default=True, help="Scanout push rate.")
@click.option("--size", type=SIZE, default="1920x1080", show_default=True, help="Scanout desktop size.")
@click.option("--max-clients", type=IntRange(1, 1024), default=None,
              help="Clients at once (default: the generation's, 16; 1 for h1 and h2).")
@click.option("--idle-timeout", type=FloatRange(0, 86400), default=None,
              help="Seconds a client may stay silent before it is dropped; 0 = never (default: the "
                   "generation's: reference 30 s, subscribers spared; h2 30, h3 600, h4 60, h5 never).")
@click.option("--max-payload", type=IntRange(1, 2**32 - 1), default=DEFAULT_MAX_PAYLOAD,
              show_default=True, help="Largest pixel payload accepted (the real host: 64 MiB).")
@click.option("--fault", metavar="FAULT", help=f"Rehearse a known host bug: {FAULT_HELP}.")
@click.option("--generation", "generation_name", type=click.Choice(list(GENERATIONS)), default="reference",
              show_default=True, help="Behave like this host build (docs/serve.md: host generations).")
@click.option("--picture", default="moving", show_default=True, metavar="static|moving|PATTERN",
              help="What the guest draws on a scanout: frames are pushed only while it moves; a cycle "
                   "such as moving:0.5,static:2 (seconds).")
@click.option("--max-outputs", type=IntRange(1, 16), default=16, show_default=True,
              help="QEMU's max_outputs: scanout ids 1..N-1 can be enabled (h3-h5).")
@click.option("--drm-manager", "drm_manager", metavar="PATH",
              help="Also run the drm-manager stand-in on this Unix socket, pointing at this serve.")
@click.option("--drm-manager-fault", metavar="FAULT",
              help="Rehearse a drm-manager fault: " + "; ".join(f"{k.name}: {k.description}"
                                                              for k in MANAGER_FAULT_KINDS.values()) + ".")
@click.option("--duration", type=FloatRange(0.1, None), help="Stop after this many seconds.")
@click.option("--stats-json", metavar="PATH", callback=output_file, help="Write the final counters as JSON here on exit.")
@click.pass_obj
def command(app, tcp, unix, encoder, bitrate, gop, fps, size, max_clients, idle_timeout,
            max_payload, fault, generation_name, picture, max_outputs, drm_manager, drm_manager_fault,
            duration, stats_json) -> None:
    """Serve HXFR like QEMU's helix-frame-export, encoding real H.264.

    \b
    Request mode (vsockenc): every FRAME_REQUEST gets one FRAME_RESPONSE or ERROR.
    Scanout mode: SUBSCRIBE, then a synthetic desktop is pushed at --fps.

    \b
    Examples:
      helixdiag serve --tcp 127.0.0.1:15937
      helixdiag serve --unix ./helix-frame-export.sock --fault hang
      helixdiag serve --generation h4 --picture static --drm-manager /tmp/drm.sock
    """
    term = app.terminal
    gen = generation(generation_name)
    listeners = [net.parse_hostport(t, allow_zero=True) for t in tcp]
    if not listeners and not unix:
        listeners, unix = default_listeners(gen)
    config = ServerConfig(
        tcp=listeners, unix=list(unix), encoder=encoder, bitrate=bitrate, gop=gop, fps=fps,
        size=size, max_clients=max_clients, idle_timeout=idle_timeout, max_payload=max_payload,
        fault=parse_fault(fault) if fault else None, generation=gen, picture=parse_picture(picture),
        max_outputs=max_outputs,
    )
    manager_fault = parse_manager_fault(drm_manager_fault) if drm_manager_fault else None

    status = StatusLine(term)

    def log(line: str) -> None:
        # Log lines quote peer bytes (bad magic, formats): never let them be rich markup.
        status.print(f"[muted]{datetime.now():%H:%M:%S}[/muted] {escape(line)}")

    server = FrameServer(config, log=log)
    endpoints = server.start()
    manager = _start_manager(server, drm_manager, manager_fault, log) if drm_manager else None
    term.print(f"encoder: {server.encoder_note}")
    if not gen.is_reference:
        term.print(f"generation: {gen.name} ({gen.title}); picture {config.picture}")
    if config.fault:
        term.print(f"[warn]fault rehearsal:[/warn] {config.fault} "
                   f"(a client should diagnose [id]{config.fault.expected_failure}[/id])")
    if manager is not None:
        click.echo(f"drm-manager unix://{manager.config.socket}", err=False)
    for ep in endpoints:
        # Machine-readable line (tests and scripts wait for it), always on stdout.
        click.echo(f"listening {ep}", err=False)
    stopping = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    started = time.monotonic()
    try:
        _wait(server, status, stopping, started, duration)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        status.close()
        if manager is not None:
            manager.stop()
        server.stop()
        stats = server.stats.snapshot()
        term.print(
            f"stopped: {count(stats['clients_total'], 'client')}, {count(stats['frames_out'], 'frame')}, "
            f"{stats['bytes_in'] / 1e6:.1f} MB in, {stats['bytes_out'] / 1e6:.1f} MB out, "
            f"{count(stats['errors_sent'], 'error')}, {stats['frames_dropped']} dropped"
        )
        if stats_json:
            write_json(app, stats_json, {"endpoints": [str(e) for e in endpoints],
                                         "encoder": server.encoder_note,
                                         "fault": str(config.fault) if config.fault else None,
                                         "generation": gen.name,
                                         **stats})


def _start_manager(server: FrameServer, path: str, fault, log) -> DrmManager:
    """The drm-manager stand-in, in this process, pointing at serve's first TCP listener."""
    tcp = next((ep for ep in server.endpoints if ep.kind == "tcp"), None)
    if tcp is None:
        server.stop()
        raise ConfigError("--drm-manager needs a TCP listener: ENABLE_SCANOUT goes over TCP")
    manager = DrmManager(ManagerConfig(socket=path, qemu=(tcp.host, tcp.port), outputs=server.config.max_outputs,
                                       fault=fault), log=lambda line: log(f"drm-manager: {line}"))
    try:
        manager.start()
    except BaseException:
        server.stop()
        raise
    return manager


class StatusLine:
    """serve's live status line, drawn only while stdout is a terminal whose foreground job
    is serve itself — not after `serve &` or `bg`, where it would overwrite the user's shell;
    checked again at every redraw. Log lines are printed above it."""

    ERASE = "\r\x1b[2K"  # to the start of the line, clear it

    def __init__(self, term) -> None:
        self.term = term
        self._lock = threading.Lock()
        self._text = ""
        self._drawn = False

    @property
    def console(self):
        return self.term.human

    def _foreground(self) -> bool:
        try:
            return os.tcgetpgrp(self.console.file.fileno()) == os.getpgrp()
        except (OSError, ValueError):  # not a terminal, or no file descriptor
            return False

    def update(self, text: str) -> None:
        with self._lock:
            self._text = text
            self._erase()
            self._draw()

    def print(self, markup: str) -> None:
        with self._lock:
            self._erase()
            self.term.print(markup, markup=True, soft_wrap=True)
            self._draw()

    def close(self) -> None:
        with self._lock:
            self._erase()
            self._text = ""

    def _draw(self) -> None:
        self._drawn = bool(self._text) and self.term.interactive and self._foreground()
        if self._drawn:
            self.console.print(self._text, end="", no_wrap=True, overflow="ellipsis", crop=True)

    def _erase(self) -> None:
        # Only our own line: once in the background the cursor is the shell's.
        if self._drawn and self._foreground():
            self.console.file.write(self.ERASE)
            self.console.file.flush()
        self._drawn = False


def _wait(server: FrameServer, status: StatusLine, stopping: threading.Event, started: float,
          duration: float | None) -> None:
    while not stopping.is_set():
        if duration is not None and time.monotonic() - started >= duration:
            return
        stopping.wait(0.5)
        s = server.stats.snapshot()
        status.update(
            f"[muted]{count(s['clients_now'], 'client')} · {s['frames_out']} frames · "
            f"{server.stats.fps():.1f} fps · in {s['bytes_in'] / 1e6:.1f} MB · "
            f"out {s['bytes_out'] / 1e6:.1f} MB · Ctrl-C stops[/muted]"
        )
