"""What `serve` is told (ServerConfig) and what it counts (Stats)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from helixdiag.errors import ConfigError
from helixdiag.faults import Fault
from helixdiag.protocol import (
    DEFAULT_MAX_PAYLOAD,
)
from helixdiag.server.generations import MOVING, REFERENCE, Generation, Picture

MAX_DIMENSION = 8192  # vsockenc's caps allow 1..8192 per side
SCANOUT_FRAME_NS = 16_666_667  # the host fabricates pts = frame_count·16 666 667
DEFAULT_GOP = 120
MAX_SCANOUTS = 16  # VIRTIO_GPU_MAX_SCANOUTS: more hangs the guest's boot
NEVER = 0.0  # idle_timeout=0: never drop a silent client


@dataclass
class ServerConfig:
    """What `serve` is told. `gop`, `max_clients` and `idle_timeout` left at None take the
    generation's value; after construction they hold what applies (idle_timeout None: never)."""

    tcp: list[tuple[str, int]] = field(default_factory=list)
    unix: list[str] = field(default_factory=list)
    encoder: str = "auto"
    bitrate: int = 8_000_000
    gop: int | None = None
    fps: int = 60
    size: tuple[int, int] = (1920, 1080)
    max_clients: int | None = None
    idle_timeout: float | None = None
    max_payload: int = DEFAULT_MAX_PAYLOAD
    fault: Fault | None = None
    generation: Generation = REFERENCE
    picture: Picture = MOVING
    max_outputs: int = MAX_SCANOUTS  # QEMU's virtio-gpu max_outputs: scanout ids 1..max_outputs-1 can be enabled

    def __post_init__(self) -> None:
        gen = self.generation
        if self.gop is None:
            self.gop = gen.gop or DEFAULT_GOP
        if self.max_clients is None:
            self.max_clients = gen.max_clients
        if self.idle_timeout is None:
            self.idle_timeout = gen.idle_timeout
        elif self.idle_timeout == NEVER:
            self.idle_timeout = None
        if not 1 <= self.max_outputs <= MAX_SCANOUTS:
            raise ConfigError(f"max_outputs must be 1..{MAX_SCANOUTS}, got {self.max_outputs}")
        for kind, given in (("tcp", self.tcp), ("unix", self.unix)):
            if given and kind not in gen.transports:
                only = " or ".join(sorted(gen.transports))
                raise ConfigError(f"generation {gen.name} listens on {only} only, not {kind}",
                                  hint="docs/serve.md: host generations")

    @property
    def write_timeout(self) -> float:
        """How long one write may wait for a client that does not read."""
        if self.generation.is_reference and self.idle_timeout is not None:
            return self.idle_timeout
        return self.generation.write_timeout

    @property
    def message_timeout(self) -> float | None:
        """serve only: a message must arrive whole this soon after its first byte."""
        return self.idle_timeout if self.generation.is_reference else None


class Stats:
    """Counters shared by all threads (cheap lock: a few increments per frame)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.clients_now = 0
        self.clients_total = 0
        self.clients_rejected = 0
        self.frames_out = 0
        self.frames_dropped = 0
        self.errors_sent = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._window: list[tuple[float, int]] = []

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def fps(self) -> float:
        """Frames/s over the last few seconds (sampled by whoever displays it)."""
        now = time.monotonic()
        with self._lock:
            self._window.append((now, self.frames_out))
            self._window = [(t, n) for t, n in self._window if now - t <= 3.0]
            (t0, n0), (t1, n1) = self._window[0], self._window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def snapshot(self) -> dict[str, float | int]:
        with self._lock:
            return {
                "uptime_s": round(time.monotonic() - self.started, 3),
                "clients_now": self.clients_now,
                "clients_total": self.clients_total,
                "clients_rejected": self.clients_rejected,
                "frames_out": self.frames_out,
                "frames_dropped": self.frames_dropped,
                "errors_sent": self.errors_sent,
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
            }


Log = Callable[[str], None]
