"""stream layer (either side): a real exchange with the host endpoint itself — the Unix
socket in the socat topology, QEMU's port otherwise — validated and decoded like `send`."""

from __future__ import annotations

from helixdiag import net
from helixdiag.client import ExchangeOptions, exchange, ping
from helixdiag.layers import Side, VideoPath
from helixdiag.probes import register, scanout_path
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
          description="a real exchange: a subscription (scanout) or frames asked for (request), H.264 "
                      "validated and decoded")
def stream_exchange(ctx: ProbeContext) -> Outcome:
    endpoint = _endpoint(ctx) if ctx.config.side != "guest" else None
    if endpoint is None:
        return _no_endpoint(ctx)
    decision = scanout_path.decide(ctx)
    if decision.path != VideoPath.REQUEST:
        if not ctx.config.subscribe:
            return skipped(f"--no-subscribe: no subscription to the host's scanout ({decision.reason})")
        try:
            result = scanout_path.subscribe(ctx, endpoint)
        except net.NetError as exc:
            return failed("stream-connect-failed", f"cannot connect to {endpoint}: {exc}", endpoint=str(endpoint))
        outcome = scanout_path.judge_subscription(ctx, result)
        if outcome is not None:
            outcome.evidence["mode_chosen"] = (f"scanout ({decision.reason})" if decision.path == VideoPath.SCANOUT
                                               else "scanout: the host answered SUBSCRIBE")
            return outcome
        if decision.path == VideoPath.SCANOUT:
            return failed("stream-no-reply", f"{endpoint} answers PING but not SUBSCRIBE within "
                          f"{ctx.config.timeout:g} s: a host without scanout mode (H2 or older)",
                          subscription=result.to_dict())
    return _request_exchange(ctx, endpoint, decision)


def _request_exchange(ctx: ProbeContext, endpoint: net.Endpoint, decision: scanout_path.PathDecision) -> Outcome:
    """Frames asked for like vsockenc: validated, decoded, compared with what was sent."""
    opts = ExchangeOptions(endpoint=endpoint, mode="request", frames=ctx.config.frames,
                           size=ctx.config.size, format=PixelFormat.NV12, timeout=ctx.config.timeout,
                           connect_timeout=ctx.config.timeout)
    try:
        result = exchange(opts)
    except net.NetError as exc:
        return failed("stream-connect-failed", f"cannot connect to {endpoint}: {exc}", endpoint=str(endpoint))
    evidence = result.to_dict()
    evidence["mode_chosen"] = (f"request ({decision.reason})" if decision.path == VideoPath.REQUEST
                               else "request: the host answers PING but not SUBSCRIBE (no scanout mode)")
    primary = result.primary
    if primary is None:
        lat = evidence["latency_ms"] or {}
        return passed(f"{result.frames_received}/{result.frames_sent or result.frames_received} frames "
                      f"(request) valid and decoded, p50 {lat.get('p50', 0):.1f} ms", **evidence)
    summary = primary.message
    if primary.failure_id == "frame-request-ignored":
        summary += (" — use scanout mode (HELIX_VIDEO_MODE=scanout: desktop-bridge subscribes to the "
                    "desktop's scanout) with this host")
    if primary.severity == "warn":
        return warned(primary.failure_id, summary, **evidence)
    return failed(primary.failure_id, summary, **evidence)
