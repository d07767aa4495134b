"""`helixdiag send`: the reference guest client (a stand-in for vsockenc / the subscriber)."""

from __future__ import annotations

import contextlib
import os

import click
from rich.markup import escape
from rich.table import Table

from helixdiag import net
from helixdiag.cli.options import PIXEL_FORMAT, SIZE, FloatRange, IntRange, output_file, write_json
from helixdiag.client import ExchangeOptions, ExchangeResult, exchange
from helixdiag.errors import EXIT_FAILURE, ConfigError


@click.command("send")
@click.option("--to", "to", default="tcp://127.0.0.1:15937", show_default=True,
              metavar="tcp://HOST:PORT|unix://PATH", help="The host endpoint to talk to.")
@click.option("--mode", type=click.Choice(["request", "scanout"]), default="request", show_default=True,
              help="request = like vsockenc (our pixels in, H.264 out); scanout = SUBSCRIBE and count pushes.")
@click.option("--frames", type=IntRange(1, 10_000_000), default=300, show_default=True)
@click.option("--duration", type=FloatRange(0.1, None), help="Run for S seconds instead of --frames.")
@click.option("--size", type=SIZE, default="1920x1080", show_default=True)
@click.option("--format", "fmt", type=PIXEL_FORMAT, default="nv12", show_default=True,
              help="nv12 | bgrx | rgbx")
@click.option("--fps", type=FloatRange(0, 1000), default=0.0, show_default=True,
              help="Request rate; 0 = as fast as the server answers.")
@click.option("--keyframe-interval", type=IntRange(0, 100_000), default=60, show_default=True,
              help="Set force_keyframe every N frames (0 = only the first).")
@click.option("--timeout", type=FloatRange(0.05, 600), default=3.0, show_default=True,
              help="Seconds to wait for each reply.")
@click.option("--scanout-id", type=IntRange(0, 15), default=1, show_default=True)
@click.option("--no-decode", is_flag=True, help="Skip decoding and the picture check (faster).")
@click.option("--save", metavar="PATH", callback=output_file,
              help="Write the received H.264 (Annex-B) here, e.g. for ffprobe.")
@click.option("--json", "json_dest", metavar="PATH|-", callback=output_file,
              help="Write the result as JSON ('-' = stdout only).")
@click.pass_obj
def command(app, to, mode, frames, duration, size, fmt, fps, keyframe_interval, timeout,
            scanout_id, no_decode, save, json_dest) -> None:
    """Send frames like vsockenc (or subscribe like desktop-bridge) and judge the replies.

    Every reply is checked: magic and type, one reply per request, Annex-B framing, SPS/PPS
    on keyframes, profile and size, and the decoded picture against the one we sent.

    \b
    Examples:
      helixdiag send --to tcp://127.0.0.1:15937 --frames 300 --size 1920x1080
      helixdiag send --to unix://./helix-frame-export.sock --mode scanout --duration 5
    """
    term = app.terminal
    if json_dest == "-":
        term.reserve_stdout()
    endpoint = net.parse_endpoint(to)
    with contextlib.ExitStack() as stack:
        save_to = None
        if save:
            try:
                save_to = stack.enter_context(open(save, "wb"))  # noqa: SIM115
            except OSError as exc:
                raise ConfigError(f"cannot write {save}: {exc.strerror or exc}") from None
        opts = ExchangeOptions(
            endpoint=endpoint, mode=mode, frames=None if duration else frames, duration=duration,
            size=size, format=fmt, fps=fps, keyframe_interval=keyframe_interval, timeout=timeout,
            connect_timeout=timeout, scanout_id=scanout_id, decode=not no_decode, save_to=save_to,
        )
        term.print(f"sending to {endpoint} ({mode} mode) …")
        try:
            result = exchange(opts)
        except net.NetError as exc:
            result = ExchangeResult(str(endpoint), mode)
            result.add("stream-connect-failed", str(exc), kind=exc.kind, errno=exc.errno)
    if json_dest:
        write_json(app, json_dest, result.to_dict())
    render(app, result)
    if save:
        _saved(app, save, result)
    _verdict(app, result)
    if result.status == "fail":
        raise click.exceptions.Exit(EXIT_FAILURE)


def render(app, result: ExchangeResult) -> None:
    term = app.terminal
    d = result.to_dict()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="muted")
    table.add_column()
    f = d["frames"]
    table.add_row("frames", f"{f['sent']} sent · {f['received']} received · {f['decoded']} decoded · "
                            f"{f['keyframes']} keyframes")
    table.add_row("rate", f"{d['fps']:.1f} frames/s over {d['elapsed_s']:.2f} s")
    if d["latency_ms"]:
        lat = d["latency_ms"]
        label = "inter-arrival" if result.mode == "scanout" else "latency"
        table.add_row(label, f"p50 {lat['p50']:.1f} ms · p95 {lat['p95']:.1f} ms · p99 {lat['p99']:.1f} ms")
    if f["received"]:
        table.add_row("size", f"{d['bytes_per_frame'] / 1000:.1f} kB/frame · {d['bitrate_bps'] / 1e6:.2f} Mbit/s")
    if d["h264"]["profile"]:
        table.add_row("h264", f"{d['h264']['profile']} {d['h264']['size']}")
    if d["psnr_db"]:
        table.add_row("picture", f"PSNR min {d['psnr_db']['min']} dB · mean {d['psnr_db']['mean']} dB")
    term.print(table)
    for finding in result.findings.values():
        term.finding(finding)


def _saved(app, path: str, result: ExchangeResult) -> None:
    """Where --save wrote, and how much."""
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    frames = result.to_dict()["frames"]["received"]
    app.terminal.print(f"saved {size} bytes of H.264 (Annex-B, {frames} frame{'s' if frames != 1 else ''}) "
                       f"to {escape(os.path.abspath(path))}", soft_wrap=True)


def _verdict(app, result: ExchangeResult) -> None:
    """The last line, the one -q keeps."""
    status = result.status
    if status == "pass":
        app.terminal.verdict("[pass]PASS[/pass] every reply valid, decoded and matching what was sent")
        return
    ids = ", ".join(f"[id]{fid}[/id]" for fid, f in result.findings.items() if f.severity == status)
    f = result.to_dict()["frames"]
    app.terminal.verdict(f"[{status}]{status.upper()}[/{status}] {ids} · {f['sent']} sent · "
                         f"{f['received']} received")
