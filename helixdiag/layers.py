"""The layers of the path, in data-path order, and which side each runs on (docs/run.md).

This is the one declaration of the layer list; probes, reports and the diagnosis refer to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from helixdiag.compat import StrEnum


class Side(StrEnum):
    GUEST = "guest"
    HOST = "host"
    EITHER = "either"


class VideoPath(StrEnum):
    """Which of Helix's two video paths a layer belongs to."""

    REQUEST = "request"  # vsockenc sends PipeWire frames and asks for H.264 back
    SCANOUT = "scanout"  # QEMU pushes what the desktop draws on its leased scanout
    BOTH = "both"


@dataclass(frozen=True)
class Layer:
    name: str
    side: Side
    establishes: str
    path: VideoPath = VideoPath.BOTH


LAYERS: tuple[Layer, ...] = (
    Layer("pipewire", Side.GUEST, "daemon reachable, a video source exists, frames flow", VideoPath.REQUEST),
    Layer("vsockenc", Side.GUEST, "element installed, pipeline passes the lint, healthy log", VideoPath.REQUEST),
    # The scanout path (today's default): the lease daemon, the desktop's scanout, the bridge.
    Layer("drm-manager", Side.GUEST, "the lease daemon runs, its socket answers, it dials the host's port",
          VideoPath.SCANOUT),
    Layer("scanout", Side.GUEST, "connectors exist; the desktop's scanout id agrees and is driven",
          VideoPath.SCANOUT),
    Layer("desktop-bridge", Side.GUEST, "the bridge runs in scanout mode, dials the host's port, healthy log",
          VideoPath.SCANOUT),
    Layer("guest-tcp", Side.GUEST, "TCP connect to HOST:PORT, a protocol answer, a subscription"),
    Layer("socat", Side.HOST, "socat running, listen port and Unix target right"),
    Layer("unix-socket", Side.HOST, "socket path exists, is a socket, someone listens"),
    Layer("qemu", Side.HOST, "QEMU running with helix, listening, init markers in its log"),
    Layer("encoder", Side.HOST, "an H.264 session opens and produces SPS/PPS + IDR"),
    Layer("stream", Side.EITHER, "a real frame exchange, H.264 validated and decoded"),
)

LAYER_NAMES: tuple[str, ...] = tuple(layer.name for layer in LAYERS)


def layer(name: str) -> Layer:
    for item in LAYERS:
        if item.name == name:
            return item
    raise KeyError(name)
