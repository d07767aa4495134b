"""unix-socket layer (host, socat topology): the path, and whether anyone serves it."""

from __future__ import annotations

import time

from helixdiag import net
from helixdiag.layers import Side
from helixdiag.observe.processes import START_TIME_PRECISION_S
from helixdiag.probes import register
from helixdiag.probes.context import ProbeContext
from helixdiag.results import Outcome, failed, passed, skipped
from helixdiag.timefmt import iso_time as _iso
from helixdiag.unixsock import PathState


def _path(ctx: ProbeContext) -> tuple[str | None, str]:
    topo = ctx.topology
    return topo.socket_path, topo.socket_source


@register("unix-socket.path", layer="unix-socket", side=Side.HOST,
          description="the socket path exists, is a socket and fits sun_path")
def socket_path(ctx: ProbeContext) -> Outcome:
    path, source = _path(ctx)
    if path is None:
        if ctx.topology.kind == "socat":
            return failed("socket-missing", "no Unix socket path: socat has no UNIX-CONNECT target "
                          "and QEMU's working directory has no helix-frame-export.sock")
        given = f"; the socket given ({ctx.config.socket}) is not part of it" if ctx.config.socket else ""
        return skipped(f"topology is {ctx.topology.kind} ({ctx.topology.kind_source}): no Unix socket hop{given}")
    size = len(path.encode()) + 1
    evidence: dict[str, object] = {"path": path, "path_from": source, "sun_path_bytes": size,
                                   "sun_path_limit": net.UNIX_PATH_MAX}
    if size > net.UNIX_PATH_MAX:
        return failed("socket-path-too-long",
                      f"the socket path is {size - 1} bytes; this OS allows {net.UNIX_PATH_MAX - 1}", **evidence)
    info = ctx.obs.path_state(path, ctx.config.timeout)
    evidence.update(file_type=info.file_type, mode=oct(info.mode) if info.mode is not None else None,
                    uid=info.uid, mtime=_iso(info.mtime))
    if info.state == PathState.MISSING:
        return failed("socket-missing", f"{path} does not exist (from {source})", **evidence)
    if info.state == PathState.PERMISSION:
        return failed("socket-permission", f"{path}: {info.detail}", **evidence)
    if info.file_type != "socket":
        return failed("socket-not-a-socket", f"{path} is a {info.file_type}, not a socket", **evidence)
    return passed(f"{path} is a socket", **evidence)


@register("unix-socket.accept", layer="unix-socket", side=Side.HOST, needs=("unix-socket.path",),
          description="connect() to the socket is accepted, and by whom")
def socket_accept(ctx: ProbeContext) -> Outcome:
    path, source = _path(ctx)
    if path is None:
        return skipped("no Unix socket path")
    info = ctx.obs.path_state(path, ctx.config.timeout)
    holders = ctx.obs.socket_holders(path)
    holder_facts = [{**ctx.obs.who(h.pid, h.command), "listening": h.listening, "source": h.source}
                    for h in holders]
    evidence: dict[str, object] = {"path": path, "connect": info.detail, "errno": info.errno,
                                   "holders": holder_facts, "mtime": _iso(info.mtime)}
    if info.state == PathState.LIVE:
        listener = next((h for h in holder_facts if h["listening"]), holder_facts[0] if holder_facts else None)
        who = f" by pid {listener['pid']} ({listener['command']}, {listener['role']})" if listener else ""
        return passed(f"connections to {path} are accepted{who}", **evidence)
    if info.state == PathState.PERMISSION:
        return failed("socket-permission", f"connect() to {path} is denied: {info.detail}", **evidence)
    if info.state == PathState.STALE:
        _age_against_qemu(ctx, info.mtime, evidence)
        restart = ctx.topology.qemu.restart_how() if ctx.topology.qemu else "restart the VM"
        nobody = not holder_facts
        why = "nobody holds it" if nobody else f"held by {', '.join(str(h['pid']) for h in holder_facts)} but not accepting"
        return failed("socket-stale", f"{path} exists but connect() is refused: {why}",
                      remedy=f"Remove the stale socket and {restart} so QEMU binds it again: "
                             f"`helixdiag fix --apply` (removes it only if it is still refusing and "
                             f"unheld) or `rm '{path}'`, then {restart}.",
                      **evidence)
    if info.state == PathState.NOT_A_SOCKET:
        return failed("socket-not-a-socket", f"{path} is not a socket", **evidence)
    return failed("socket-stale", f"connect() to {path} failed: {info.detail}", **evidence)


def _age_against_qemu(ctx: ProbeContext, mtime: float | None, evidence: dict[str, object]) -> None:
    """A socket older than the running QEMU was left by an earlier instance."""
    if mtime is None:
        return
    evidence["socket_age_s"] = round(time.time() - mtime, 1)
    q = ctx.topology.qemu
    if q is not None and q.process.started:
        newest = q.process.started
        evidence["qemu_pid"] = q.pid
        evidence["qemu_started"] = _iso(newest)
        # Closer than the start time's precision, the order is unknown (None).
        if abs(mtime - newest) > START_TIME_PRECISION_S:
            evidence["socket_older_than_qemu"] = mtime < newest
        else:
            evidence["socket_older_than_qemu"] = None

