"""socat layer (host, socat topology): is socat running, on the right port, into the right socket."""

from __future__ import annotations

import os

from helixdiag.layers import Side
from helixdiag.probes import register
from helixdiag.probes.context import ProbeContext
from helixdiag.results import Outcome, failed, passed, skipped, warned
from helixdiag.topology import SocatHop, same_path


def _not_socat_topology(ctx: ProbeContext) -> Outcome | None:
    topo = ctx.topology
    if topo.kind != "socat":
        return skipped(f"topology is {topo.kind} ({topo.kind_source}): no socat hop expected")
    return None


def _the_hop(ctx: ProbeContext) -> SocatHop | None:
    """This path's socat (never another one on this machine: those are listed, not judged)."""
    return ctx.topology.socat


@register("socat.process", layer="socat", side=Side.HOST,
          description="socat is running with TCP-LISTEN, and with fork")
def socat_process(ctx: ProbeContext) -> Outcome:
    if (skip := _not_socat_topology(ctx)) is not None:
        return skip
    hop = _the_hop(ctx)
    topo = ctx.topology
    if hop is None:
        broken = [h.describe() for h in topo.all_socat if h.config is None]
        hidden = [h for h in topo.all_socat if h.process.argv_unreadable]
        if hidden:
            who = ", ".join(h.error or "" for h in hidden)
            return skipped(f"cannot tell which socat forwards the port: {who}; run `sudo helixdiag run socat` "
                           "to read it", unreadable_socat=broken)
        port = topo.listen_port
        where = f" on port {port}" if port else ""
        into = f" into {topo.socket_path}" if topo.socket_path else ""
        return failed(
            "socat-not-running",
            f"no socat listens{where}{into}" + (" (other socats run: see also_on_this_machine)"
                                                 if topo.all_socat else ""),
            processes_scanned=len(ctx.obs.processes), unparsable_socat=broken,
            expected=f"socat TCP-LISTEN:{port or 'PORT'},bind=127.0.0.1,fork,reuseaddr "
                     f"UNIX-CONNECT:{topo.socket_path or '<socket>'}",
            **ctx.topology.judged("socat"),
        )
    evidence = {**hop.describe(), **ctx.topology.judged("socat")}
    if not hop.config.fork:
        return warned("socat-no-fork",
                      f"socat (pid {hop.process.pid}) listens on {hop.config.listen_port} without fork: "
                      "it serves one connection and exits", **evidence)
    return passed(f"socat (pid {hop.process.pid}) listens on {hop.config.listen_port} → "
                  f"{hop.config.target_path_as_written}", **evidence)


@register("socat.target", layer="socat", side=Side.HOST, needs=("socat.process",),
          description="socat's UNIX-CONNECT path is the socket QEMU serves")
def socat_target(ctx: ProbeContext) -> Outcome:
    if (skip := _not_socat_topology(ctx)) is not None:
        return skip
    hop = _the_hop(ctx)
    if hop is None:
        return skipped("no socat to check")
    c = hop.config
    evidence = {"socat_pid": hop.process.pid, "socat_cwd": hop.process.cwd,
                "target_as_written": c.target_path_as_written, "target_resolved": c.target_path,
                "target_relative": c.target_path_relative}
    if c.target_kind != "unix" or not c.target_path:
        return failed("socat-wrong-target", f"socat forwards to {c.target.raw}, not to a Unix socket", **evidence)
    expected, source = ctx.topology.socket_path, ctx.topology.socket_source
    evidence.update(expected_socket=expected, expected_from=source)
    if expected and not same_path(c.target_path, expected):
        return failed(
            "socat-wrong-target",
            f"socat connects to {c.target_path}, but the socket is {expected} (from {source})",
            remedy=f"Restart socat pointing at the real socket: socat TCP-LISTEN:{c.listen_port},"
                   f"bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:'{expected}'",
            correct_socket=expected, **evidence)
    q = ctx.topology.qemu
    if q is not None:
        # H1 binds a relative name: the real socket is in QEMU's working directory.
        cwd = q.process.cwd
        if cwd and c.target_path_relative and os.path.dirname(c.target_path) != cwd:
            candidate = os.path.join(cwd, os.path.basename(c.target_path))
            if ctx.obs.exists(candidate):
                return failed(
                    "socat-wrong-target",
                    f"socat resolves the relative path against its own directory ({hop.process.cwd}); "
                    f"QEMU's socket is {candidate}",
                    remedy=f"Use the absolute path: UNIX-CONNECT:'{candidate}'",
                    qemu_cwd=cwd, correct_socket=candidate, **evidence)
    return passed(f"socat connects to {c.target_path}", **evidence)


@register("socat.port", layer="socat", side=Side.HOST,
          description="the guest-facing port is held by socat (or QEMU), not something else")
def socat_port(ctx: ProbeContext) -> Outcome:
    topo = ctx.topology
    if topo.kind != "socat":
        # In the tcp topology QEMU owns the port: a stranger there is qemu-bind-failed.
        return skipped(f"topology is {topo.kind} ({topo.kind_source}): no socat hop expected")
    port = topo.listen_port
    if port is None:
        return skipped("no port to check (none configured or discovered)")
    owners = [{**ctx.obs.who(lis.pid, lis.command), "address": lis.address}
              for lis in ctx.obs.listeners_on_port(port)]
    evidence = {"port": port, "port_from": topo.port_source, "listeners": owners}
    # Only a process we can name is a conflict; an unmapped pid (another user's process,
    # or one that just exited) is shown in the evidence but not blamed.
    strangers = [o for o in owners if o["role"] == "other"]
    if strangers and not any(o["role"] in ("socat", "qemu", "helixdiag-serve") for o in owners):
        who = strangers[0]
        return failed("socat-port-conflict",
                      f"port {port} is held by pid {who['pid']} ({who['command']}), not socat",
                      remedy=f"Stop that process or choose another port; see `lsof -nP -iTCP:{port}`.",
                      **evidence)
    if not owners:
        if unknown := ctx.obs.listeners_unknown:
            return skipped(f"cannot tell who listens on port {port}: {unknown}", **evidence)
        return skipped(f"nothing listens on port {port} (see socat.process)", **evidence)
    return passed(f"port {port} is held by {owners[0]['role']} (pid {owners[0]['pid']})", **evidence)
