"""stream layer (either side): a real exchange with the host endpoint itself — the Unix
socket in the socat topology, QEMU's port otherwise — validated and decoded like `send`."""

from __future__ import annotations

import dataclasses

from helixdiag import net
from helixdiag.client import ExchangeOptions, exchange, ping
from helixdiag.layers import Side
from helixdiag.probes import register
from helixdiag.probes.context import ProbeContext
from helixdiag.protocol import PixelFormat
from helixdiag.results import Outcome, blocked, failed, passed, skipped, warned


def _endpoint(ctx: ProbeContext) -> net.Endpoint | None:
    return ctx.topology.stream_endpoint()


def _no_endpoint(ctx: ProbeContext) -> Outcome:
    if ctx.config.side == "guest":
        # The host endpoint itself (QEMU's socket or port) lives on the host; what the guest
        # reaches is its own path, which guest-tcp.* checks. Whatever this machine's
        # discovery finds is not the host's.
        return skipped("the host endpoint lives on the host: run `helixdiag run --side host` there, "
                       "or `--guest` from the Mac")
    return blocked("no host endpoint found (no socket, no listening port)")


@register("stream.ping", layer="stream", side=Side.EITHER, talks=True,
          needs=("unix-socket.accept", "qemu.listener"),
          description="PING → PONG on the host endpoint itself")
def stream_ping(ctx: ProbeContext) -> Outcome:
    endpoint = _endpoint(ctx) if ctx.config.side != "guest" else None
    if endpoint is None:
        return _no_endpoint(ctx)
    try:
        answer = ping(endpoint, ctx.config.timeout)
    except net.NetError as exc:
        return failed("stream-connect-failed", f"cannot connect to {endpoint}: {exc}",
                      endpoint=str(endpoint), kind=exc.kind, errno=exc.errno)
    if answer.ok:
        return passed(f"{endpoint} answers PING with PONG", endpoint=str(endpoint))
    return failed(PING_FAILURES[answer.outcome], f"{endpoint}: {answer.detail}", endpoint=str(endpoint),
                  timeout_s=ctx.config.timeout)


# What the host endpoint's answer to PING says, as a failure id.
PING_FAILURES = {
    "silent": "stream-no-reply",
    "closed": "stream-closed",
    "bad-magic": "stream-bad-magic",
    "wrong-answer": "stream-protocol-error",
}


@register("stream.exchange", layer="stream", side=Side.EITHER, talks=True, needs=("stream.ping",),
          description="a short frame exchange: H.264 validated, decoded and compared with what was sent")
def stream_exchange(ctx: ProbeContext) -> Outcome:
    endpoint = _endpoint(ctx) if ctx.config.side != "guest" else None
    if endpoint is None:
        return _no_endpoint(ctx)
    mode = "scanout" if ctx.config.mode == "scanout" else "request"
    opts = ExchangeOptions(endpoint=endpoint, mode=mode, frames=ctx.config.frames,
                           size=ctx.config.size, format=PixelFormat.NV12, timeout=ctx.config.timeout,
                           connect_timeout=ctx.config.timeout)
    try:
        result = exchange(opts)
    except net.NetError as exc:
        return failed("stream-connect-failed", f"cannot connect to {endpoint}: {exc}", endpoint=str(endpoint))
    evidence = result.to_dict()
    primary = result.primary
    if primary is None:
        lat = evidence["latency_ms"] or {}
        return passed(f"{result.frames_received}/{result.frames_sent or result.frames_received} frames "
                      f"({mode}) valid and decoded, p50 {lat.get('p50', 0):.1f} ms", **evidence)
    summary = primary.message
    if primary.failure_id == "frame-request-ignored" and ctx.config.mode == "auto":
        summary += _scanout_check(opts, evidence)
    if primary.severity == "warn":
        return warned(primary.failure_id, summary, **evidence)
    return failed(primary.failure_id, summary, **evidence)


def _scanout_check(opts: ExchangeOptions, evidence: dict) -> str:
    """An H4 host ignores FRAME_REQUEST but pushes frames to subscribers: say which it is,
    so the remedy is "switch to scanout mode", not "the host is broken"."""
    try:
        scanout = exchange(dataclasses.replace(opts, mode="scanout", frames=min(opts.frames or 5, 5)))
    except net.NetError as exc:
        evidence["scanout"] = {"status": "fail", "error": str(exc)}
        return " — and scanout mode cannot connect either"
    evidence["scanout"] = scanout.to_dict()
    if scanout.status != "fail":
        return (" — but SUBSCRIBE works (scanout frames arrive and decode): an H4 host, which serves "
                "scanout mode only; use HELIX_VIDEO_MODE=scanout (desktop-bridge) instead of vsockenc")
    first = scanout.primary
    return f" — and scanout mode fails too ({first.failure_id if first else 'no frames'})"
