"""How a fault or a host generation changes what goes on the wire: the H.264 of each frame
(`StreamShaper`) and the bytes of each message (`wire_bytes`)."""

from __future__ import annotations

from helixdiag import h264, protocol
from helixdiag.faults import Fault
from helixdiag.server.generations import REFERENCE, Generation


class StreamShaper:
    """Applies the H.264-level faults (no-sps, avcc) to an access unit, and H1's framing
    (VideoToolbox's AVCC as it is, without SPS/PPS)."""

    def __init__(self, fault: Fault | None, generation: Generation = REFERENCE) -> None:
        self.fault = fault.kind if fault else None
        self.raw_vt = not generation.annexb

    def __call__(self, au: bytes) -> bytes:
        if self.fault == "no-sps" or self.raw_vt:
            au = h264.strip_parameter_sets(au)
        if self.fault == "avcc" or self.raw_vt:
            au = h264.annexb_to_avcc(au)
        return au


def wire_bytes(msg: protocol.Message, fault: Fault | None) -> list[protocol.Buffer]:
    parts = protocol.encode_parts(msg)
    if fault is not None and fault.kind == "bad-magic":
        parts[0] = b"HXFX" + bytes(parts[0][4:])
    return parts
