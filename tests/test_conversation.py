"""The conversation rules, judged in one place (helixdiag.protocol.conversation), and a real
subscriber that meets a host pushing a frame before SUBSCRIBE_RESP (as desktop-bridge
tolerates it)."""

from __future__ import annotations

import socket
import threading

import pytest

from helixdiag import net, protocol
from helixdiag.client import ExchangeOptions, exchange
from helixdiag.encoders import open_encoder
from helixdiag.frames import SyntheticSource
from helixdiag.protocol import MESSAGES, MsgType, PixelFormat
from helixdiag.protocol.conversation import (
    EARLY_PUSH,
    ONE_WAY,
    PUSH,
    REPLY,
    REQUEST,
    STANDALONE_ERROR,
    UNSOLICITED,
    Conversation,
)

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame(pts: int = 0) -> protocol.FrameResponse:
    return protocol.FrameResponse((b"\x00\x00\x00\x01\x65",), pts=pts)


def test_the_table_says_who_answers_what():
    answered = {t: s.answered_by for t, s in MESSAGES.items() if s.answered_by}
    assert answered == {
        MsgType.FRAME_REQUEST: {MsgType.FRAME_RESPONSE, MsgType.ERROR},
        MsgType.PING: {MsgType.PONG},
        MsgType.CONFIG_REQ: {MsgType.CONFIG_RESP},
        MsgType.ENABLE_SCANOUT: {MsgType.SCANOUT_RESP},
        MsgType.SUBSCRIBE: {MsgType.SUBSCRIBE_RESP},
    }
    assert not MESSAGES[MsgType.DISABLE_SCANOUT].answered_by
    assert not MESSAGES[MsgType.KEYFRAME_REQ].answered_by


def test_one_reply_per_request_with_its_latency():
    clock = Clock()
    conv = Conversation(clock)
    request = protocol.FrameRequest(64, 64, PixelFormat.NV12, 64)
    assert conv.guest_sent(request).kind == REQUEST
    clock.now += 0.25
    event = conv.host_sent(frame())
    assert (event.kind, event.answers, event.latency_s) == (REPLY, request, 0.25)
    second = conv.host_sent(frame(1))  # nobody asked, nobody subscribed
    assert second.kind == UNSOLICITED and second.failure_id == "stream-protocol-error"


def test_answers_go_to_the_oldest_request_they_can_answer():
    conv = Conversation(Clock())
    ping = protocol.Ping(7)
    request = protocol.FrameRequest(64, 64, PixelFormat.NV12, 64)
    conv.guest_sent(request)
    conv.guest_sent(ping)
    assert conv.host_sent(protocol.Pong(7)).answers is ping
    assert [m for m, _ in conv.waiting()] == [request]
    error = conv.host_sent(protocol.ErrorMessage.for_code(-5))
    assert error.kind == REPLY and error.answers is request
    assert conv.host_sent(protocol.ErrorMessage.for_code(-99)).kind == STANDALONE_ERROR


def test_disable_and_keyframe_requests_are_never_answered():
    conv = Conversation(Clock())
    assert conv.guest_sent(protocol.DisableScanout(1)).kind == ONE_WAY
    assert conv.guest_sent(protocol.KeyframeRequest()).kind == ONE_WAY
    assert conv.waiting() == []
    late = conv.host_sent(protocol.ScanoutResponse(1, True))
    assert late.kind == UNSOLICITED and "SCANOUT_RESP" in late.detail


def test_pushed_frames_before_and_after_the_subscription():
    conv = Conversation(Clock())
    conv.guest_sent(protocol.Subscribe(1))
    early = conv.host_sent(frame())
    assert early.kind == EARLY_PUSH and early.failure_id is None
    assert conv.host_sent(protocol.SubscribeResponse(1, True)).kind == REPLY
    assert conv.host_sent(frame(1)).kind == PUSH
    assert conv.subscribed == {1}


def test_a_refused_subscription_gets_no_pushed_frames():
    conv = Conversation(Clock())
    conv.guest_sent(protocol.Subscribe(2))
    assert conv.host_sent(protocol.SubscribeResponse(2, False)).kind == REPLY
    assert conv.host_sent(frame()).kind == UNSOLICITED


def _early_pushing_host(listener: socket.socket, frames: list[bytes], errors: list[str]) -> None:
    """Reads SUBSCRIBE, pushes one frame, then SUBSCRIBE_RESP, then the rest."""
    try:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            decoder = protocol.Decoder(accept=protocol.GUEST_TO_HOST)
            while not isinstance(msg := decoder.next_message(), protocol.Subscribe):
                decoder.feed(conn.recv(4096) or b"")
            conn.sendall(protocol.encode(protocol.FrameResponse((frames[0],), pts=0, is_keyframe=True)))
            conn.sendall(protocol.encode(protocol.SubscribeResponse(msg.scanout_id, True)))
            for i, data in enumerate(frames[1:], 1):
                conn.sendall(protocol.encode(protocol.FrameResponse((data,), pts=i)))
            conn.recv(1)  # until the client hangs up
    except OSError as exc:
        errors.append(str(exc))


def test_send_in_scanout_mode_tolerates_a_frame_before_subscribe_resp():
    source = SyntheticSource(160, 120, PixelFormat.NV12)
    encoder, _ = open_encoder("auto", width=160, height=120, gop=60)
    try:
        frames = [encoder.encode(source.frame(i), source.layout, force_keyframe=i == 0, pts=i).data for i in range(4)]
    finally:
        encoder.close()
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[str] = []
    host = threading.Thread(target=_early_pushing_host, args=(listener, frames, errors), daemon=True)
    host.start()
    try:
        result = exchange(ExchangeOptions(net.Endpoint("tcp", host="127.0.0.1", port=listener.getsockname()[1]),
                                          mode="scanout", frames=4, size=(160, 120), timeout=3))
    finally:
        listener.close()
        host.join(5)
    assert not errors, errors
    assert result.frames_before_subscribe_resp == 1
    assert result.frames_received == 4 and result.frames_decoded == 4
    assert not result.findings, [f.to_dict() for f in result.findings.values()]
