"""The probe registry (the words of results live in helixdiag.results).

A probe is a function `probe(ctx) -> Outcome` registered with `@register(...)` in the
module of its layer. It judges observations and returns an outcome; it never prints.
Adding a probe is one function in one layer module (and that module listed in `_MODULES`).
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helixdiag.layers import LAYER_NAMES, Side, VideoPath
from helixdiag.results import Outcome

if TYPE_CHECKING:
    from helixdiag.probes.context import ProbeContext


ProbeFunc = typing.Callable[["ProbeContext"], Outcome]  # evaluated at import: typing for Python 3.8 (guest agent)


@dataclass(frozen=True)
class ProbeSpec:
    id: str
    layer: str
    side: Side
    description: str
    func: ProbeFunc
    needs: tuple[str, ...] = ()  # probes whose failure makes this one `blocked`
    talks: bool = False  # opens HXFR connections: serialised (single-client hosts)
    timeout: float | None = None  # seconds; None = derived from the run's --timeout
    path: VideoPath | None = None  # the video path it belongs to, when not its layer's


REGISTRY: dict[str, ProbeSpec] = {}

# The layer modules; importing them fills REGISTRY.
_MODULES = (
    "helixdiag.probes.pipewire",
    "helixdiag.probes.vsockenc",
    "helixdiag.probes.drm_manager",
    "helixdiag.probes.scanout",
    "helixdiag.probes.desktop_bridge",
    "helixdiag.probes.guest_tcp",
    "helixdiag.probes.socat",
    "helixdiag.probes.unix_socket",
    "helixdiag.probes.qemu",
    "helixdiag.probes.encoder",
    "helixdiag.probes.stream",
)


def register(
    probe_id: str,
    *,
    layer: str,
    side: Side,
    description: str,
    needs: tuple[str, ...] = (),
    talks: bool = False,
    timeout: float | None = None,
    path: VideoPath | None = None,
) -> Callable[[ProbeFunc], ProbeFunc]:
    """Decorator: add a probe function to the registry under `probe_id`."""
    if layer not in LAYER_NAMES:
        raise ValueError(f"unknown layer {layer!r} for probe {probe_id!r}")
    if not probe_id.startswith(layer + "."):
        raise ValueError(f"probe id {probe_id!r} must start with its layer {layer!r}")

    def wrap(func: ProbeFunc) -> ProbeFunc:
        if probe_id in REGISTRY:
            raise ValueError(f"probe {probe_id!r} registered twice")
        REGISTRY[probe_id] = ProbeSpec(probe_id, layer, side, description, func, needs, talks, timeout, path)
        return func

    return wrap


def load() -> None:
    for name in _MODULES:
        importlib.import_module(name)


def all_probes() -> list[ProbeSpec]:
    """Every registered probe, in layer order then registration order."""
    load()
    order = {name: i for i, name in enumerate(LAYER_NAMES)}
    return sorted(REGISTRY.values(), key=lambda p: order[p.layer])
