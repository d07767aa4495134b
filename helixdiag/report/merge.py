"""One report from several machines: the host probes run here, the guest probes run in one
or more places (`run --guest [NAME=]PREFIX`), and one diagnosis across all of them — a guest
`guest-no-reply` plus a host `socket-stale` concludes `socket-stale`.

Every probe says who observed its facts (`observed_on`: "host", "guest:NAME"); with more
than one place a guest probe's id carries its place (`guest-tcp.ping@vm`), so ids stay unique.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from helixdiag import graph
from helixdiag.remote import RemoteResult
from helixdiag.report.model import Report
from helixdiag.results import ProbeResult, Status

HOST = "host"


def probe_from_dict(d: dict[str, Any], ran_on: str) -> ProbeResult:
    evidence = dict(d.get("evidence") or {})
    evidence.setdefault("ran_on", ran_on)
    return ProbeResult(
        id=d["id"], layer=d["layer"], side=d["side"], status=Status(d["status"]), summary=d["summary"],
        failure_id=d.get("failure_id"), evidence=evidence, remedy=d.get("remedy"),
        duration_ms=int(d.get("duration_ms") or 0), place=d.get("place"), observed_on=d.get("observed_on"),
    )


def merge(host: Report, guests: RemoteResult | list[RemoteResult]) -> Report:
    """Guest-side probes from each place's report, everything else from the host run."""
    guests = [guests] if isinstance(guests, RemoteResult) else list(guests)
    guest_probes: list[ProbeResult] = []
    for guest in guests:
        guest_probes += _place_probes(guest, host, tag=len(guests) > 1)
    host_probes = [dataclasses.replace(p, observed_on=HOST) for p in host.probes if p.side != "guest"]
    probes = guest_probes + host_probes
    topology = (host.topology or {}).get("kind", "unknown")
    environment = dict(host.environment)
    environment["side"] = "both"
    places = {g.place: _environment(g) for g in guests}
    environment["guest"] = places[guests[0].place]  # the first place, where one report had one guest
    environment["places"] = places
    config = dict(host.config)
    config["guest"] = {"prefix": guests[0].prefix, "config": (guests[0].report or {}).get("config")}
    config["places"] = {g.place: {"prefix": g.prefix, "agent": g.agent, "config": (g.report or {}).get("config")}
                        for g in guests}
    return dataclasses.replace(
        host, probes=probes, diagnosis=graph.diagnose(probes, topology), environment=environment,
        config=config, duration_ms=host.duration_ms + int(sum(g.elapsed_s for g in guests) * 1000),
    )


def _place_probes(guest: RemoteResult, host: Report, *, tag: bool) -> list[ProbeResult]:
    remote = guest.report or {}
    observer = f"guest:{guest.place}"
    probes = [probe_from_dict(p, guest.prefix) for p in remote.get("probes", []) if p.get("side") == "guest"]
    cross = _port_check(remote, host)
    out = []
    for p in probes:
        seen_by = observer
        if cross is not None and p.id == cross.id:
            p, seen_by = cross, f"{HOST}+{observer}"
        out.append(dataclasses.replace(p, observed_on=seen_by, place=guest.place,
                                       id=f"{p.id}@{guest.place}" if tag else p.id))
    return out


def _environment(guest: RemoteResult) -> dict[str, Any]:
    return {**((guest.report or {}).get("environment") or {}), "via": guest.prefix, "agent": guest.agent,
            "exit_code": guest.exit_code, "stderr_tail": guest.stderr[-20:], "elapsed_s": round(guest.elapsed_s, 3)}


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
