"""`helixdiag send`: the reference guest client (a stand-in for vsockenc / the subscriber)."""

from __future__ import annotations

import contextlib
from functools import partial

import click

from helixdiag import net
from helixdiag.cli import progress
from helixdiag.cli.counting import FrameCount
from helixdiag.cli.options import PIXEL_FORMAT, SIZE, FloatRange, IntRange, output_file
from helixdiag.cli.reporting import finish
from helixdiag.client import ExchangeOptions, ExchangeResult, exchange
from helixdiag.errors import EXIT_FAILURE, ConfigError
from helixdiag.frames import SyntheticSource
from helixdiag.report import send_text


@click.command("send")
@click.option("--to", "to", default="tcp://127.0.0.1:15937", show_default=True,
              metavar="tcp://HOST:PORT|unix://PATH", help="The host endpoint to talk to.")
@click.option("--mode", type=click.Choice(["request", "scanout"]), default="request", show_default=True,
              help="request = like vsockenc (our pixels in, H.264 out); scanout = SUBSCRIBE and count pushes.")
@click.option("--frames", type=IntRange(1, 10_000_000), default=300, show_default=True,
              help="Frames to exchange. In scanout mode: wait for N pushed frames (a picture that moves; "
                   "silence is a failure).")
@click.option("--duration", type=FloatRange(0.1, None),
              help="Run for S seconds instead of --frames. In scanout mode: watch the scanout (a static "
                   "picture sends nothing, which is not a failure); the default there, 5 s.")
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
@click.option("--bitrate", type=IntRange(1, 500_000_000), metavar="BPS",
              help="Scanout mode: send CONFIG_REQ with this bitrate after SUBSCRIBE_RESP, as desktop-bridge does.")
@click.option("--no-decode", is_flag=True, help="Skip decoding and the picture check (faster).")
@click.option("--save", metavar="PATH", callback=output_file,
              help="Write the received H.264 (Annex-B) here, e.g. for ffprobe.")
@click.option("--json", "json_dest", metavar="PATH|-", callback=output_file,
              help="Write the result as JSON ('-' = stdout only).")
@click.pass_obj
def command(app, to, mode, frames, duration, size, fmt, fps, keyframe_interval, timeout,
            scanout_id, bitrate, no_decode, save, json_dest) -> None:
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
    if mode == "scanout" and duration is None and _default(click.get_current_context(), "frames"):
        duration = 5.0  # a subscriber watches; it cannot know whether the picture moves
    frames = None if duration else frames
    count = FrameCount()
    with contextlib.ExitStack() as stack:
        save_to = None
        if save:
            try:
                save_to = stack.enter_context(open(save, "wb"))  # noqa: SIM115
            except OSError as exc:
                raise ConfigError(f"cannot write {save}: {exc.strerror or exc}") from None
        opts = ExchangeOptions(
            endpoint=endpoint, mode=mode, frames=frames, duration=duration, size=size, format=fmt, fps=fps,
            keyframe_interval=keyframe_interval, timeout=timeout, connect_timeout=timeout,
            scanout_id=scanout_id, bitrate=bitrate, decode=not no_decode,
            source=count.source(SyntheticSource(*size, fmt)), save_to=count.sink(save_to),
        )
        term.print(f"sending to {endpoint} ({mode} mode) …")
        try:
            with progress.sending(term, count, mode=mode, frames=frames, duration=duration):
                result = _exchange(opts)
        except KeyboardInterrupt:
            send_text.interrupted(term, mode, count.sent, count.received, count.h264_bytes, count.elapsed)
            raise
    finish(app, EXIT_FAILURE if result.status == "fail" else 0, json_dest=json_dest, document=result.to_dict,
           show=partial(send_text.render, term, result, saved_to=save))


def _default(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) == click.core.ParameterSource.DEFAULT


def _exchange(opts: ExchangeOptions) -> ExchangeResult:
    """The exchange; a connection that cannot be made is its finding too."""
    try:
        return exchange(opts)
    except net.NetError as exc:
        result = ExchangeResult(str(opts.endpoint), opts.mode)
        result.add("stream-connect-failed", str(exc), kind=exc.kind, errno=exc.errno)
        return result
