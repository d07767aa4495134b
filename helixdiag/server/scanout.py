"""Scanout mode: one producer per active scanout pushes the frames of a synthetic desktop,
and one writer per subscriber drops frames (never queues them) when that subscriber is slow.

Frames follow damage, like every real host: they are encoded only while the picture moves
(`--picture`), while someone is subscribed and — for the real generations — while the
scanout is enabled (ENABLE_SCANOUT). What the host keeps per scanout (enabled or not, its
size, its encoder and frame count) is a `ScanoutState`; with the real encoder's keyframes it
outlives subscribers, so one who comes back joins mid-GOP.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from helixdiag import net, protocol
from helixdiag.encoders import EncodeFailed, Encoder, EncoderUnavailable, open_encoder
from helixdiag.frames import SyntheticSource
from helixdiag.protocol import (
    FrameResponse,
    PixelFormat,
)
from helixdiag.server.hostlog import HostLog, sampled
from helixdiag.server.settings import SCANOUT_FRAME_NS
from helixdiag.server.shaping import wire_bytes

if TYPE_CHECKING:
    from helixdiag.server.listener import FrameServer
    from helixdiag.server.session import ClientSession


class Subscriber(threading.Thread):
    """Writes pushed frames to one client. A one-slot mailbox: a frame that arrives while
    the previous one is still being written replaces it (a drop). With on-demand keyframes
    (serve) a subscriber then waits for the next keyframe so its decoder never sees a broken
    reference; the real hosts do not, and the picture breaks until the next IDR."""

    def __init__(self, session: ClientSession, scanout_id: int) -> None:
        super().__init__(name=f"hxfr-push {session.peer}", daemon=True)
        self.session = session
        self.scanout_id = scanout_id
        self.on_demand = session.config.generation.keyframes == "on-demand"
        self._cond = threading.Condition()
        self._slot: tuple[list[protocol.Buffer], bool] | None = None
        self._stopped = False
        self.need_keyframe = self.on_demand
        self.sent = 0
        self.dropped = 0
        # Subscribed, and the frame path captures for it but never encodes (--fault no-frames):
        # the host's log shows the captures, the client gets nothing.
        self.capture_only = False

    def offer(self, parts: list[protocol.Buffer], is_keyframe: bool) -> bool:
        """Called by the producer; never blocks. Returns False when the frame was dropped."""
        with self._cond:
            dropped = self._slot is not None
            if dropped:
                self.dropped += 1
                self.need_keyframe = self.on_demand
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
                                       time.monotonic() + self.session.config.write_timeout)
            except (OSError, TimeoutError) as exc:
                if net.translate(exc, "push").kind not in ("reset", "closed"):  # else: the client left
                    self.session.close_reason = f"push failed: {exc}"
                self.session.close()
                return
            self.sent += 1
            self.session.frames += 1
            self.session.server.stats.add(frames_out=1, bytes_out=n)


class ScanoutState:
    """One scanout as the host keeps it: enabled or not, its size, its encoder and how many
    frames that encoder made (the real host never resets the count)."""

    def __init__(self, scanout_id: int, size: tuple[int, int]) -> None:
        self.scanout_id = scanout_id
        self.enabled = False
        self.size = size
        self.lock = threading.Lock()  # one producer encodes at a time
        self.encoder: Encoder | None = None
        self.source: SyntheticSource | None = None
        self.bitrate: int | None = None  # a CONFIG_REQ's bitrate, applied at the next frame
        self.frames = 0  # encoded by this scanout's encoder(s)
        self.picture = 0  # the synthetic desktop's frame number (advances while it moves)
        self.last_pixels: bytearray | None = None  # the last captured picture (H5 re-encodes it)
        self.last_encode = 0.0
        self.keepalives = 0
        self.captured = 0  # frames captured for a subscriber (the host's [FRAME_READY] count)

    def close(self) -> None:
        with self.lock:
            if self.encoder is not None:
                self.encoder.close()
                self.encoder = None


class ScanoutProducer(threading.Thread):
    """Encodes one scanout's desktop at --fps while it is damaged, once for all subscribers,
    and offers each frame to every subscriber without waiting for any."""

    def __init__(self, server: FrameServer, state: ScanoutState) -> None:
        super().__init__(name=f"hxfr-scanout {state.scanout_id}", daemon=True)
        self.server = server
        self.state = state
        self.scanout_id = state.scanout_id
        self.generation = server.config.generation
        self.host_log = HostLog(self.generation, server.log)
        self._subs: list[Subscriber] = []
        self._invisible: list[Subscriber] = []  # subscribed on another frame-export instance (double init)
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._keyframe = threading.Event()
        self._last_drop_key = 0.0
        self.alive = True

    def add(self, sub: Subscriber, *, visible: bool = True) -> None:
        with self._lock:
            (self._subs if visible else self._invisible).append(sub)
        if self.generation.keyframes == "on-demand":
            self._keyframe.set()  # a new subscriber needs an IDR to start decoding

    def remove(self, sub: Subscriber) -> int:
        """Forget `sub`; how many (visible or not) remain."""
        with self._lock:
            for subs in (self._subs, self._invisible):
                if sub in subs:
                    subs.remove(sub)
            return len(self._subs) + len(self._invisible)

    def request_keyframe(self) -> None:
        if self.generation.keyframes == "on-demand":  # the real hosts ignore KEYFRAME_REQ
            self._keyframe.set()

    def set_bitrate(self, bps: int) -> None:
        self.state.bitrate = bps

    def _after_drop(self) -> None:
        # A subscriber that dropped needs an IDR to recover, but a stalled one drops every
        # frame: at most one forced keyframe a second, so the others' bitrate stays sane.
        if self.generation.keyframes != "on-demand":
            return
        now = time.monotonic()
        if now - self._last_drop_key >= 1.0:
            self._last_drop_key = now
            self._keyframe.set()

    def stop(self) -> None:
        self.alive = False
        self._halt.set()

    # ------------------------------------------------------------------ the frame path
    def run(self) -> None:
        cfg = self.server.config
        period = 1.0 / max(cfg.fps, 1)
        next_due = time.monotonic()
        try:
            while not self._halt.is_set():
                with self.state.lock:
                    self._tick()
                next_due += period
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._halt.wait(delay)
                elif delay < -period:
                    # Over a frame behind: skip ahead rather than burst to catch up.
                    next_due = time.monotonic()
                # Less than a frame late (scheduling jitter): go straight on and keep the
                # clock, so a hiccup does not lower the rate for good (60 fps stays 60).
        except EncoderUnavailable as exc:
            self.server.log(f"scanout {self.scanout_id}: encoder unavailable: {exc}")
        except EncodeFailed as exc:
            self.server.log(f"scanout {self.scanout_id}: encode failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - one scanout must never take the server down
            self.server.log(f"scanout {self.scanout_id}: internal error: {type(exc).__name__}: {exc}")
        finally:
            self.alive = False
            if self.generation.keyframes == "on-demand":
                self.state.close()  # serve's encoder lives as long as its subscribers

    def _tick(self) -> None:
        state, gen, server = self.state, self.generation, self.server
        if gen.scanouts == "enabled" and not state.enabled:
            return  # nothing renders on a scanout that is not enabled: no flush, no frame
        now = time.monotonic()
        keepalive = False
        if server.config.picture.moving_at(now - server.stats.started):
            state.picture += 1
            pixels = None  # rendered below, once we know someone sees it
        elif (gen.keepalive_ms and state.last_pixels is not None
              and (now - state.last_encode) * 1000 >= gen.keepalive_ms):
            pixels, keepalive = state.last_pixels, True
        else:
            return  # static: no damage, no frame
        with self._lock:
            subs, invisible = list(self._subs), len(self._invisible)
        if not subs:
            if invisible:
                n = server.frame_ready_entry()
                if sampled(n, 1000):
                    server.log(f"[FRAME_READY_ENTRY] #{n} scanout={self.scanout_id} active_clients=0 "
                               "NO_SUBSCRIBER")
            return
        state.captured += 1
        self.host_log.frame_ready(state.captured, self.scanout_id)
        subs = [sub for sub in subs if not sub.capture_only]
        if not subs:
            return  # captured, never encoded
        source = self._source()
        if pixels is None:
            pixels = source.frame(state.picture)
        encoded = self._encoder().encode(pixels, source.layout, force_keyframe=self._forced(),
                                         pts=state.frames * SCANOUT_FRAME_NS)
        state.frames += 1
        self.host_log.encoded(self.scanout_id, state.frames, source.width, source.height)
        state.last_pixels, state.last_encode = pixels, now
        if keepalive:
            state.keepalives += 1
            if sampled(state.keepalives, 100):
                server.log(f"[KEEPALIVE] Re-encoded scanout {self.scanout_id} from IOSurface "
                           f"(slot=0, total keepalive frames={state.keepalives})")
        au = server.shaper(encoded.data)
        pts = (state.frames - 1) * SCANOUT_FRAME_NS
        msg = FrameResponse((au,), pts=pts, dts=pts, is_keyframe=encoded.is_keyframe,
                            session_id=self.scanout_id & 0xFFFF)
        parts = wire_bytes(msg, server.config.fault)
        for sub in subs:
            if not sub.offer(parts, encoded.is_keyframe):
                server.stats.add(frames_dropped=1)
                self._after_drop()

    def _forced(self) -> bool:
        force = self._keyframe.is_set()
        self._keyframe.clear()
        return force

    def _source(self) -> SyntheticSource:
        state = self.state
        if state.source is None or (state.source.width, state.source.height) != state.size:
            state.source = SyntheticSource(*state.size, PixelFormat.NV12)
        return state.source

    def _encoder(self) -> Encoder:
        """The scanout's encoder: made on its first frame, made again (starting with an IDR)
        when the size changed or a CONFIG_REQ brought a different bitrate."""
        state, cfg = self.state, self.server.config
        enc = state.encoder
        if enc is not None and (enc.width, enc.height) != state.size:
            enc.close()
            enc = state.encoder = None
        if enc is None:
            width, height = state.size
            enc, _ = open_encoder(cfg.encoder, width=width, height=height, bitrate=state.bitrate or cfg.bitrate,
                                  gop=cfg.gop or 60, fps=cfg.fps)
            state.encoder, state.bitrate = enc, None
            self.server.log(f"[HELIX] Created encoder for scanout {self.scanout_id}: {width}x{height} "
                            f"bitrate={enc.bitrate}" if not self.generation.is_reference else
                            f"scanout {self.scanout_id}: encoder {width}x{height}")
        elif state.bitrate is not None:
            enc.set_bitrate(state.bitrate)  # a different bitrate reopens it: the next frame is an IDR
            state.bitrate = None
        return enc
