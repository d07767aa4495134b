"""What a probe gets: the run's config, the shared observations, the discovered topology,
and the results of the probes it depends on."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from helixdiag import client
from helixdiag.config import RunConfig
from helixdiag.logscan.summary import GstLogSummary
from helixdiag.observe.facts import Observations
from helixdiag.observe.once import Once
from helixdiag.topology import Topology, discover

if TYPE_CHECKING:
    from helixdiag.results import ProbeResult

T = TypeVar("T")


@dataclass
class ProbeContext:
    config: RunConfig
    obs: Observations = field(default_factory=Observations)
    results: dict[str, ProbeResult] = field(default_factory=dict)
    explicit: set[str] = field(default_factory=set)  # probe ids / layers named on the command line
    # How a guest probe runs its frame exchange: validated and decoded here, or (the guest
    # agent) recorded for the host to judge.
    exchange: Callable[[client.ExchangeOptions], client.ExchangeResult] = client.exchange

    def __post_init__(self) -> None:
        self._topology_lock = threading.Lock()
        self._memo = Once()

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """A judgement several probes share (the video path, the scanout id), made once."""
        return self._memo.get(key, compute)

    @cached_property
    def topology(self) -> Topology:
        with self._topology_lock:
            return discover(self.config, self.obs)

    def gst_log(self) -> GstLogSummary | None:
        """The GST_DEBUG log named for this run, scanned once (None: none named, or no such file)."""
        return self.obs.gst_log(self.config.gst_log) if self.config.gst_log else None

    def result(self, probe_id: str) -> ProbeResult | None:
        return self.results.get(probe_id)

    def asked(self, layer: str, *options: str) -> bool:
        """Was this layer asked for: named on the command line, or one of its options given?"""
        if any(self.config.asked_for(o) for o in options):
            return True
        return any(name == layer or name.startswith(layer + ".") for name in self.explicit)

    def absent_is_skip(self, layer: str, *options: str) -> bool:
        """On `--side both` (CI, the self-test) a guest component that simply is not on this
        machine is a skip, unless it was asked for ; inside a guest it fails."""
        return self.config.side == "both" and not self.asked(layer, *options)
