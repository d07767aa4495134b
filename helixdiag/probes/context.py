"""What a probe gets: the run's config, the shared observations, the discovered topology,
and the results of the probes it depends on."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from helixdiag.config import RunConfig
from helixdiag.observe.system import Observations
from helixdiag.topology import Topology, discover

if TYPE_CHECKING:
    from helixdiag.report.model import ProbeResult


@dataclass
class ProbeContext:
    config: RunConfig
    obs: Observations = field(default_factory=Observations)
    results: dict[str, ProbeResult] = field(default_factory=dict)
    explicit: set[str] = field(default_factory=set)  # probe ids / layers named on the command line

    def __post_init__(self) -> None:
        self._topology_lock = threading.Lock()

    @cached_property
    def topology(self) -> Topology:
        with self._topology_lock:
            return discover(self.config, self.obs)

    def result(self, probe_id: str) -> ProbeResult | None:
        return self.results.get(probe_id)

    def status_of(self, probe_id: str) -> str | None:
        r = self.results.get(probe_id)
        return str(r.status) if r else None
