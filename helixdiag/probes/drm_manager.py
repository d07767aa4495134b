"""drm-manager layer (guest, scanout path): helix-drm-manager, the daemon that leases each
desktop its own scanout. Its socket must be there and answer, it must be DRM master, and
it must enable scanouts on the port the host's frame export listens on.

The socket is never removed or replaced from here: it belongs to the daemon."""

from __future__ import annotations

import re

from helixdiag import drm_client
from helixdiag.layers import Side, VideoPath
from helixdiag.probes import register, scanout_path
from helixdiag.probes.context import ProbeContext
from helixdiag.probes.scanout_path import (
    MANAGER_UNIT,
    drm_log,
    judge_log,
    judge_port,
    on_the_real_daemon,
)
from helixdiag.protocol.drm import UNKNOWN_COMMAND
from helixdiag.results import Outcome, failed, passed, skipped
from helixdiag.unixsock import PathState

RESTART = f"sudo systemctl restart {MANAGER_UNIT}"
JOURNAL_HINT = (f"in the VM: `journalctl -u {MANAGER_UNIT} > drm.log`, then --drm-log drm.log (or pipe it: "
                f"`journalctl -u {MANAGER_UNIT} | helixdiag run --drm-log -`)")
PROBE_COST = (f"the liveness probe writes one ERROR line `{UNKNOWN_COMMAND}` into the manager's journal "
              "(it sends command 0; never a lease or a release)")


def _gate(ctx: ProbeContext) -> Outcome | None:
    """A machine without any sign of the daemon is not judged: on --side both (CI, the
    self-test), or when nothing says this guest is on the scanout path (no socket, no unit
    installed, --mode auto). Off the scanout path the runner skips the whole layer."""
    if ctx.obs.exists(ctx.config.drm_socket):
        return None
    where = (f"no drm-manager socket at {ctx.config.drm_socket} on this machine (it lives in the Helix VM, and "
             "in desktop containers through their /run/helix-drm mount)")
    if ctx.absent_is_skip("drm-manager", "drm_socket", "drm_log"):
        return skipped(where)
    undecided = scanout_path.decide(ctx).path == VideoPath.BOTH and not ctx.config.asked_for("drm_socket")
    if undecided and (not on_the_real_daemon(ctx) or ctx.obs.unit_state(MANAGER_UNIT) is None):
        return skipped(f"{where}, and no {MANAGER_UNIT} unit installed: this guest does not show the scanout "
                       "path (--mode scanout judges it anyway)")
    return None


def _not_master_in_log(ctx: ProbeContext) -> bool:
    log = drm_log(ctx)
    return log is not None and "drm-manager-not-master" in log.failure_ids


@register("drm-manager.socket", layer="drm-manager", side=Side.GUEST,
          description="the lease socket exists, is a socket, accepts, and is not a stale file mount")
def drm_socket(ctx: ProbeContext) -> Outcome:
    if (gate := _gate(ctx)) is not None:
        return gate
    path = ctx.config.drm_socket
    state = ctx.obs.path_state(path, ctx.config.timeout)
    mount = ctx.obs.mount_at(path)
    evidence: dict[str, object] = {"socket": path, "socket_from": ctx.config.source("drm_socket"),
                                   "state": str(state.state), "detail": state.detail,
                                   "mode": oct(state.mode & 0o777) if state.mode is not None else None,
                                   "unit": ctx.obs.unit_state(MANAGER_UNIT) if on_the_real_daemon(ctx) else None}
    if mount is not None:
        evidence["file_mount"] = {"mount_point": mount.mount_point, "root": mount.root, "fstype": mount.fstype}
    if state.state == PathState.LIVE:
        summary = f"{path} accepts connections"
        if mount is not None:
            summary += (" — a file bind mount: it goes stale when the manager restarts; mount the "
                        "directory /run/helix-drm instead")
        return passed(summary, **evidence)
    if mount is not None and state.state == PathState.STALE:
        return failed("drm-socket-stale-mount",
                      f"{path} is a file bind mount ({mount.root} from {mount.source}) and refuses connections: "
                      "the manager restarted and bound a new socket this mount cannot see", **evidence)
    if _not_master_in_log(ctx):
        return failed("drm-manager-not-master", f"{path}: {state.detail}; the manager's log shows it cannot "
                      "become DRM master", **evidence)
    unit = evidence["unit"]
    where = f" (systemd says {MANAGER_UNIT} is {unit})" if unit else ""
    return failed("drm-manager-not-running", f"{path}: {state.detail}{where}",
                  remedy=f"In the VM: `{RESTART}`; then `journalctl -u {MANAGER_UNIT} -n 50` says why it "
                         "stopped. In a desktop container, the VM's /run/helix-drm must be mounted.",
                  **evidence)


@register("drm-manager.answers", layer="drm-manager", side=Side.GUEST, needs=("drm-manager.socket",),
          description="the manager answers its harmless unknown-command request")
def drm_answers(ctx: ProbeContext) -> Outcome:
    if (gate := _gate(ctx)) is not None:
        return gate
    path = ctx.config.drm_socket
    evidence = {"socket": path, "cost": PROBE_COST}
    try:
        reply = drm_client.probe(path, ctx.config.timeout)
    except (drm_client.LeaseError, TimeoutError, OSError) as exc:
        why = f"no answer within {ctx.config.timeout:g} s" if isinstance(exc, TimeoutError) else str(exc)
        return failed("drm-manager-not-running",
                      f"{path} accepts but the manager does not answer ({why}): hung, e.g. blocked on the "
                      "kernel's modeset lock", remedy=f"In the VM: `{RESTART}`; if it hangs again, look for "
                      "`blocked on mutex` in `dmesg`.", **evidence)
    evidence.update(status=reply.status, text=reply.text)
    if reply.status == 1 and reply.text == UNKNOWN_COMMAND:
        return passed(f"the manager answers ({UNKNOWN_COMMAND!r}, as expected)", **evidence)
    return failed("drm-manager-not-running", f"{path} answered status {reply.status} {reply.text!r}, not "
                  f"the manager's {UNKNOWN_COMMAND!r}: something else listens there", **evidence)


_ADDR = re.compile(r"^\s*\[?(?P<host>[^\]\s]*)\]?:(?P<port>\d{1,5})\s*$")


def _manager_addr(ctx: ProbeContext) -> tuple[str | None, str]:
    env = ctx.obs.manager_env() if on_the_real_daemon(ctx) else None  # the VM daemon's settings
    if env and env.get("QEMU_ADDR"):
        return env["QEMU_ADDR"], "/etc/helix-drm-manager.env"
    log = drm_log(ctx)
    if log is not None and log.qemu_addr:
        return log.qemu_addr, f"the manager's log ({ctx.config.drm_log})"
    if env is not None:
        return "10.0.2.2:15937", "the manager's default (/etc/helix-drm-manager.env sets no QEMU_ADDR)"
    # A desktop container sees the socket, not the VM's /etc: its setting is unknown here.
    return None, "no /etc/helix-drm-manager.env here and no manager log"


@register("drm-manager.config", layer="drm-manager", side=Side.GUEST, talks=True,
          description="the manager sends ENABLE_SCANOUT to the port the host listens on (QEMU_ADDR)")
def drm_config(ctx: ProbeContext) -> Outcome:
    if (gate := _gate(ctx)) is not None:
        return gate
    addr, source = _manager_addr(ctx)
    if addr is None:
        return skipped(f"the manager's QEMU_ADDR is unknown here ({source}): run this in the VM, or give "
                       f"--drm-log ({JOURNAL_HINT})")
    m = _ADDR.match(addr)
    if not m:
        return failed("drm-manager-wrong-port", f"QEMU_ADDR={addr!r} ({source}) is not HOST:PORT",
                      qemu_addr=addr, qemu_addr_from=source)
    port = int(m.group("port"))
    right, why = judge_port(ctx, port)
    evidence = {"qemu_addr": addr, "qemu_addr_from": source, "port": port, "judged_by": why}
    if right is None:
        return skipped(f"the manager dials {addr} ({source}); whether the host listens there cannot be told: "
                       f"{why}", **evidence)
    if not right:
        return failed("drm-manager-wrong-port", f"the manager enables scanouts at {addr} ({source}), but {why}",
                      **evidence)
    return passed(f"the manager dials {addr} ({source}): {why}", **evidence)


@register("drm-manager.log", layer="drm-manager", side=Side.GUEST, timeout=60,
          description="the manager's journal: master, pool, ENABLE and lease errors")
def drm_manager_log(ctx: ProbeContext) -> Outcome:
    if (gate := _gate(ctx)) is not None:
        return gate
    log = drm_log(ctx)
    return judge_log(ctx, "drm_log", "drm-manager", JOURNAL_HINT, log,
                     lambda: f"{log.restarts} start(s); {len(log.leases_held)} lease(s) held")
