"""One report from two sides: the host probes run here, the guest probes run remotely
(`run --guest PREFIX`), and one diagnosis across both — a guest `guest-no-reply` plus a
host `socket-stale` concludes `socket-stale`."""

from __future__ import annotations

import dataclasses
from typing import Any

from helixdiag import graph
from helixdiag.remote import RemoteResult
from helixdiag.report.model import Report
from helixdiag.results import ProbeResult, Status


def probe_from_dict(d: dict[str, Any], ran_on: str) -> ProbeResult:
    evidence = dict(d.get("evidence") or {})
    evidence.setdefault("ran_on", ran_on)
    return ProbeResult(
        id=d["id"], layer=d["layer"], side=d["side"], status=Status(d["status"]), summary=d["summary"],
        failure_id=d.get("failure_id"), evidence=evidence, remedy=d.get("remedy"),
        duration_ms=int(d.get("duration_ms") or 0),
    )


def merge(host: Report, guest: RemoteResult) -> Report:
    """Guest-side probes from the remote report, everything else from the host run."""
    remote = guest.report or {}
    guest_probes = [probe_from_dict(p, guest.prefix) for p in remote.get("probes", []) if p.get("side") == "guest"]
    cross = _port_check(remote, host)
    if cross is not None:
        guest_probes = [cross if p.id == cross.id else p for p in guest_probes]
    guest_ids = {p.id for p in guest_probes}
    host_probes = [p for p in host.probes if p.id not in guest_ids and p.side != "guest"]
    probes = guest_probes + host_probes
    topology = (host.topology or {}).get("kind", "unknown")
    environment = dict(host.environment)
    environment["side"] = "both"
    environment["guest"] = {**(remote.get("environment") or {}), "via": guest.prefix,
                            "exit_code": guest.exit_code, "stderr_tail": guest.stderr[-20:],
                            "elapsed_s": round(guest.elapsed_s, 3)}
    config = dict(host.config)
    config["guest"] = {"prefix": guest.prefix, "config": remote.get("config")}
    return dataclasses.replace(
        host, probes=probes, diagnosis=graph.diagnose(probes, topology), environment=environment,
        config=config, duration_ms=host.duration_ms + int(guest.elapsed_s * 1000),
    )


def _port_check(remote: dict[str, Any], host: Report) -> ProbeResult | None:
    """Only with both sides in hand can the guest's port be compared with the host's."""
    guest_port = (remote.get("config") or {}).get("port")
    topo = host.topology or {}
    host_port = topo.get("listen_port")
    if not guest_port or not host_port:
        return None
    sources = ((remote.get("config") or {}).get("sources") or {})
    evidence = {"guest_port": guest_port, "guest_port_from": f"guest: {sources.get('port', 'default')}",
                "host_port": host_port, "host_port_from": f"host: {topo.get('port_source')}",
                "ran_on": "both sides (compared after the merge)"}
    if guest_port == host_port:
        return ProbeResult("guest-tcp.port", "guest-tcp", "guest", Status.PASS,
                           f"guest and host agree on port {guest_port}", evidence=evidence)
    from helixdiag import failures

    return ProbeResult(
        "guest-tcp.port", "guest-tcp", "guest", Status.FAIL,
        f"the guest dials {guest_port} ({evidence['guest_port_from']}) but the host listens on "
        f"{host_port} ({evidence['host_port_from']})",
        failure_id="port-mismatch", evidence=evidence, remedy=failures.get("port-mismatch").remedy)
