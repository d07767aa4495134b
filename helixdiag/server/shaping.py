"""How a fault changes what goes on the wire: the bytes of each message (`wire_bytes`) and
their pacing (`StreamShaper`)."""

from __future__ import annotations

from helixdiag import h264, protocol
from helixdiag.faults import Fault


class StreamShaper:
    """Applies the H.264-level faults (no-sps, avcc) to an access unit."""

    def __init__(self, fault: Fault | None) -> None:
        self.fault = fault.kind if fault else None

    def __call__(self, au: bytes) -> bytes:
        if self.fault == "no-sps":
            return h264.strip_parameter_sets(au)
        if self.fault == "avcc":
            return h264.annexb_to_avcc(au)
        return au


def wire_bytes(msg: protocol.Message, fault: Fault | None) -> list[protocol.Buffer]:
    parts = protocol.encode_parts(msg)
    if fault is not None and fault.kind == "bad-magic":
        parts[0] = b"HXFX" + bytes(parts[0][4:])
    return parts
