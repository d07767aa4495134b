"""Scanout mode: one producer per active scanout pushes frames of a synthetic moving desktop,
and one writer per subscriber drops frames (never queues them) when that subscriber is slow."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from helixdiag import net, protocol
from helixdiag.encoders import EncodeFailed, EncoderUnavailable, open_encoder
from helixdiag.frames import SyntheticSource
from helixdiag.protocol import (
    FrameResponse,
    PixelFormat,
)
from helixdiag.server.settings import SCANOUT_FRAME_NS
from helixdiag.server.shaping import wire_bytes

if TYPE_CHECKING:
    from helixdiag.server.listener import FrameServer
    from helixdiag.server.session import ClientSession


class Subscriber(threading.Thread):
    """Writes pushed frames to one client. A one-slot mailbox: a frame that arrives while
    the previous one is still being written replaces it (a drop), and after a drop the
    subscriber waits for the next keyframe so its decoder never sees a broken reference."""

    def __init__(self, session: ClientSession, scanout_id: int) -> None:
        super().__init__(name=f"hxfr-push {session.peer}", daemon=True)
        self.session = session
        self.scanout_id = scanout_id
        self._cond = threading.Condition()
        self._slot: tuple[list[protocol.Buffer], bool] | None = None
        self._stopped = False
        self.need_keyframe = True
        self.sent = 0
        self.dropped = 0

    def offer(self, parts: list[protocol.Buffer], is_keyframe: bool) -> bool:
        """Called by the producer; never blocks. Returns False when the frame was dropped."""
        with self._cond:
            dropped = self._slot is not None
            if dropped:
                self.dropped += 1
                self.need_keyframe = True
            if self.need_keyframe and not is_keyframe:
                self._slot = None
                return False
            self._slot = (parts, is_keyframe)
            self.need_keyframe = False
            self._cond.notify()
            return not dropped

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def run(self) -> None:
        while True:
            with self._cond:
                while self._slot is None and not self._stopped:
                    self._cond.wait(1.0)  # bounded, though stop() and offer() notify
                if self._stopped:
                    return
                parts, _ = self._slot  # type: ignore[misc]
                self._slot = None
            try:
                with self.session.write_lock:
                    n = net.send_parts(self.session.sock, parts,
                                   time.monotonic() + self.session.config.idle_timeout)
            except (OSError, TimeoutError) as exc:
                if net.translate(exc, "push").kind not in ("reset", "closed"):  # else: the client left
                    self.session.close_reason = f"push failed: {exc}"
                self.session.close()
                return
            self.sent += 1
            self.session.frames += 1
            self.session.server.stats.add(frames_out=1, bytes_out=n)


class ScanoutProducer(threading.Thread):
    """Renders and encodes one scanout's synthetic desktop at --fps, once for all
    subscribers, and offers each frame to every subscriber without waiting for any."""

    def __init__(self, server: FrameServer, scanout_id: int) -> None:
        super().__init__(name=f"hxfr-scanout {scanout_id}", daemon=True)
        self.server = server
        self.scanout_id = scanout_id
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._keyframe = threading.Event()
        self._bitrate: int | None = None
        self._last_drop_key = 0.0
        self.alive = True

    def add(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.append(sub)
        self._keyframe.set()  # a new subscriber needs an IDR to start decoding

    def remove(self, sub: Subscriber) -> int:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            return len(self._subs)

    def request_keyframe(self) -> None:
        self._keyframe.set()

    def set_bitrate(self, bps: int) -> None:
        self._bitrate = bps

    def _after_drop(self) -> None:
        # A subscriber that dropped needs an IDR to recover, but a stalled one drops every
        # frame: at most one forced keyframe a second, so the others' bitrate stays sane.
        now = time.monotonic()
        if now - self._last_drop_key >= 1.0:
            self._last_drop_key = now
            self._keyframe.set()

    def stop(self) -> None:
        self.alive = False
        self._halt.set()

    def run(self) -> None:
        cfg = self.server.config
        width, height = cfg.size
        source = SyntheticSource(width, height, PixelFormat.NV12)
        try:
            encoder, _ = open_encoder(cfg.encoder, width=width, height=height,
                                      bitrate=cfg.bitrate, gop=cfg.gop, fps=cfg.fps)
        except EncoderUnavailable as exc:
            self.server.log(f"scanout {self.scanout_id}: encoder unavailable: {exc}")
            self.alive = False
            return
        period = 1.0 / max(cfg.fps, 1)
        next_due = time.monotonic()
        n = 0
        try:
            while not self._halt.is_set():
                if self._bitrate is not None:
                    encoder.set_bitrate(self._bitrate)
                    self._bitrate = None
                force = self._keyframe.is_set()
                self._keyframe.clear()
                encoded = encoder.encode(source.frame(n), source.layout, force_keyframe=force,
                                         pts=n * SCANOUT_FRAME_NS)
                au = self.server._shaper(encoded.data)
                msg = FrameResponse((au,), pts=n * SCANOUT_FRAME_NS, dts=n * SCANOUT_FRAME_NS,
                                    is_keyframe=encoded.is_keyframe,
                                    session_id=self.scanout_id & 0xFFFF)
                parts = wire_bytes(msg, self.server.config.fault)
                with self._lock:
                    subs = list(self._subs)
                for sub in subs:
                    if not sub.offer(parts, encoded.is_keyframe):
                        self.server.stats.add(frames_dropped=1)
                        self._after_drop()
                n += 1
                next_due += period
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._halt.wait(delay)
                elif delay < -period:
                    # Over a frame behind: skip ahead rather than burst to catch up.
                    next_due = time.monotonic()
                # Less than a frame late (scheduling jitter): go straight on and keep the
                # clock, so a hiccup does not lower the rate for good (60 fps stays 60).
        except EncodeFailed as exc:
            self.server.log(f"scanout {self.scanout_id}: encode failed: {exc}")
        finally:
            encoder.close()
            self.alive = False
