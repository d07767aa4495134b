"""`helixdiag tap`: a protocol-aware relay between the real guest and the real host.

It forwards every byte unchanged in both directions (`relay`), decodes a copy of each chunk
with the HXFR codec and judges it with the one conversation state machine (`view`,
`observer`), records an optional pcapng capture (`pcap`) that Wireshark opens with the
shipped dissector (`hxfr.lua`), and plays a capture back the same way (`replay`).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from helixdiag.tap.observer import Observer
from helixdiag.tap.pcap import CaptureWriter
from helixdiag.tap.relay import Tap, TapConfig, parse_address
from helixdiag.tap.replay import replay
from helixdiag.tap.view import GUEST, HOST, ConnectionView, Record

__all__ = ["GUEST", "HOST", "CaptureWriter", "ConnectionView", "Observer", "Record", "Tap", "TapConfig",
           "dissector_path", "parse_address", "replay"]


def dissector_path() -> Path:
    """The Wireshark Lua dissector shipped with the package."""
    return Path(str(importlib.resources.files("helixdiag.tap") / "hxfr.lua"))
