"""guest-tcp layer: what the guest dials (HOST:PORT), whether it connects, and whether the
far end answers — under SLiRP a successful connect proves nothing about the host."""

from __future__ import annotations

import contextlib
import os

from helixdiag import net, pipeline
from helixdiag.client import ExchangeOptions
from helixdiag.layers import Side, VideoPath
from helixdiag.probes import register, scanout_path
from helixdiag.probes.context import ProbeContext
from helixdiag.results import Outcome, failed, passed, skipped

PING_FRAME_SIZE = (320, 240)  # the one frame guest-tcp.ping exchanges
# How a passing probe ends that exchanged a frame; the host says it again once it has judged
# a guest agent's recorded frame (helixdiag.agent.judge).
FRAME_SAID = ", and a frame ({})"
HOST_CHECKS = "Run `helixdiag run --side host` on the Mac to see which host hop is broken."


def _target(ctx: ProbeContext) -> tuple[str, int | None, str]:
    """HOST:PORT as the guest would dial it, and where the port came from."""
    cfg = ctx.config
    if cfg.port is not None:
        return cfg.host, cfg.port, cfg.source("port")
    if cfg.side == "guest":
        port, source = guest_side_port(ctx)
        if port is not None:
            return cfg.host, port, source
    return cfg.host, ctx.topology.listen_port, ctx.topology.port_source


def guest_side_port(ctx: ProbeContext) -> tuple[int | None, str]:
    """Inside the guest nothing can be discovered from the host; use what the guest itself
    says: the VM's HELIX_FRAME_EXPORT_PORT, the pipeline's tcp-port, the element's log."""
    env_port = os.environ.get("HELIX_FRAME_EXPORT_PORT", "")
    if env_port.isdigit() and 0 < int(env_port) < 65536:
        return int(env_port), "$HELIX_FRAME_EXPORT_PORT"
    if ctx.config.pipeline:
        with contextlib.suppress(pipeline.PipelineSyntaxError):
            port = pipeline.vsockenc_properties(ctx.config.pipeline).get("tcp-port")
            if isinstance(port, int) and 0 < port < 65536:
                return port, "the pipeline's vsockenc tcp-port"
    log = ctx.gst_log()
    port = log.tcp_port if log is not None else None
    if isinstance(port, int) and 0 < port < 65536:
        return port, "the vsockenc log's connect line"
    return None, "none found"


@register("guest-tcp.port", layer="guest-tcp", side=Side.GUEST,
          description="the port the guest dials is the port the host listens on")
def guest_port(ctx: ProbeContext) -> Outcome:
    cfg, topo = ctx.config, ctx.topology
    if cfg.port is None:
        return skipped("no guest port configured (--port); the guest would dial the discovered one")
    if topo.listen_port is None or topo.port_source == cfg.source("port"):
        return skipped("no host-side port discovered to compare with")
    evidence = {"guest_port": cfg.port, "guest_port_from": cfg.source("port"),
                "host_port": topo.listen_port, "host_port_from": topo.port_source}
    if cfg.port != topo.listen_port:
        return failed("port-mismatch",
                      f"the guest dials {cfg.port} ({cfg.source('port')}) but the host listens on "
                      f"{topo.listen_port} ({topo.port_source})",
                      remedy=f"Make both sides use one port: set the guest's tcp-port / "
                             f"HELIX_FRAME_EXPORT_PORT to {topo.listen_port}, or start the host on {cfg.port}.",
                      **evidence)
    return passed(f"guest and host agree on port {cfg.port}", **evidence)


@register("guest-tcp.connect", layer="guest-tcp", side=Side.GUEST,
          description="TCP connect to HOST:PORT")
def guest_connect(ctx: ProbeContext) -> Outcome:
    host, port, source = _target(ctx)
    if port is None:
        return skipped("no port to dial: give --port, or set HELIX_FRAME_EXPORT_PORT, --pipeline or "
                       "--gst-log so the guest's own port can be read")
    endpoint = net.Endpoint("tcp", host=host, port=port)
    evidence = {"endpoint": str(endpoint), "port_from": source, "timeout_s": ctx.config.timeout}
    try:
        sock = net.connect(endpoint, ctx.config.timeout)
    except net.NetError as exc:
        evidence.update(kind=exc.kind, errno=exc.errno)
        if exc.kind == "refused":
            return failed("guest-tcp-refused", f"{endpoint}: connection refused — nothing listens there",
                          remedy=f"Nothing listens on {port} on the host. {HOST_CHECKS}", **evidence)
        return failed("guest-tcp-timeout", f"{endpoint}: {exc}",
                      remedy=f"The host does not answer TCP on {port}. {HOST_CHECKS}", **evidence)
    sock.close()
    return passed(f"connected to {endpoint}", **evidence)


# When the host endpoint itself does not answer (stream.ping, on --side both), the guest's
# path to it cannot either: that probe is then `blocked`, not a second wait for the timeout.
@register("guest-tcp.ping", layer="guest-tcp", side=Side.GUEST, talks=True,
          needs=("guest-tcp.connect", "stream.ping"),
          description="PING → PONG through the guest's path (and, on the request path, one frame)")
def guest_ping(ctx: ProbeContext) -> Outcome:
    host, port, _ = _target(ctx)
    if port is None:
        return skipped("no port to dial")
    endpoint = net.Endpoint("tcp", host=host, port=port)
    answer = scanout_path.answers(ctx, port)  # one PING per port per run, shared with the port checks
    if isinstance(answer, net.NetError):
        return failed("guest-tcp-refused" if answer.kind == "refused" else "guest-tcp-timeout",
                      f"{endpoint}: {answer}", endpoint=str(endpoint))
    evidence = {"endpoint": str(endpoint), "ping": answer.detail}
    if answer.outcome == "closed":
        return failed("guest-closed", f"{endpoint} accepted, then closed without an answer ({answer.detail})",
                      remedy=f"Something accepts on {port} but its backend is gone (socat whose Unix "
                             f"target refuses? a host with no client slot left?). {HOST_CHECKS}", **evidence)
    if not answer.ok:
        what = "accepted but never answered PING" if answer.outcome == "silent" \
            else "answered PING with something else"
        return failed("guest-no-reply", f"{endpoint} {what} ({answer.detail})",
                      remedy=f"The far side is dead or hung. {HOST_CHECKS}", **evidence)
    decision = scanout_path.decide(ctx)
    if decision.path != VideoPath.REQUEST:
        # Scanout (or not decided yet): no FRAME_REQUEST — on an H3 host its reply could land
        # on a real viewer's socket; guest-tcp.subscribe decides the mode.
        return passed(f"{endpoint} answers PING ({decision.reason})", **evidence)
    return _one_frame(endpoint, ctx, evidence, f"{endpoint} answers PING")


def _one_frame(endpoint: net.Endpoint, ctx: ProbeContext, evidence: dict, said: str) -> Outcome:
    """One FRAME_REQUEST like vsockenc's, validated."""
    result = ctx.exchange(ExchangeOptions(endpoint=endpoint, frames=1, size=PING_FRAME_SIZE,
                                          timeout=ctx.config.timeout, connect_timeout=ctx.config.timeout))
    evidence["frame"] = result.to_dict()
    if "frame-request-ignored" in result.findings:
        return failed("frame-request-ignored", result.findings["frame-request-ignored"].message, **evidence)
    return passed(said + FRAME_SAID.format(result.status), **evidence)


@register("guest-tcp.subscribe", layer="guest-tcp", side=Side.GUEST, talks=True, path=VideoPath.SCANOUT,
          needs=("guest-tcp.ping", "stream.ping"),
          description="SUBSCRIBE to the desktop's scanout like desktop-bridge; frames and a keyframe arrive")
def guest_subscribe(ctx: ProbeContext) -> Outcome:
    decision = scanout_path.decide(ctx)  # scanout, or not decided yet (the runner skips the request path)
    if not ctx.config.subscribe:
        return skipped(f"--no-subscribe ({ctx.config.source('subscribe')}): the active subscription is off")
    host, port, _ = _target(ctx)
    if port is None:
        return skipped("no port to dial")
    endpoint = net.Endpoint("tcp", host=host, port=port)
    try:
        result = scanout_path.subscribe(ctx, endpoint)
    except net.NetError as exc:
        return failed("guest-tcp-refused" if exc.kind == "refused" else "guest-tcp-timeout",
                      f"{endpoint}: {exc}", endpoint=str(endpoint))
    outcome = scanout_path.judge_subscription(ctx, result)
    if outcome is not None:
        outcome.evidence["mode_chosen"] = f"scanout ({decision.reason})" if decision.path == VideoPath.SCANOUT \
            else "scanout: the host answered SUBSCRIBE"
        return outcome
    evidence = {"endpoint": str(endpoint), "subscription": result.to_dict()}
    if decision.path == VideoPath.SCANOUT:
        return failed("stream-no-reply", f"{endpoint} answers PING but not SUBSCRIBE within "
                      f"{ctx.config.timeout:g} s: a host without scanout mode (H2 or older)",
                      remedy="Run a host build with scanout mode (H3 or later; the Helix Mac app's QEMU), or "
                             "use the request path (vsockenc).", **evidence)
    evidence["mode_chosen"] = "request: the host answers PING but not SUBSCRIBE (no scanout mode: H2 or older)"
    return _one_frame(endpoint, ctx, evidence, f"{endpoint} has no scanout mode (SUBSCRIBE unanswered): "
                                               "request mode")
