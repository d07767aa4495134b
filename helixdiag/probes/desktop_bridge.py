"""desktop-bridge layer (guest, scanout path): the process in the desktop container that
subscribes to the desktop's scanout and relays the pushed H.264 to the browser. Its video
mode and the port it dials come from its environment; its log tells how its subscriptions
went."""

from __future__ import annotations

from helixdiag.layers import Side
from helixdiag.probes import register
from helixdiag.probes.context import ProbeContext
from helixdiag.probes.scanout_path import BRIDGE, bridge, bridge_log, judge_log, judge_port
from helixdiag.results import Outcome, failed, passed, skipped

DEFAULT_PORT = 15937  # the bridge's own default when HELIX_FRAME_EXPORT_PORT is unset
LOG_HINT = ("`docker logs DESKTOP > bridge.log 2>&1` in the VM (or in the sandbox for its inner Docker), "
            "then --bridge-log bridge.log (or pipe it: `docker logs DESKTOP 2>&1 | helixdiag run --bridge-log -`)")
WHERE = ("desktop-bridge runs in the desktop container: run helixdiag there (`docker exec -i DESKTOP ...`), "
         "or give --bridge-log")


@register("desktop-bridge.process", layer="desktop-bridge", side=Side.GUEST, talks=True,
          description="desktop-bridge runs in scanout mode and dials the port the host listens on")
def bridge_process(ctx: ProbeContext) -> Outcome:
    the_bridge = bridge(ctx)
    if the_bridge.process is None:
        return skipped(f"no {BRIDGE} process here: {WHERE}")
    evidence: dict[str, object] = {"process": ctx.obs.who(the_bridge.process.pid)}
    if the_bridge.env is None:
        return skipped(f"{the_bridge.who()}: its environment is not readable here (run as its user or root)",
                       **evidence)
    env = {k: the_bridge.get(k) for k in ("HELIX_VIDEO_MODE", "HELIX_SCANOUT_MODE", "HELIX_FRAME_EXPORT_PORT",
                                          "HELIX_SCANOUT_ID", "XDG_RUNTIME_DIR", "GPU_VENDOR")}
    evidence["environment"] = {k: v for k, v in env.items() if v is not None}
    raw_port = env["HELIX_FRAME_EXPORT_PORT"]
    port = int(raw_port) if raw_port and raw_port.isdigit() else DEFAULT_PORT
    port_from = "HELIX_FRAME_EXPORT_PORT" if raw_port else f"unset: the bridge's default {DEFAULT_PORT}"
    right, why = judge_port(ctx, port)
    evidence.update(port=port, port_from=port_from, judged_by=why)
    if right is False:
        return failed("bridge-wrong-port", f"{the_bridge.who()} dials port {port} ({port_from}), but {why}",
                      **evidence)
    mode = env["HELIX_VIDEO_MODE"]
    if mode != "scanout":
        # Only reached with --mode scanout: left to itself the run follows the bridge's own mode.
        return skipped(f"{the_bridge.who()} has HELIX_VIDEO_MODE={mode or 'unset'}, not scanout: it takes its "
                       "video from vsockenc (Helix sets scanout when /run/helix-drm/drm.sock exists as the "
                       "desktop is created)", **evidence)
    if right is None:
        return skipped(f"{the_bridge.who()}: scanout mode, port {port} ({port_from}); whether the host listens "
                       f"there cannot be told: {why} (give --port, the host's helix-port)", **evidence)
    return passed(f"{the_bridge.who()}: scanout mode, port {port} ({port_from}): {why}", **evidence)


@register("desktop-bridge.log", layer="desktop-bridge", side=Side.GUEST, timeout=60,
          description="desktop-bridge's log: its scanout id, subscriptions, read errors, keyframes")
def bridge_log_probe(ctx: ProbeContext) -> Outcome:
    log = bridge_log(ctx)

    def said() -> str:
        frames = f"{log.frames} frames" if log.frames else "no frame statistics"
        sub = f"subscribed to scanout {log.subscribed_scanout}" if log.subscribed_scanout is not None \
            else "no subscription in the log"
        return f"{sub}; {frames}"
    return judge_log(ctx, "bridge_log", "desktop-bridge", LOG_HINT, log, said)
