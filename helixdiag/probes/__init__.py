"""Probe registry: each layer module registers its probes here (see `register`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from helixdiag.layers import LAYER_NAMES, Side


@dataclass(frozen=True)
class ProbeSpec:
    id: str
    layer: str
    side: Side
    description: str
    func: Callable[..., object]


REGISTRY: dict[str, ProbeSpec] = {}


def register(
    probe_id: str, *, layer: str, side: Side, description: str
) -> Callable[[Callable[..., object]], Callable[..., object]]:
    """Decorator: add a probe function to the registry under `probe_id`."""
    if layer not in LAYER_NAMES:
        raise ValueError(f"unknown layer {layer!r} for probe {probe_id!r}")

    def wrap(func: Callable[..., object]) -> Callable[..., object]:
        if probe_id in REGISTRY:
            raise ValueError(f"probe {probe_id!r} registered twice")
        REGISTRY[probe_id] = ProbeSpec(probe_id, layer, side, description, func)
        return func

    return wrap


def all_probes() -> list[ProbeSpec]:
    """Every registered probe, in layer order then registration order."""
    order = {name: i for i, name in enumerate(LAYER_NAMES)}
    return sorted(REGISTRY.values(), key=lambda p: order[p.layer])
