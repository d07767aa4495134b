"""scanout layer (guest, scanout path): the VM's virtual connectors and the desktop's own
scanout. QEMU must offer 16 outputs (one per desktop), and the id the bridge subscribes to
must be the one the desktop leased and draws on: Virtual-(id+1), connected and enabled."""

from __future__ import annotations

from helixdiag.layers import Side, VideoPath
from helixdiag.probes import register, scanout_path
from helixdiag.probes.context import ProbeContext
from helixdiag.probes.scanout_path import SCANOUT_OUTPUTS, bridge_log, drm_log, scanout_target
from helixdiag.results import Outcome, failed, passed, skipped, warned


def _gate(ctx: ProbeContext, *options: str) -> Outcome | None:
    """A machine without virtio-gpu connectors is not judged on --side both unless asked, nor
    when nothing says this guest is on the scanout path (--mode auto)."""
    if ctx.obs.connectors():
        return None
    where = "no virtio-gpu connectors in /sys/class/drm here (they are in the Helix VM and its containers)"
    if ctx.absent_is_skip("scanout", *options):
        return skipped(where)
    if scanout_path.decide(ctx).path == VideoPath.BOTH and not any(ctx.config.asked_for(o) for o in options):
        return skipped(f"{where}: this guest does not show the scanout path (--mode scanout judges it anyway)")
    return None


@register("scanout.connectors", layer="scanout", side=Side.GUEST,
          description="the VM has 16 virtual connectors (QEMU's max_outputs=16)")
def scanout_connectors(ctx: ProbeContext) -> Outcome:
    if (gate := _gate(ctx, "drm_log")) is not None:
        return gate
    found = ctx.obs.connectors()
    log = drm_log(ctx)
    if not found:
        if log is not None and log.connectors is not None:
            return _judge_count(log.connectors, f"the drm-manager's log ({ctx.config.drm_log})", {})
        return failed("scanout-outputs-missing", "no virtio-gpu connector (card*-Virtual-N) in /sys/class/drm: "
                      "not a virtio-gpu guest, or sysfs is hidden here", connectors=[])
    driven = [c.name for c in found if c.status == "connected" and c.enabled == "enabled"]
    evidence = {"connectors": [c.to_dict() for c in found], "driven": driven}
    return _judge_count(len(found), "/sys/class/drm", evidence)


def _judge_count(count: int, source: str, evidence: dict) -> Outcome:
    evidence = {**evidence, "count": count, "count_from": source, "expected": SCANOUT_OUTPUTS}
    if count <= 1:
        return failed("scanout-outputs-missing", f"{count} virtual connector ({source}): QEMU runs without "
                      f"max_outputs={SCANOUT_OUTPUTS}, so no desktop can have a scanout of its own", **evidence)
    if count < SCANOUT_OUTPUTS:
        return warned("scanout-outputs-missing", f"{count} virtual connectors ({source}), not "
                      f"{SCANOUT_OUTPUTS}: at most {count - 1} desktops can stream at once", **evidence)
    return passed(f"{count} virtual connectors ({source})", **evidence)


@register("scanout.id", layer="scanout", side=Side.GUEST,
          description="the desktop's scanout id agrees everywhere, and its connector is driven")
def scanout_id(ctx: ProbeContext) -> Outcome:
    if (gate := _gate(ctx, "scanout_id", "bridge_log", "drm_log")) is not None:
        return gate
    target = scanout_target(ctx)
    evidence = target.to_dict()
    log = bridge_log(ctx)
    if log is not None and log.scanout_id_source == "own-lease":
        return failed("scanout-not-rendered", f"desktop-bridge leased scanout {log.scanout_id} for itself (its "
                      "log: `DRM lease acquired for scanout ID`): the desktop draws on another one", **evidence)
    if target.disagree:
        told = ", ".join(f"{sid} ({src})" for src, sid in target.sources.items())
        return failed("scanout-not-rendered", f"the scanout id differs between sources: {told}", **evidence)
    if not target.sources:
        return skipped(f"no source names the desktop's scanout id here ({target.chosen_from})", **evidence)
    sid = target.chosen
    connector = next((c for c in ctx.obs.connectors() if c.scanout_id == sid), None)
    held = drm_log(ctx).leases_held if drm_log(ctx) is not None else None
    if connector is not None:
        evidence["connector"] = connector.to_dict()
        if connector.status != "connected":
            return failed("scanout-not-rendered", f"scanout {sid} ({target.chosen_from}): {connector.name} is "
                          f"{connector.status}: no desktop holds its lease", **evidence)
        if connector.enabled != "enabled":
            return failed("drm-lease-failed", f"scanout {sid}: {connector.name} is connected but not enabled: "
                          "the lease was granted and nothing drives it", **evidence)
        return passed(f"scanout {sid} ({target.chosen_from}): {connector.name} connected and enabled", **evidence)
    if held is not None:
        evidence["leases_held"] = held
        if sid not in held:
            return failed("scanout-not-rendered", f"scanout {sid} ({target.chosen_from}) is not among the leases "
                          f"the drm-manager's log shows held ({', '.join(map(str, held)) or 'none'})", **evidence)
        return passed(f"scanout {sid} ({target.chosen_from}) is leased (the drm-manager's log)", **evidence)
    if len(target.sources) > 1:
        return passed(f"scanout {sid}: {len(target.sources)} sources agree; no connector or manager log here to "
                      "check it is drawn on", **evidence)
    return skipped(f"scanout {sid} ({target.chosen_from}) is the only statement of the id here, and no connector "
                   "or manager log to check it against (--drm-log, or run in the VM)", **evidence)
