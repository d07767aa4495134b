"""The reference host: a stand-in for QEMU's helix-frame-export.

Request mode (vsockenc): every FRAME_REQUEST gets exactly one FRAME_RESPONSE or ERROR, in
order, never silence and never an unsolicited message. Scanout mode: SUBSCRIBE, then pushed
FRAME_RESPONSEs of a synthetic moving desktop to every subscriber of that scanout, with
frames dropped (never queued without bound) for a subscriber that cannot keep up.

Threads, like the H3 host: one acceptor for all listeners, one thread per client (so a
dead or slow peer only ever blocks itself), one producer per active scanout and one
writer per subscriber.
"""

from __future__ import annotations

from helixdiag.server.listener import FrameServer
from helixdiag.server.session import ClientSession
from helixdiag.server.settings import MAX_DIMENSION, SCANOUT_FRAME_NS, ServerConfig, Stats

__all__ = ["MAX_DIMENSION", "SCANOUT_FRAME_NS", "ClientSession", "FrameServer", "ServerConfig", "Stats"]
