"""helix-drm-manager's Unix-socket protocol: one request per connection, little-endian and
packed (docs/scanout.md).

    request  (9 bytes)   u8 cmd, u32 width, u32 height
    reply   (69 bytes)   u8 status, u32 scanout_id, char connector[64] (NUL-padded, or an
                         error text cut to 64 bytes)

`cmd` 1 leases a scanout (the reply carries the lease fd over SCM_RIGHTS and the connection
stays open as the lease's liveness), 2 releases the id in `width` (no reply, whoever holds
it), anything else is answered status 1 "unknown command": the one request a diagnosis may
send (it costs one ERROR line in the manager's journal).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

REQUEST = struct.Struct("<BII")  # 9
REPLY = struct.Struct("<BI64s")  # 69
CMD_PROBE, CMD_LEASE, CMD_RELEASE = 0, 1, 2
DEFAULT_SOCKET = "/run/helix-drm/drm.sock"
UNKNOWN_COMMAND = "unknown command"


@dataclass(frozen=True)
class Reply:
    status: int  # 0 = ok
    scanout_id: int
    text: str  # the connector name, or the error

    @property
    def ok(self) -> bool:
        return self.status == 0


def pack_request(cmd: int, width: int = 0, height: int = 0) -> bytes:
    return REQUEST.pack(cmd, width, height)


def unpack_request(data: bytes) -> tuple[int, int, int]:
    return REQUEST.unpack(data)


def pack_reply(status: int, scanout_id: int, text: str) -> bytes:
    return REPLY.pack(status, scanout_id, text.encode()[:64])


def unpack_reply(data: bytes) -> Reply:
    status, scanout, name = REPLY.unpack(data)
    return Reply(status, scanout, name.split(b"\0", 1)[0].decode(errors="replace"))
