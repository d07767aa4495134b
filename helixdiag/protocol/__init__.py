"""The HXFR wire protocol: the message table (`messages`), the sans-I/O codec (`codec`),
the conversation rules (`conversation`) and raw frame layouts (`pixels`).

Import from here: `from helixdiag.protocol import Decoder, FrameRequest, encode, …`.
"""

from __future__ import annotations

from helixdiag.protocol.codec import (
    NEED_DATA,
    Decoder,
    decode_all,
    encode,
    encode_parts,
    untouched_buffer,
)
from helixdiag.protocol.conversation import Conversation, Event
from helixdiag.protocol.messages import (
    DEFAULT_MAX_PAYLOAD,
    FIXED_PAYLOAD,
    FLAG_PIXEL_DATA,
    FRAME_REQUEST_BODY,
    FRAME_RESPONSE_BODY,
    GUEST_TO_HOST,
    HEADER,
    HEADER_SIZE,
    HOST_TO_GUEST,
    MAGIC,
    MESSAGES,
    Buffer,
    ConfigRequest,
    ConfigResponse,
    DisableScanout,
    EnableScanout,
    ErrorCode,
    ErrorMessage,
    FrameRequest,
    FrameResponse,
    Header,
    KeyframeRequest,
    LocalProtocolError,
    Message,
    MsgType,
    Ping,
    PixelFormat,
    Pong,
    ProtocolError,
    RemoteProtocolError,
    ScanoutResponse,
    Subscribe,
    SubscribeResponse,
    UnknownMessage,
)
from helixdiag.protocol.pixels import (
    FORMAT_NAMES,
    FrameLayout,
    default_stride,
    format_name,
    frame_layout,
)

__all__ = [
    "DEFAULT_MAX_PAYLOAD", "FIXED_PAYLOAD", "FLAG_PIXEL_DATA", "FORMAT_NAMES", "FRAME_REQUEST_BODY",
    "FRAME_RESPONSE_BODY", "GUEST_TO_HOST", "HEADER", "HEADER_SIZE", "HOST_TO_GUEST", "MAGIC", "MESSAGES",
    "NEED_DATA", "Buffer", "ConfigRequest", "ConfigResponse", "Conversation", "Decoder", "DisableScanout",
    "EnableScanout", "ErrorCode", "ErrorMessage", "Event", "FrameLayout", "FrameRequest", "FrameResponse",
    "Header", "KeyframeRequest", "LocalProtocolError", "Message", "MsgType", "Ping", "PixelFormat", "Pong",
    "ProtocolError", "RemoteProtocolError", "ScanoutResponse", "Subscribe", "SubscribeResponse",
    "UnknownMessage", "decode_all", "default_stride", "encode", "encode_parts", "format_name", "frame_layout",
    "untouched_buffer",
]
