"""The path as a report shows it: one hop per layer that has results, in data-path order,
each with the probe that speaks for it (the most important status wins). The text view, the
HTML page and `watch` all draw the path from this."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from helixdiag.layers import LAYERS, Layer
from helixdiag.report.model import Report
from helixdiag.results import ProbeResult, Status

# Which probe speaks for a layer: the most important status wins.
RANK = [Status.FAIL, Status.ERROR, Status.WARN, Status.BLOCKED, Status.PASS, Status.SKIP]


@dataclass(frozen=True)
class Hop:
    layer: Layer
    probes: list[ProbeResult]
    status: Status
    speaker: ProbeResult | None


def layer_status(results: list[ProbeResult]) -> tuple[Status, ProbeResult | None]:
    for status in RANK:
        for r in results:
            if r.status == status:
                return status, r
    return Status.SKIP, None


def hops(report: Report) -> Iterator[Hop]:
    for layer in LAYERS:
        mine = [p for p in report.probes if p.layer == layer.name]
        if mine:
            status, speaker = layer_status(mine)
            yield Hop(layer, mine, status, speaker)
