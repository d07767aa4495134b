"""The log lines of a host generation: with `--generation h1`…`h5`, serve writes the lines the
real build writes at the same moments (beside its own `connect`/`disconnect` lines), so the
log scanner and a person reading the log see what they would see from QEMU — the frame path
included (`[FRAME_READY] … has_subscriber=YES` for a captured frame, `[ENCODE] …` for an
encoded one, both sampled like the host's), so a fault leaves the host's evidence: frames
captured and never encoded (`--fault no-frames`), NO_SUBSCRIBER while a client is subscribed
(`--fault double-init`). The reference host writes only its own lines."""

from __future__ import annotations

from helixdiag.server.generations import Generation
from helixdiag.server.settings import Log

# The frame export's pointer, as the host prints it; a second, different one after a
# double init (the subscriber lands on an instance the frame path never looks at).
FE = 0x600003A1C000
SECOND_FE = 0x600003A2D400
RESOURCE_BASE = 40  # the guest's scanout resources, as virglrenderer numbers them (made up)
RING_SLOTS = 3  # the H4 blit ring


def sampled(n: int, every: int) -> bool:
    """The host's log sampling: the first 5, then every `every`th."""
    return n <= 5 or n % every == 0


class HostLog:
    def __init__(self, generation: Generation, log: Log) -> None:
        self.name = generation.name
        self.log = log
        self.multi = generation.scanout_mode  # H3 onward: numbered clients

    @property
    def quiet(self) -> bool:
        return self.name == "reference"

    def connected(self, slot: int, fd: int) -> None:
        if self.multi:
            self.log(f"[HELIX] Client connected (fd={fd})")
            self.log(f"[HELIX] Added client {slot} (fd={fd})")
            self.log(f"[HELIX] Client {slot} handler started (fd={fd})")

    def disconnected(self, slot: int, fd: int, scanout: int) -> None:
        if self.multi:
            self.log(f"[HELIX] Client {slot} disconnected")
            self.log(f"[HELIX] Removing client {slot} (fd={fd}, scanout={scanout})")

    def idle(self, seconds: float) -> None:
        if self.name in ("h2", "h3"):  # SO_RCVTIMEO; H4's poll() timeout just disconnects
            self.log(f"[HELIX] Client recv timeout ({seconds:g}s idle), disconnecting")

    def bad_magic(self, slot: int, magic: int) -> None:
        if self.name == "h1":
            self.log(f"Invalid message magic: 0x{magic:x}")
        elif self.name == "h2":
            self.log(f"[HELIX] Invalid message magic: 0x{magic:x}")
        elif not self.quiet:
            self.log(f"[HELIX] Client {slot}: invalid magic 0x{magic:x}")

    def unknown(self, msg_type: int) -> None:
        if self.name == "h1":
            self.log(f"Unknown message type: {msg_type}")
        elif not self.quiet:
            self.log(f"[HELIX] Unknown message type: {msg_type}")

    def subscribed(self, slot: int, scanout: int, double_init: bool) -> None:
        if self.quiet:
            return
        g_fe = SECOND_FE if double_init else FE
        self.log(f"[HELIX] Client {slot} subscribing to scanout {scanout} (fe=0x{FE:x} g_fe=0x{g_fe:x})")
        self.log(f"[HELIX] After subscribe: client[{slot}].active=1 .subscribed=1 .scanout={scanout}")

    def enabled(self, scanout: int, width: int, height: int, ok: bool, max_outputs: int) -> None:
        if self.quiet:
            return
        if ok:
            self.log(f"[HELIX] Scanout {scanout} enabled: {width}x{height}")
        else:
            self.log(f"[HELIX] Invalid scanout_id {scanout} (max={max_outputs})")

    def disabled(self, scanout: int) -> None:
        if not self.quiet:
            self.log(f"[HELIX] Scanout {scanout} disabled")

    # ── the frame path (H3 onward: a scanout's frames for its subscribers) ──
    def frame_ready(self, n: int, scanout: int) -> None:
        """A frame captured for a subscriber (the host logs the first 5, then every 100th)."""
        if self.multi and sampled(n, 100):
            self.log(f"[FRAME_READY] #{n} scanout={scanout} resource={RESOURCE_BASE + scanout} "
                     "has_subscriber=YES")

    def encoded(self, scanout: int, frame: int, width: int, height: int, status: int = 0) -> None:
        """A frame submitted to the encoder (first 5, then every 100th; a failure always)."""
        if self.multi and (status != 0 or sampled(frame, 100)):
            self.log(f"[ENCODE] scanout={scanout} frame={frame} slot={frame % RING_SLOTS} "
                     f"status={status} {width}x{height}")

    def config(self, slot: int, scanout: int, bitrate: int) -> None:
        if not self.quiet:
            self.log(f"[HELIX] Client {slot} CONFIG_REQ: scanout={scanout} bitrate={bitrate}")
