"""What `serve` is told (ServerConfig) and what it counts (Stats)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from helixdiag.faults import Fault
from helixdiag.protocol import (
    DEFAULT_MAX_PAYLOAD,
)

MAX_DIMENSION = 8192  # vsockenc's caps allow 1..8192 per side
SCANOUT_FRAME_NS = 16_666_667  # the host fabricates pts = frame_count·16 666 667



@dataclass
class ServerConfig:
    tcp: list[tuple[str, int]] = field(default_factory=list)
    unix: list[str] = field(default_factory=list)
    encoder: str = "auto"
    bitrate: int = 8_000_000
    gop: int = 120
    fps: int = 60
    size: tuple[int, int] = (1920, 1080)
    max_clients: int = 16
    idle_timeout: float = 30.0
    max_payload: int = DEFAULT_MAX_PAYLOAD
    fault: Fault | None = None


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
