"""The HXFR codec, sans-I/O: bytes in → messages out (`Decoder`); messages in → bytes out
(`encode`, `encode_parts`). No sockets, no clocks: the server, the client, the probes, the
tap and the tests all use it, and none re-implements framing. Each message type's shape
comes from the one table in `protocol.messages`.

Two error types say who is to blame:
  * `LocalProtocolError`  — *we* were asked to send something the protocol cannot carry;
  * `RemoteProtocolError` — the *peer* sent bytes that break the protocol.

Limits are enforced from the 12-byte header alone, before any payload is read or any
buffer allocated: a header announcing 4 GiB costs nothing.
"""

from __future__ import annotations

import mmap
import struct
from collections import deque
from collections.abc import Iterator

from helixdiag.protocol.messages import (
    BY_CLASS,
    DEFAULT_MAX_PAYLOAD,
    FLAG_PIXEL_DATA,
    FRAME_REQUEST_BODY,
    FRAME_RESPONSE_BODY,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MESSAGES,
    U32_MAX,
    Buffer,
    Header,
    LocalProtocolError,
    Message,
    MsgType,
    RemoteProtocolError,
    UnknownMessage,
    _nbytes,
    type_name,
)

# --------------------------------------------------------------------------- encoding


def encode(msg: Message) -> bytes:
    """The message's wire bytes. For large pixel payloads prefer `encode_parts`."""
    return b"".join(encode_parts(msg))


def encode_parts(msg: Message) -> list[Buffer]:
    """Wire bytes as a list of buffers, so pixels and NAL data go out without a copy
    (`socket.sendmsg(parts)`). The header travels with the first (small) body part."""
    spec = BY_CLASS.get(type(msg))
    if spec is None:
        what = "an UnknownMessage" if isinstance(msg, UnknownMessage) else f"{type(msg).__name__}"
        raise LocalProtocolError(f"{what} cannot be encoded" if isinstance(msg, UnknownMessage)
                                 else f"not an HXFR message: {what}")
    try:
        flags, session_id, parts = spec.pack(msg)
        head = _header(spec.type, session_id, sum(_nbytes(p) for p in parts), flags)
    except struct.error as exc:
        raise LocalProtocolError(f"cannot encode {type(msg).__name__}: {exc}") from exc
    if parts and isinstance(parts[0], bytes):
        return [head + parts[0], *parts[1:]]
    return [head, *parts]


def _header(msg_type: int, session_id: int, payload_size: int, flags: int = 0) -> bytes:
    if payload_size > U32_MAX:
        raise LocalProtocolError(f"payload of {payload_size} bytes does not fit in u32")
    return HEADER.pack(MAGIC, msg_type, flags, session_id, payload_size)


# --------------------------------------------------------------------------- decoding


LAZY_BUFFER_MIN = 1 << 20


def untouched_buffer(size: int) -> bytearray | mmap.mmap:
    """A writable buffer whose memory is committed only as bytes are written into it: a
    header that announces 64 MiB and then sends nothing costs (almost) nothing. Large
    buffers are anonymous mappings (zero pages on demand); `bytearray(n)` would zero-fill,
    touching every page at once."""
    if size < LAZY_BUFFER_MIN:
        return bytearray(size)
    return mmap.mmap(-1, size)


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()
"""Returned by `Decoder.next_message()` when more bytes are needed."""


class Decoder:
    """Incremental HXFR reader for either direction.

    Feed bytes with `feed(data)` — or, to avoid a copy, `recv_into(decoder.buffer())`
    followed by `decoder.commit(n)` — then pull messages with `next_message()` (a message or
    `NEED_DATA`) or iterate `messages()`. Messages decoded before a protocol violation are
    returned first; then `RemoteProtocolError` is raised, and again on every later call (a
    broken HXFR stream cannot be resynchronised: there is no marker to hunt for).

    Each message with a payload owns its buffer, so a FrameRequest's `pixels` memoryview
    stays valid after later messages arrive.

    `reuse_pixels=True` (opt-in; the server uses it) reads FRAME_REQUEST payloads into one
    buffer per decoder, reused frame after frame, instead of a fresh zero-filled allocation
    per frame (at 1080p NV12 that is a 3 MB memset and ~760 page faults per frame). The
    ownership rule: a FrameRequest's `pixels` stay valid until the caller comes back to the
    decoder — the next `next_message()` (or `messages()` step), `feed()` or `buffer()` call
    after the one that returned it. A reader that finishes with each message before asking
    for the next (the server encodes and replies before it reads on) never sees them change.
    The buffer is lent to one message at a time: while that message is still queued, later
    ones get their own storage, so a `feed()` that completes several frames stays correct.

    `max_payload` bounds pixel bytes for FRAME_REQUEST and payload_size for every other
    type. `accept` restricts the types expected from the peer (e.g. `GUEST_TO_HOST` in a
    server). `skip_unknown` makes unknown types an `UnknownMessage` whose payload is
    discarded without buffering, as the H3/H4 host does.
    """

    def __init__(
        self,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        accept: frozenset[int] | None = None,
        skip_unknown: bool = False,
        reuse_pixels: bool = False,
    ) -> None:
        self.max_payload = max_payload
        self.accept = accept
        self.skip_unknown = skip_unknown
        self.reuse_pixels = reuse_pixels
        self._shared: bytearray | mmap.mmap | None = None  # the reusable payload buffer (reuse_pixels)
        self._shared_msg: Message | None = None  # the message it is lent to while queued
        self._shared_busy = False  # being filled, queued, or handed out and not yet released
        self._scratch: memoryview | None = None  # where skipped payload bytes are drained
        self._ready: deque[Message] = deque()
        self._error: RemoteProtocolError | None = None
        self._offset = 0  # stream offset of the current message's first byte
        self._consumed = 0  # total bytes consumed
        self._start_header()

    # -- state
    def _start_header(self) -> None:
        self._header: Header | None = None
        self._buf = bytearray(HEADER_SIZE)
        self._view = memoryview(self._buf)
        self._filled = 0
        self._skip = 0

    @property
    def bytes_needed(self) -> int:
        """Bytes still missing to complete the header or message in progress."""
        if self._skip:
            return self._skip
        return len(self._view) - self._filled

    @property
    def in_message(self) -> bool:
        """True between the first byte of a message and its last (a cut here is a truncation)."""
        return self._filled > 0 or self._header is not None or self._skip > 0

    @property
    def current_header(self) -> Header | None:
        return self._header

    @property
    def broken(self) -> bool:
        return self._error is not None

    # -- input
    def feed(self, data: Buffer) -> None:
        """Consume bytes; parsing happens here, errors surface from `next_message()`."""
        self._release()
        mv = memoryview(data).cast("B")
        pos = 0
        while pos < len(mv) and self._error is None:
            if self._skip:
                take = min(self._skip, len(mv) - pos)
                self._skip -= take
                pos += take
                self._consumed += take
                if not self._skip:
                    self._message_done()  # the next message starts after the skipped payload
                    self._start_header()
                continue
            take = min(len(self._view) - self._filled, len(mv) - pos)
            self._view[self._filled:self._filled + take] = mv[pos:pos + take]
            self._filled += take
            pos += take
            self._consumed += take
            self._advance()

    def buffer(self) -> memoryview:
        """Where the next bytes go, for `sock.recv_into(...)`; call `commit(n)` afterwards.

        While a payload is being skipped or after an error, a small scratch buffer is
        returned so a reader loop can go on draining the socket.
        """
        self._release()
        if self._error is not None or self._skip:
            if self._scratch is None:
                self._scratch = memoryview(bytearray(65536))
            return self._scratch[:min(self._skip or 65536, 65536)]
        return self._view[self._filled:]

    def commit(self, n: int) -> None:
        """Account for `n` bytes written into `buffer()`."""
        if n <= 0 or self._error is not None:
            return
        if self._skip:
            if n > min(self._skip, 65536):
                raise ValueError("commit() of more bytes than buffer() offered")
            self._skip -= n
            self._consumed += n
            if not self._skip:
                self._message_done()  # the next message starts after the skipped payload
                self._start_header()
            return
        if n > len(self._view) - self._filled:
            raise ValueError("commit() of more bytes than buffer() offered")
        self._filled += n
        self._consumed += n
        self._advance()

    # -- output
    def next_message(self) -> Message | _NeedData:
        self._release()
        if self._ready:
            msg = self._ready.popleft()
            if msg is self._shared_msg:
                self._shared_msg = None  # handed out: lent until the caller comes back
            return msg
        if self._error is not None:
            raise self._error
        return NEED_DATA

    def messages(self) -> Iterator[Message]:
        """Every complete message decoded so far (raises after them if the stream broke)."""
        while True:
            msg = self.next_message()
            if msg is NEED_DATA:
                return
            yield msg  # type: ignore[misc]

    def _release(self) -> None:
        """The caller came back: the message holding the shared buffer (if any was handed
        out) is done with it."""
        if self._shared_busy and self._shared_msg is None and self._header is None:
            self._shared_busy = False

    def _payload_buffer(self, h: Header) -> memoryview:
        size = h.payload_size
        if (self.reuse_pixels and not self._shared_busy and h.msg_type == MsgType.FRAME_REQUEST
                and h.flags & FLAG_PIXEL_DATA):
            shared = self._shared
            # Grow to fit; shrink when far too big, so one huge frame is not held forever.
            if shared is None or len(shared) < size or len(shared) > 4 * size:
                shared = self._shared = untouched_buffer(size)
            self._shared_busy = True
            return memoryview(shared)[:size]
        # The size was checked against the limit above, so this allocation is bounded.
        return memoryview(untouched_buffer(size))

    # -- parsing
    def _advance(self) -> None:
        if self._filled < len(self._view):
            return
        try:
            if self._header is None:
                self._on_header()
            else:
                self._on_payload()
        except RemoteProtocolError as exc:
            exc.offset = self._offset
            self._error = exc

    def _on_header(self) -> None:
        magic, msg_type, flags, session_id, payload_size = HEADER.unpack(self._buf)
        header = Header(magic, msg_type, flags, session_id, payload_size)
        if magic != MAGIC:
            raise RemoteProtocolError(
                "bad-magic",
                f"bad magic 0x{magic:08x} (bytes {bytes(self._buf[:4])!r}), expected 0x{MAGIC:08x} 'HXFR'",
                header=header,
            )
        if msg_type not in MESSAGES:
            if not self.skip_unknown:
                raise RemoteProtocolError("unknown-type", f"unknown message type 0x{msg_type:02x}", header=header)
            if payload_size > self.max_payload:
                raise _too_large(header, payload_size, self.max_payload)
            self._ready.append(UnknownMessage(msg_type, flags, session_id, payload_size))
            # Reset the header buffer even for payload_size 0: otherwise the full 12-byte
            # header is parsed again and again (endless loop, endless UnknownMessages).
            self._start_header()
            if payload_size:
                self._skip = payload_size
            else:
                self._message_done()
            return
        if self.accept is not None and msg_type not in self.accept:
            raise RemoteProtocolError(
                "unexpected-type",
                f"{MsgType(msg_type).name} is not a message this side should receive",
                header=header,
            )
        self._check_size(header)
        self._header = header
        self._view = self._payload_buffer(header)
        self._buf = self._view.obj
        self._filled = 0
        if payload_size == 0:
            self._on_payload()  # body is empty, not the header bytes just parsed

    def _check_size(self, h: Header) -> None:
        name = MsgType(h.msg_type).name
        expected = MESSAGES[h.msg_type].payload
        if expected is not None:
            if h.payload_size != expected:
                raise RemoteProtocolError(
                    "bad-size", f"{name} announces payload_size {h.payload_size}, must be {expected}", header=h
                )
            return
        if h.msg_type == MsgType.FRAME_REQUEST:
            if not h.flags & FLAG_PIXEL_DATA:
                if h.payload_size != FRAME_REQUEST_BODY:
                    raise RemoteProtocolError(
                        "bad-size",
                        f"FRAME_REQUEST without PIXEL_DATA announces payload_size {h.payload_size}, must be {FRAME_REQUEST_BODY}",
                        header=h,
                    )
                return
            pixels = h.payload_size - FRAME_REQUEST_BODY
            if pixels <= 0:
                raise RemoteProtocolError(
                    "bad-size",
                    f"FRAME_REQUEST with PIXEL_DATA announces payload_size {h.payload_size}: no pixel bytes",
                    header=h,
                )
            if pixels > self.max_payload:
                raise _too_large(h, pixels, self.max_payload)
            return
        if h.payload_size > self.max_payload:
            raise _too_large(h, h.payload_size, self.max_payload)
        if h.msg_type == MsgType.FRAME_RESPONSE and h.payload_size < FRAME_RESPONSE_BODY:
            raise RemoteProtocolError(
                "bad-size",
                f"FRAME_RESPONSE announces payload_size {h.payload_size}, less than its {FRAME_RESPONSE_BODY}-byte body",
                header=h,
            )

    def _on_payload(self) -> None:
        h = self._header
        assert h is not None
        msg = MESSAGES[h.msg_type].unpack(h, self._view)
        if self._shared is not None and self._view.obj is self._shared:
            self._shared_msg = msg
        self._ready.append(msg)
        self._message_done()
        self._start_header()

    def _message_done(self) -> None:
        self._offset = self._consumed


def _too_large(h: Header, size: int, limit: int) -> RemoteProtocolError:
    return RemoteProtocolError("too-large", f"{type_name(h.msg_type)} announces {size} bytes, over the "
                               f"{limit}-byte limit", header=h)


def decode_all(data: Buffer, **decoder_options) -> list[Message]:
    """Decode a complete byte string; raises if it ends mid-message."""
    dec = Decoder(**decoder_options)
    dec.feed(data)
    out = list(dec.messages())
    if dec.in_message:
        raise RemoteProtocolError(
            "truncated",
            f"input ends {dec.bytes_needed} bytes short of a complete message",
            header=dec.current_header,
            offset=dec._offset,
        )
    return out
