"""`helixdiag tap`: relay between the real guest and the real host and show every HXFR
message that passes, with the protocol breaks named as they happen."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from typing import IO

import click

from helixdiag.cli.options import FloatRange, output_file
from helixdiag.errors import EXIT_FAILURE, ConfigError, UsageError
from helixdiag.tap import (
    CaptureWriter,
    Observer,
    Record,
    Tap,
    TapConfig,
    dissector_path,
    parse_address,
    render,
    replay,
)
from helixdiag.terminal import count


@click.command("tap")
@click.option("--listen", metavar="ADDR", help="Where the guest connects: tcp://HOST:PORT or unix:PATH "
                                                "(port 0: any free one).")
@click.option("--to", "to", metavar="ADDR", help="The host to relay to: tcp://HOST:PORT or unix:PATH.")
@click.option("--pcap", metavar="FILE", callback=output_file,
              help="Also record every byte as pcapng (open it with the dissector of --dissector).")
@click.option("--pcap-limit", type=FloatRange(0.001, None, min_open=False), metavar="MB",
              help="Stop recording at this many MB (the live log goes on).")
@click.option("--json-lines", "json_lines", metavar="PATH|-", callback=output_file,
              help="One JSON object per line, for machines ('-' = stdout only).")
@click.option("--reply-timeout", type=FloatRange(0.05, 3600), default=3.0, show_default=True,
              help="Seconds after which an unanswered request (or a silent subscription) is flagged.")
@click.option("--connect-timeout", type=FloatRange(0.05, 600), default=3.0, show_default=True,
              help="Seconds to reach the host for each new connection.")
@click.option("--duration", type=FloatRange(0.1, None), help="Stop after this many seconds.")
@click.option("--read", "read", metavar="FILE", help="Print a capture (pcapng or pcap) the way the live tap does.")
@click.option("--dissector", is_flag=True, help="Print the path of the Wireshark Lua dissector and how to install it.")
@click.pass_obj
def command(app, listen, to, pcap, pcap_limit, json_lines, reply_timeout, connect_timeout, duration, read,
            dissector) -> None:
    """Relay HXFR between the guest and the host, and show every message.

    Every byte is forwarded unchanged, both ways, for any number of connections; a copy is
    decoded and judged: one line per message, protocol breaks with their failure ids as they
    happen, a summary per connection. Ctrl-C stops it.

    \b
    Examples:
      helixdiag tap --listen tcp://127.0.0.1:5900 --to unix:./helix-frame-export.sock
      helixdiag tap --listen tcp://127.0.0.1:15938 --to tcp://127.0.0.1:15937 --pcap hxfr.pcapng
      helixdiag tap --read hxfr.pcapng
      helixdiag tap --dissector
    """
    term = app.terminal
    if dissector:
        path = dissector_path()
        click.echo(str(path))
        click.echo(f"install: mkdir -p ~/.local/lib/wireshark/plugins && cp {path} ~/.local/lib/wireshark/plugins/"
                   f"   (one run: tshark -X lua_script:{path} -r capture.pcapng -Y hxfr)", err=True)
        return
    if read and (listen or to or pcap):
        raise UsageError("--read plays a capture back: it takes no --listen, --to or --pcap")
    if not read and not (listen and to):
        raise UsageError("give --listen ADDR and --to ADDR (or --read FILE, or --dissector)")
    if pcap_limit is not None and not pcap:
        raise UsageError("--pcap-limit needs --pcap FILE")
    if json_lines == "-":
        term.reserve_stdout()
    with contextlib.ExitStack() as stack:
        sink = _Sink(term, _open(stack, json_lines))
        stack.callback(sink.close)
        if read:
            observer = Observer(sink, reply_timeout=reply_timeout)
            _read(read, observer)
        else:
            observer = _live(app, sink, stack, listen, to, pcap, pcap_limit, reply_timeout, connect_timeout,
                             duration)
    failures = sum(sum(s["failures"].values()) for s in observer.summaries)
    term.verdict(f"{count(len(observer.summaries), 'connection')}, "
                 f"{count(sum(s['messages'] for s in observer.summaries), 'message')}, "
                 f"{count(failures, 'protocol failure')} flagged")
    if failures:
        raise click.exceptions.Exit(EXIT_FAILURE)


class _Sink:
    """Where records go: the terminal (a line each, plus one per failure id) and JSON lines.
    Written in batches, at least every FLUSH_S, so that printing a busy connection costs the
    observer little: plain text when no colour can be shown (a pipe, a file, NO_COLOR), rich
    markup on a colour terminal."""

    FLUSH_S = 0.1
    BATCH = 500

    def __init__(self, term, json_out: IO[str] | None) -> None:
        self.term = term
        self.json_out = json_out
        self.plain = term.human.color_system is None
        self._lines: list[str] = []
        self._json: list[str] = []
        self._lock = threading.Lock()  # the buffers
        self._write = threading.Lock()  # one batch written at a time, in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name="tap-output", daemon=True)
        self._thread.start()

    def __call__(self, rec: Record) -> None:
        text = render.lines(rec, markup=not self.plain)
        doc = json.dumps(render.to_json(rec), default=str) if self.json_out is not None else None
        with self._lock:
            if doc is not None:
                self._json.append(doc)
            if not self.term.quiet:
                self._lines += text  # to stderr when stdout carries the JSON
            full = len(self._lines) + len(self._json) > self.BATCH
        if full:
            self.flush()

    def machine(self, doc: dict) -> None:
        with self._lock:
            self._json.append(json.dumps(doc))
        self.flush()

    def flush(self) -> None:
        with self._write:
            with self._lock:
                lines, self._lines = self._lines, []
                docs, self._json = self._json, []
            if docs and self.json_out is not None:
                self.json_out.write("\n".join(docs) + "\n")
                self.json_out.flush()
            if lines and self.plain:
                out = self.term.human.file
                out.write("\n".join(lines) + "\n")
                out.flush()
            elif lines:
                self.term.print("\n".join(lines), soft_wrap=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self.flush()

    def _flusher(self) -> None:
        while not self._stop.wait(self.FLUSH_S):
            self.flush()


def _open(stack: contextlib.ExitStack, dest: str | None) -> IO[str] | None:
    if not dest:
        return None
    if dest == "-":
        return sys.stdout
    try:
        return stack.enter_context(open(dest, "w", encoding="utf-8"))  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot write {dest}: {exc.strerror or exc}") from None


def _read(path: str, observer: Observer) -> None:
    try:
        replay(path, observer)
    except FileNotFoundError:
        raise ConfigError(f"no such capture: {path}") from None
    except (ValueError, OSError) as exc:  # dpkt: "invalid tcpdump header", "invalid pcapng header"
        raise ConfigError(f"cannot read {path} as pcapng or pcap: {exc}") from None


def _live(app, sink: _Sink, stack: contextlib.ExitStack, listen: str, to: str, pcap: str | None,
          pcap_limit: float | None, reply_timeout: float, connect_timeout: float, duration: float | None) -> Observer:
    term = app.terminal
    config = TapConfig(listen=parse_address(listen, listen=True), to=parse_address(to),
                       connect_timeout=connect_timeout)
    capture = None
    if pcap:
        try:
            capture = CaptureWriter(pcap, limit=int(pcap_limit * 1e6) if pcap_limit else None,
                                    description=f"helixdiag tap: guest side {config.listen}, host side {config.to}")
        except OSError as exc:
            raise ConfigError(f"cannot write {pcap}: {exc.strerror or exc}") from None
        stack.callback(capture.close)
    observer = Observer(sink, reply_timeout=reply_timeout, capture=capture)
    tap = Tap(config, observer)
    endpoint = tap.start()
    if sink.json_out is sys.stdout:
        sink.machine({"event": "listening", "address": str(endpoint), "to": str(config.to)})
    else:
        click.echo(f"listening {endpoint}")  # machine-readable, like serve's: scripts wait for it
    term.print(f"relaying {endpoint} → {config.to}"
               + (f"; recording to {pcap}" + (f" (up to {pcap_limit:g} MB)" if pcap_limit else "") if pcap else "")
               + "; Ctrl-C stops", soft_wrap=True)
    stopping = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    started = time.monotonic()
    try:
        while not stopping.wait(0.2):
            if duration is not None and time.monotonic() - started >= duration:
                break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        tap.stop()
    return observer
